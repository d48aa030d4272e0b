"""A caller who pressed 1 to be called back, through the emulator in virtual time: the switchboard
places a call to the operator's browser, then connects the operator to the caller's phone."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, MissedCall, OperatorStatus
from queue_app.services import operators
from queue_app.sim import CallerScript, CallHandle, ClientDevice, Emulator, PhoneNumber

from .scenario import make_switchboard

CALLER = "+46701234567"


def call_row(call_sid: str) -> Call:
    with db.transaction() as session:
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        assert call is not None
        session.expunge(call)
        return call


def missed_calls() -> list[tuple[str, str]]:
    with db.transaction() as session:
        return [(m.reason, m.status) for m in session.scalars(select(MissedCall).order_by(MissedCall.id))]


def operator_legs(emulator: Emulator, identity: str) -> list[CallHandle]:
    return [emulator.call(c.sid) for c in emulator.calls if c.to == f"client:{identity}"]


def ask_for_callback(
    app: Flask,
    clock: ManualClock,
    emulator: Emulator,
    incoming_number: Callable[[str], str],
    on_her_phone: bool = False,
) -> tuple[int, CallHandle]:
    """Anna is paused; the caller waits, presses 1 when offered a callback, and hangs up. Then Anna
    resumes (with her phone as her device when `on_her_phone`)."""
    with app.app_context():
        board = make_switchboard(("op_anna",), callback_enabled=True, caller_options_after_seconds=10)
        anna = board.operators["op_anna"]
        operators.log_in(anna, [board.queue_id], clock.now())
        operators.pause(anna, "lunch", clock.now())
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=3))
    call = emulator.place_call(
        CALLER, incoming_number(board.number), CallerScript(presses=[{"after": 10, "digits": "1"}])
    )
    assert call.wait_until(lambda: call.status == "completed", timeout=180)
    assert call.heard_text_contains("Vi ringer upp dig")
    with app.app_context():
        row = call_row(call.sid)
        assert (row.state, row.callback_number) == ("callback_pending", CALLER)
        assert missed_calls() == [("callback", "open")]
        if on_her_phone:
            anna_on_her_phone(app)
        operators.resume(anna, clock.now())
    emulator.tick_now()
    return anna, call


def test_it_calls_the_caller_back_through_the_operators_browser(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(
        CALLER, PhoneNumber(mode="answer", answer_after=4, script=CallerScript(talk_for=20))
    )
    anna, call = ask_for_callback(app, clock, emulator, incoming_number)

    emulator.advance(1)
    [leg] = operator_legs(emulator, "op_anna")
    assert leg.call.from_ == "+46855501000", "the operator sees the number the caller rang"
    assert leg.wait_until(lambda: leg.bridged_with is not None, timeout=60)
    assert leg.bridged_with is not None and leg.bridged_with.call.to == CALLER
    assert leg.heard_text_contains("Återuppringning till 0 7 0 1 2 3 4 5 6 7, som väntade i kön Växeln")
    with app.app_context():
        row = call_row(call.sid)
        assert (row.state, row.answered_by_id) == ("connected", anna)
        with db.transaction() as session:
            status = session.get(OperatorStatus, anna)
            assert status is not None and status.state == "on_call"

    emulator.advance(60)
    assert leg.status == "completed"
    with app.app_context():
        row = call_row(call.sid)
        assert (row.state, row.outcome_reason) == ("completed", "answered")
        assert missed_calls() == [("callback", "handled")]
        with db.transaction() as session:
            status = session.get(OperatorStatus, anna)
            assert status is not None and status.state in ("wrap_up", "available")
    assert emulator.errors == []


def test_it_retries_a_callback_nobody_answers_then_gives_up(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    app.config.update(CALLBACK_RETRY_SECONDS=120)
    emulator.register_number(CALLER, PhoneNumber(mode="no-answer"))
    _anna, call = ask_for_callback(app, clock, emulator, incoming_number)

    emulator.advance(90)
    [first] = operator_legs(emulator, "op_anna")
    assert first.status == "completed"
    assert first.heard_text_contains("Ingen svarade. Vi försöker igen senare.")
    with app.app_context():
        row = call_row(call.sid)
        assert row.state == "callback_pending"
        assert row.announcement_state["callback"]["attempts"] == 1

    emulator.advance(600)
    legs = operator_legs(emulator, "op_anna")
    assert len(legs) == 3
    assert legs[-1].heard_text_contains("Vi har försökt flera gånger")
    with app.app_context():
        row = call_row(call.sid)
        assert (row.state, row.outcome_reason) == ("abandoned", "callback_unreachable")
        assert row.answered_by_id is None
        assert missed_calls() == [("callback", "open")], "a human still owes the caller a call"
    assert emulator.errors == []


ANNA_PHONE = "+46709990000"


def anna_on_her_phone(app: Flask) -> None:
    """Anna's device is her phone, not the browser."""
    from queue_app.models import User

    with app.app_context(), db.transaction() as session:
        user = session.scalars(select(User).where(User.client_identity == "op_anna")).one()
        user.client_identity, user.phone_number = None, ANNA_PHONE


def phone_legs(emulator: Emulator) -> list[CallHandle]:
    return [emulator.call(c.sid) for c in emulator.calls if c.to == ANNA_PHONE]


def test_a_callback_to_an_operators_phone_waits_for_press_one(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(
        CALLER, PhoneNumber(mode="answer", answer_after=4, script=CallerScript(talk_for=20))
    )
    emulator.register_number(
        ANNA_PHONE,
        PhoneNumber(
            mode="answer", answer_after=3, script=CallerScript(presses=[{"after": 0, "digits": "1"}])
        ),
    )
    anna, call = ask_for_callback(app, clock, emulator, incoming_number, on_her_phone=True)

    [leg] = phone_legs(emulator)
    assert leg.wait_until(lambda: leg.bridged_with is not None, timeout=60)
    assert leg.heard_text_contains("Tryck 1 för att ta samtalet.")
    assert leg.bridged_with is not None and leg.bridged_with.call.to == CALLER
    with app.app_context():
        assert call_row(call.sid).answered_by_id == anna
    assert emulator.errors == []


def test_a_voicemail_answering_a_callback_to_an_operators_phone_does_not_count(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(CALLER, PhoneNumber(mode="answer", answer_after=4))
    emulator.register_number(ANNA_PHONE, PhoneNumber(mode="voicemail", answer_after=3))
    anna, call = ask_for_callback(app, clock, emulator, incoming_number, on_her_phone=True)

    emulator.advance(40)

    first = phone_legs(emulator)[0]
    assert first.status == "completed"
    assert first.heard_text_contains("Tryck 1 för att ta samtalet.")
    assert not [c for c in emulator.calls if c.to == CALLER], "the caller was never dialled"
    with app.app_context():
        row = call_row(call.sid)
        assert row.answered_by_id is None and row.state != "connected"
        with db.transaction() as session:
            status = session.get(OperatorStatus, anna)
            assert status is not None and status.missed_no_answer >= 1
    assert emulator.errors == []
