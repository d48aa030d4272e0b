"""Whole calls through the emulator in virtual time: the caller's, the operator's and Twilio's view."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select

from queue_app import worker
from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, MissedCall, Offer, OperatorStatus
from queue_app.services import operators, transfers, twilio_queues
from queue_app.sim import CallerScript, ClientDevice, Emulator, PhoneNumber

from .scenario import answered_during_welcome, make_switchboard, operator_legs, queue_settings

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


def test_each_callers_own_twilio_queue_is_deleted_once_the_call_has_ended(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    """Twilio keeps a queue until it is deleted; one per caller would pile up by the thousand."""
    with app.app_context():
        board = make_switchboard(("op_anna",))
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=3))
    answered = emulator.place_call(CALLER, incoming_number(board.number), CallerScript(talk_for=20))
    gave_up = emulator.place_call("+46701234568", incoming_number(board.number), CallerScript(patience=8))
    assert answered.wait_until(lambda: answered.bridged_with is not None, timeout=120)
    with app.app_context():
        queues = {sid: f"koe-caller-{call_row(sid).id}" for sid in (answered.sid, gave_up.sid)}
    assert all(emulator.queue_by_name(name) is not None for name in queues.values())
    still_waiting = emulator.place_call("+46701234569", incoming_number(board.number), CallerScript())

    emulator.advance(60)
    assert (answered.status, gave_up.status) == ("completed", "completed")
    assert [name for name in queues.values() if emulator.queue_by_name(name)] == []
    with app.app_context():
        waiting = f"koe-caller-{call_row(still_waiting.sid).id}"
        assert [call_row(sid).twilio_queue_sid for sid in queues] == [None, None]
    assert emulator.queue_by_name(waiting) is not None  # a caller who waits keeps theirs
    assert emulator.errors == []


def test_the_caller_hears_the_queue_while_the_operator_rings_and_only_then_is_connected(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    """Twilio's classic pattern redirects the caller into a <Dial>, where they hear ringback. Here
    the caller stays in their queue until the operator has answered: the welcome is never cut, and
    the head of the queue hears its position while the operator's browser rings."""
    with app.app_context():
        board = make_switchboard(("op_anna",), ring_timeout_seconds=30)
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=15))
    call = emulator.place_call(CALLER, incoming_number(board.number), CallerScript(talk_for=60))

    assert call.wait_until(lambda: call.bridged_with is not None, timeout=120)
    (leg,) = operator_legs(emulator, "op_anna")
    with app.app_context(), db.transaction() as session:
        (rang_from,) = session.scalars(select(Offer.created_at)).all()  # when her browser began to ring
    bridged_at = call.call.bridged_at
    assert bridged_at is not None and (bridged_at - rang_from).total_seconds() >= 15
    said_while_ringing = [
        h.content for h in call.call.heard if h.kind == "say" and rang_from <= h.at < bridged_at
    ]
    assert "Du är först i kön." in said_while_ringing
    assert not [h for h in call.call.heard if h.kind == "ringing"]  # no ringback, no silence
    assert call.call.bridged_with == leg.sid and call.children == []  # never redirected into a <Dial>
    with app.app_context():
        assert call_row(call.sid).answered_by_id == board.operators["op_anna"]
    assert emulator.errors == []


def test_a_transfer_made_before_the_welcome_ended_hangs_up_the_operators_waiting_leg(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    """Anna's browser answers during the welcome, so her leg waits for the caller to reach their
    queue. She transfers at once: the caller goes to the colleague, and her waiting leg ends rather
    than waiting on for a caller who will never come."""
    colleague = "+46701112233"
    emulator.register_number(colleague, PhoneNumber(mode="answer", answer_after=3))
    board, call = answered_during_welcome(app, clock, emulator, incoming_number)
    anna = board.operators["op_anna"]
    with app.app_context():
        transfers.start_blind_transfer(call_row(call.sid).id, anna, colleague, clock.now())
    emulator.tick_now()
    emulator.advance(15)

    (leg,) = operator_legs(emulator, "op_anna")
    assert leg.status == "completed"
    (colleague_leg,) = [c for c in emulator.calls if c.to == colleague]
    assert colleague_leg.status == "in-progress"
    assert call.bridged_with is not None and call.bridged_with.sid == colleague_leg.sid
    with app.app_context():
        assert operator_state(anna) in ("wrap_up", "available")
    call.hang_up()
    emulator.advance(5)
    with app.app_context():
        assert (call_row(call.sid).state, call_row(call.sid).outcome_reason) == ("completed", "transferred")
    assert emulator.errors == []


def test_a_caller_who_hangs_up_before_the_operators_leg_reached_them_is_abandoned_not_answered(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    """Anna's browser took the call during the welcome, but the caller hung up before it ended:
    they never talked to anyone. Counted as abandoned, on the missed-calls list, and Anna is free."""
    board, call = answered_during_welcome(app, clock, emulator, incoming_number)
    anna = board.operators["op_anna"]
    call.hang_up()
    emulator.advance(10)

    (leg,) = operator_legs(emulator, "op_anna")
    assert leg.status == "completed"  # her waiting leg was hung up
    with app.app_context():
        row = call_row(call.sid)
        assert (row.state, row.answered_at is not None) == ("abandoned", True)  # she did pick up
        assert operator_state(anna) in ("wrap_up", "available")
        with db.transaction() as session:
            assert session.scalars(select(MissedCall.reason).where(MissedCall.call_id == row.id)).all() == [
                "abandoned"
            ]
    assert emulator.errors == []


def test_a_missed_ring_leaves_the_caller_where_they_were_hearing_the_queue(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    with app.app_context():
        board = make_switchboard(("op_anna", "op_bo"), ring_timeout_seconds=10)
        for identity in ("op_anna", "op_bo"):
            operators.log_in(board.operators[identity], [board.queue_id], clock.now())
        queue_settings(board.queue_id, strategy="longest_idle")
    emulator.register_client("op_anna", ClientDevice(mode="ignore"))
    emulator.register_client("op_bo", ClientDevice(mode="ignore"))
    call = emulator.place_call(CALLER, incoming_number(board.number), CallerScript(patience=100))
    emulator.advance(90)

    legs = operator_legs(emulator, "op_anna", "op_bo")
    assert len(legs) >= 3 and {leg.status for leg in legs} == {"no-answer"}
    assert call.status == "in-progress" and call.children == []
    # Music and announcements throughout; never the "you keep your place" of a caller sent back.
    assert call.heard_text_contains("Du är först i kön.")
    assert not call.heard_text_contains("behåller din plats")
    with app.app_context():
        assert call_row(call.sid).state in ("waiting", "offered")
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
    # Each browser rang on a call of its own; the loser's was hung up while it rang.
    legs = operator_legs(emulator, "op_anna", "op_bo")
    assert sorted((leg.to, leg.status) for leg in legs) == [
        ("client:op_anna", "in-progress"),
        ("client:op_bo", "canceled"),
    ]
    assert call.children == []
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


def test_a_callers_queue_whose_sid_never_reached_us_is_found_by_name_and_deleted(
    app: Flask,
    clock: ManualClock,
    emulator: Emulator,
    incoming_number: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Enqueue action carries the QueueSid; when it never reaches us, the hourly sweep finds
    the queue in Twilio's list by its name and deletes it once it is an hour old."""
    monkeypatch.setattr(twilio_queues, "remember", lambda _call_sid, _queue_sid: None)  # lost on the way
    with app.app_context():
        board = make_switchboard(("op_anna",))
    gave_up = emulator.place_call(CALLER, incoming_number(board.number), CallerScript(patience=8))
    emulator.advance(60)
    assert gave_up.status == "completed"
    with app.app_context():
        name = f"koe-caller-{call_row(gave_up.sid).id}"
        assert call_row(gave_up.sid).twilio_queue_sid is None
    assert emulator.queue_by_name(name) is not None, "nothing knew its SID"

    with app.app_context():
        assert worker.delete_leaked_queues(clock.now()) == 0  # too young: its action may yet come
    emulator.advance(3600)
    with app.app_context():
        assert worker.delete_leaked_queues(clock.now()) == 1
    assert emulator.queue_by_name(name) is None
    assert emulator.errors == []
