"""Whole calls through the emulator in virtual time: the caller's, the operator's and Twilio's view."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, MissedCall, OperatorStatus
from queue_app.services import operators
from queue_app.sim import CallerScript, ClientDevice, Emulator

from .scenario import make_switchboard

CALLER = "+46701234567"


def call_row(call_sid: str) -> Call:
    with db.transaction() as session:
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        assert call is not None
        session.expunge(call)
        return call


def operator_state(user_id: int) -> str:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        return status.state if status else "offline"


def test_it_answers_a_caller_with_the_free_operator(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    with app.app_context():
        board = make_switchboard(("op_anna",))
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=3))
    call = emulator.place_call(CALLER, incoming_number(board.number), CallerScript(talk_for=60))

    assert call.wait_until(lambda: call.bridged_with is not None, timeout=120)
    assert call.heard_text_contains("Välkommen")
    with app.app_context():
        assert call_row(call.sid).state == "connected"
        assert operator_state(board.operators["op_anna"]) == "on_call"
    emulator.advance(90)
    assert call.status == "completed"
    with app.app_context():
        row = call_row(call.sid)
        assert row.state == "completed"
        assert row.answered_by_id == board.operators["op_anna"]
        assert operator_state(board.operators["op_anna"]) in ("wrap_up", "available")
    assert emulator.errors == []


def test_it_counts_a_caller_who_gives_up_as_abandoned_once(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    with app.app_context():
        board = make_switchboard(("op_anna",))
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
        operators.pause(board.operators["op_anna"], "lunch", clock.now())
    call = emulator.place_call(CALLER, incoming_number(board.number), CallerScript(patience=45))
    emulator.advance(120)
    assert call.status == "completed"
    with app.app_context():
        assert call_row(call.sid).state == "abandoned"
        with db.transaction() as session:
            missed = session.scalars(select(MissedCall)).all()
            assert [m.reason for m in missed] == ["abandoned"]
    assert emulator.errors == []


def answer_by(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str], **devices: str
):  # type: ignore[no-untyped-def]
    """A switchboard with the given operators logged in and their browsers set to `mode`."""
    with app.app_context():
        board = make_switchboard(tuple(devices))
        for identity in devices:
            operators.log_in(board.operators[identity], [board.queue_id], clock.now())
            # Stagger their idle time so longest-idle picks them in the order given.
            clock.advance(1)
    for identity, mode in devices.items():
        emulator.register_client(identity, ClientDevice(mode=mode, answer_after=3))  # type: ignore[arg-type]
    return board, incoming_number(board.number)


def test_it_offers_the_call_to_the_next_operator_when_one_does_not_answer(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    board, number = answer_by(app, clock, emulator, incoming_number, op_anna="ignore", op_bo="answer")
    with app.app_context():
        from tests.e2e.scenario import queue_settings

        queue_settings(board.queue_id, strategy="longest_idle")
    call = emulator.place_call(CALLER, number, CallerScript(talk_for=30))
    assert call.wait_until(lambda: call.bridged_with is not None, timeout=180)
    with app.app_context():
        row = call_row(call.sid)
        assert row.answered_by_id == board.operators["op_bo"]
        with db.transaction() as session:
            anna = session.get(OperatorStatus, board.operators["op_anna"])
            assert anna is not None and anna.missed_no_answer == 1
    # The caller kept hearing the queue, not silence, while Anna's phone rang out.
    assert call.heard_text_contains("Välkommen")
    assert emulator.errors == []


def test_it_rings_two_operators_in_parallel_and_the_first_to_answer_wins(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    board, number = answer_by(app, clock, emulator, incoming_number, op_anna="answer", op_bo="answer")
    emulator.register_client("op_bo", ClientDevice(mode="answer", answer_after=6))
    with app.app_context():
        from tests.e2e.scenario import queue_settings

        queue_settings(board.queue_id, strategy="parallel", parallel_count=2)
    call = emulator.place_call(CALLER, number, CallerScript(talk_for=30))
    assert call.wait_until(lambda: call.bridged_with is not None, timeout=120)
    legs = call.children
    assert sorted(leg.status for leg in legs) == ["canceled", "in-progress"]
    with app.app_context():
        assert call_row(call.sid).answered_by_id == board.operators["op_anna"]
        assert operator_state(board.operators["op_bo"]) == "available"
    assert emulator.errors == []


def test_it_apologises_on_an_unknown_number(
    emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    call = emulator.place_call(CALLER, incoming_number("+46855599999"))
    emulator.advance(30)
    assert call.status == "completed"
    assert call.heard_texts, "the caller heard something"
    assert not call.heard_text_contains("application error")
    assert emulator.errors == []


COLLEAGUE = "+46701112233"


def transfer_after_answer(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
):  # type: ignore[no-untyped-def]
    """A caller answered by Anna, who transfers them blind to a colleague's mobile."""
    from queue_app.services import transfers

    board, number = answer_by(app, clock, emulator, incoming_number, op_anna="answer")
    call = emulator.place_call(CALLER, number, CallerScript(patience=None))
    assert call.wait_until(lambda: call.bridged_with is not None, timeout=120)
    with app.app_context():
        row = call_row(call.sid)
        transfers.start_blind_transfer(row.id, board.operators["op_anna"], COLLEAGUE, clock.now())
    emulator.tick_now()
    return board, call


def test_it_transfers_a_caller_to_a_colleague_who_answers(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    from queue_app.sim import PhoneNumber

    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    board, call = transfer_after_answer(app, clock, emulator, incoming_number)
    assert call.wait_until(
        lambda: call.bridged_with is not None and "+46701112233" in call.bridged_with.call.to, timeout=60
    )
    with app.app_context():
        assert operator_state(board.operators["op_anna"]) in ("wrap_up", "available")
    call.hang_up()
    emulator.advance(5)
    with app.app_context():
        assert call_row(call.sid).state == "completed"
    assert emulator.errors == []


def test_it_recalls_a_transfer_nobody_answers_to_the_operator(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    from queue_app.models import Transfer
    from queue_app.sim import PhoneNumber

    emulator.register_number(COLLEAGUE, PhoneNumber(mode="no-answer"))
    _board, call = transfer_after_answer(app, clock, emulator, incoming_number)
    # The colleague's phone rings out; the caller comes back to Anna when her wrap-up is over.
    assert call.wait_until(
        lambda: call.bridged_with is not None and "op_anna" in call.bridged_with.call.to, timeout=180
    )
    with app.app_context(), db.transaction() as session:
        transfer = session.scalars(select(Transfer)).one()
        assert transfer.state == "recalled"
        assert transfer.recall_reason == "no_answer"
    assert emulator.errors == []


def test_it_camps_a_caller_on_a_busy_colleague_then_recalls(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    from queue_app.models import Transfer
    from queue_app.sim import PhoneNumber

    app.config.update(CAMP_ON_SECONDS=60, CAMP_ON_RETRY_SECONDS=20)
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="busy"))
    _board, call = transfer_after_answer(app, clock, emulator, incoming_number)
    emulator.advance(30)
    with app.app_context():
        assert call_row(call.sid).state == "camped_on"
    assert call.bridged_with is None
    # After the camp-on time the caller is recalled to Anna.
    assert call.wait_until(
        lambda: call.bridged_with is not None and "op_anna" in call.bridged_with.call.to, timeout=240
    )
    with app.app_context(), db.transaction() as session:
        transfer = session.scalars(select(Transfer)).one()
        assert transfer.state == "recalled"
        assert transfer.attempts >= 2
    assert emulator.errors == []


def test_it_refuses_webhooks_signed_with_a_wrong_token(app: Flask, clock: ManualClock) -> None:
    from queue_app.sim import WsgiTransport

    forger = Emulator(clock, app.config["TWILIO_ACCOUNT_SID"], "not-the-apps-token", WsgiTransport(app))
    with app.app_context():
        board = make_switchboard(("op_anna",))
    base = app.config["PUBLIC_BASE_URL"]
    forger.add_number(board.number, f"{base}/twilio/voice")
    call = forger.place_call(CALLER, board.number)
    forger.advance(30)
    # Twilio's treatment of a failed webhook: error 11200, the caller hears the application error.
    assert [e.code for e in forger.errors][:1] == [11200]
    assert call.heard_text_contains("application error")
    assert call.status == "completed"
    with app.app_context(), db.transaction() as session:
        assert session.scalars(select(Call)).all() == []


def test_it_reports_broken_twiml_from_the_app_as_twilio_would(app: Flask, emulator: Emulator) -> None:
    from queue_app.extensions import csrf

    def broken() -> tuple[str, int, dict[str, str]]:
        return "<Response><Say>unclosed & wrong</Response>", 200, {"Content-Type": "application/xml"}

    app.add_url_rule("/twilio/test-broken", "test_broken", csrf.exempt(broken), methods=["POST"])
    emulator.add_number("+46855500777", f"{app.config['PUBLIC_BASE_URL']}/twilio/test-broken")
    call = emulator.place_call(CALLER, "+46855500777")
    emulator.advance(30)
    assert [e.code for e in emulator.errors] == [12100]
    assert call.heard_text_contains("application error")
    assert call.status == "completed"
