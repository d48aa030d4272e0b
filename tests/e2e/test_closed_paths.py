"""The closed paths through the emulator, each with what the caller hears word for word: closed by
hours, holiday or closure (then goodbye or a forward), callers waiting when the queue closes (kept
and served, or told and forwarded), and nobody logged in (forwarded, told, or queued anyway)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta

from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import Call, Closure, ClosureQueue, Schedule, ScheduleRule
from queue_app.services import operators
from queue_app.sim import CallerScript, ClientDevice, Emulator, PhoneNumber

from .scenario import Switchboard, make_switchboard, queue_settings

CALLER = "+46701234567"
FORWARD = "+46709998877"


def with_office_hours(board: Switchboard) -> None:
    """Weekdays 08-17 in Stockholm; public holidays and Midsummer, Christmas and New Year's Eve closed."""
    with db.transaction() as session:
        schedule = Schedule(
            organisation_id=board.organisation_id,
            name="Kontorstid",
            holiday_categories=["public", "de_facto"],
        )
        schedule.rules.append(
            ScheduleRule(rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", starts=time(8), ends=time(17))
        )
        session.add(schedule)
        session.flush()
        schedule_id = schedule.id
    queue_settings(board.queue_id, schedule_id=schedule_id)


def state_and_reason(call_sid: str) -> tuple[str, str | None]:
    with db.transaction() as session:
        row = session.execute(select(Call.state, Call.outcome_reason).where(Call.call_sid == call_sid)).one()
    return row[0], row[1]


def test_it_says_the_holiday_message_in_english_on_easter_sunday_2027(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    clock.set(utc("2027-03-28 09:00"))  # 11:00 CEST on Easter Sunday, the day the clocks went forward
    with app.app_context():
        board = make_switchboard(language="en")
        with_office_hours(board)
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(30)
    assert call.heard_texts == [
        "We are closed today for the holiday. Please call again on a working day. Goodbye."
    ]
    assert call.status == "completed"
    with app.app_context():
        assert state_and_reason(call.sid) == ("closed", "holiday")


def test_it_forwards_a_caller_outside_opening_hours_without_a_goodbye(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    clock.set(utc("2026-11-27 17:30"))  # Friday 18:30 in Stockholm
    with app.app_context():
        board = make_switchboard(closed_action="forward", closed_forward_number=FORWARD)
        with_office_hours(board)
    emulator.register_number(FORWARD, PhoneNumber(mode="answer", answer_after=2))
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(20)
    assert call.bridged_with is not None and call.bridged_with.call.to == FORWARD
    assert call.heard_texts == []  # our goodbye would be wrong before a forward
    with app.app_context():
        assert state_and_reason(call.sid) == ("closed", "outside_hours")


def test_it_forwards_callers_during_a_closure_of_several_queues_and_reopens_when_it_ends_early(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    with app.app_context():
        board = make_switchboard(("op_anna",), closed_action="forward", closed_forward_number=FORWARD)
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
        with db.transaction() as session:
            closure = Closure(
                organisation_id=board.organisation_id,
                starts_at=clock.now() - timedelta(minutes=1),
                ends_at=clock.now() + timedelta(hours=1),
                reason="Brandövning",
            )
            session.add(closure)
            session.flush()
            session.add(ClosureQueue(closure_id=closure.id, queue_id=board.queue_id))
            closure_id = closure.id
    emulator.register_number(
        FORWARD, PhoneNumber(mode="answer", answer_after=2, script=CallerScript(talk_for=5))
    )
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=2))
    number = incoming_number(board.number)
    during = emulator.place_call(CALLER, number)
    emulator.advance(30)
    assert [(kind, to) for _, kind, to, _ in during.heard] == [("bridge", FORWARD)]  # no goodbye first
    assert during.status == "completed"  # the colleague talked 5 s and hung up
    with app.app_context():
        assert state_and_reason(during.sid) == ("closed", "closure")
        with db.transaction() as session:
            session.get(Closure, closure_id).ended_early_at = clock.now()  # type: ignore[union-attr]
    after = emulator.place_call("+46701230000", number)
    emulator.advance(20)
    assert after.heard_texts[0] == "Välkommen till Exempel AB."
    assert after.bridged_with is not None and after.bridged_with.call.to == "client:op_anna"


# --- callers waiting when the queue closes --------------------------------------------------------


def friday_before_five(app: Flask, clock: ManualClock, **settings: object) -> Switchboard:
    """Friday 16:58 in Stockholm, closing at 17:00; Anna logged in but in a meeting (paused)."""
    clock.set(utc("2026-11-27 15:58"))
    with app.app_context():
        board = make_switchboard(("op_anna",), **settings)
        with_office_hours(board)
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
        operators.pause(board.operators["op_anna"], "möte", clock.now())
    return board


def test_it_keeps_serving_callers_who_were_waiting_when_the_queue_closed(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    board = friday_before_five(app, clock, closing_while_waiting="serve")
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=2))
    number = incoming_number(board.number)
    waiting = emulator.place_call(CALLER, number)
    emulator.advance(180)  # past 17:00: still in the queue, told nothing about closing
    assert waiting.status == "in-progress" and waiting.bridged_with is None
    assert not any("stängt" in text for text in waiting.heard_texts)
    late = emulator.place_call("+46701230000", number)  # a new caller meets the closed queue
    emulator.advance(15)
    assert late.heard_texts == [
        "Vi har stängt just nu. Välkommen att ringa igen under våra öppettider. Hej då."
    ]
    with app.app_context():
        operators.resume(board.operators["op_anna"], clock.now())
    emulator.tick_now()
    assert waiting.wait_until(lambda: waiting.bridged_with is not None, timeout=30)
    assert waiting.bridged_with is not None and waiting.bridged_with.call.to == "client:op_anna"


def test_it_tells_waiting_callers_it_closed_then_forwards_them(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    board = friday_before_five(
        app, clock, closing_while_waiting="close", closed_action="forward", closed_forward_number=FORWARD
    )
    emulator.register_number(FORWARD, PhoneNumber(mode="answer", answer_after=2))
    waiting = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(100)
    assert waiting.bridged_with is None
    emulator.advance(40)  # 17:00 passes at 120 s
    assert waiting.bridged_with is not None and waiting.bridged_with.call.to == FORWARD
    bridged_at = next(at for at, kind, _, _ in waiting.heard if kind == "bridge")
    assert utc("2026-11-27 16:00") <= bridged_at < utc("2026-11-27 16:00:10")
    with app.app_context():
        assert state_and_reason(waiting.sid)[0] == "closed"


# --- nobody logged in ----------------------------------------------------------------------------


def test_it_tells_the_caller_nobody_can_answer_when_set_to_close(
    app: Flask, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    with app.app_context():
        board = make_switchboard(("op_anna",), no_operator_action="close", language="en")
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(20)
    assert call.heard_texts == [
        "There is no operator available to take your call at the moment. Please try again later. Goodbye."
    ]
    assert call.status == "completed"
    with app.app_context():
        assert state_and_reason(call.sid) == ("closed", "no_operator")


def test_it_queues_the_caller_anyway_with_no_promise_when_set_to_queue(
    app: Flask, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    with app.app_context():
        board = make_switchboard(("op_anna",), no_operator_action="queue")
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(20)
    assert call.heard_texts == [
        "Välkommen till Exempel AB.",
        "Just nu är alla våra telefonister upptagna. Var vänlig dröj kvar, så kopplas du fram så"
        " snart någon blir ledig.",
        "Du är först i kön.",  # and no waiting time: nobody is there to serve
    ]
    with app.app_context():
        assert state_and_reason(call.sid) == ("waiting", None)
