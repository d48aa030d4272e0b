"""The caller's journey through the emulator: hours, holidays, closures, overflow, announcements."""

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

from .scenario import make_switchboard, queue_settings

CALLER = "+46701234567"
FORWARD = "+46709998877"


def office_hours(organisation_id: int, queue_id: int) -> None:
    """Weekdays 08:00–17:00 Stockholm time, closed on public and de-facto holidays."""
    with db.transaction() as session:
        schedule = Schedule(organisation_id=organisation_id, name="Kontorstid")
        schedule.rules.append(
            ScheduleRule(rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", starts=time(8), ends=time(17))
        )
        session.add(schedule)
        session.flush()
        queue_settings_in(session, queue_id, schedule_id=schedule.id)


def queue_settings_in(session, queue_id: int, **values) -> None:  # type: ignore[no-untyped-def]
    from queue_app.models import Queue

    queue = session.get(Queue, queue_id)
    for name, value in values.items():
        setattr(queue, name, value)


def state_of(call_sid: str) -> str:
    with db.transaction() as session:
        return str(session.scalar(select(Call.state).where(Call.call_sid == call_sid)))


def test_it_tells_a_caller_outside_opening_hours_that_we_are_closed(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    clock.set(utc("2026-11-28 11:00"))  # Saturday noon in Stockholm
    with app.app_context():
        board = make_switchboard()
        office_hours(board.organisation_id, board.queue_id)
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(30)
    assert call.heard_text_contains("Vi har stängt just nu")
    assert not call.heard_text_contains("Välkommen till")
    assert call.status == "completed"
    with app.app_context():
        assert state_of(call.sid) == "closed"


def test_it_closes_on_midsummer_eve(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    clock.set(utc("2026-06-19 08:00"))  # Friday 10:00, Midsommarafton
    with app.app_context():
        board = make_switchboard()
        office_hours(board.organisation_id, board.queue_id)
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(30)
    assert call.heard_text_contains("helgstängt")
    with app.app_context():
        assert state_of(call.sid) == "closed"


def test_it_speaks_a_temporary_closures_own_message(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    with app.app_context():
        board = make_switchboard()
        with db.transaction() as session:
            closure = Closure(
                organisation_id=board.organisation_id,
                starts_at=clock.now() - timedelta(minutes=5),
                ends_at=clock.now() + timedelta(hours=2),
                reason="Personalmöte",
                message="Vi har personalmöte till klockan tolv. Ring gärna igen efter det.",
            )
            session.add(closure)
            session.flush()
            session.add(ClosureQueue(closure_id=closure.id, queue_id=board.queue_id))
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(30)
    assert call.heard_text_contains("personalmöte till klockan tolv")
    with app.app_context():
        assert state_of(call.sid) == "closed"


def busy_switchboard(app: Flask, clock: ManualClock, **settings):  # type: ignore[no-untyped-def]
    """One operator logged in but paused, so callers wait; the queue's overflow settings given."""
    with app.app_context():
        board = make_switchboard(("op_anna",))
        queue_settings(board.queue_id, **settings)
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
        operators.pause(board.operators["op_anna"], "möte", clock.now())
    return board


def test_it_forwards_callers_when_the_queue_is_full(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    board = busy_switchboard(
        app, clock, overflow_max_callers=1, overflow_action="forward", overflow_forward_number=FORWARD
    )
    emulator.register_number(FORWARD, PhoneNumber(mode="answer", answer_after=2))
    number = incoming_number(board.number)
    first = emulator.place_call(CALLER, number)
    emulator.advance(20)
    second = emulator.place_call("+46701230000", number)
    emulator.advance(20)
    assert first.status == "in-progress" and first.bridged_with is None  # still waiting, not thrown out
    assert second.bridged_with is not None and second.bridged_with.call.to == FORWARD
    with app.app_context():
        assert state_of(second.sid) == "overflowed"
        assert state_of(first.sid) == "waiting"


def test_it_answers_busy_when_the_queue_is_full_and_set_to_busy(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    board = busy_switchboard(app, clock, overflow_max_callers=1, overflow_action="busy")
    number = incoming_number(board.number)
    emulator.place_call(CALLER, number)
    emulator.advance(20)
    second = emulator.place_call("+46701230000", number)
    emulator.advance(5)
    assert second.status == "busy"
    assert second.heard_texts == []  # unanswered: the caller hears the network's busy tone
    with app.app_context():
        assert state_of(second.sid) == "overflowed"


def test_it_forwards_when_no_operator_is_logged_in(
    app: Flask, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    with app.app_context():
        board = make_switchboard(("op_anna",))
        queue_settings(board.queue_id, no_operator_action="forward", no_operator_forward_number=FORWARD)
    emulator.register_number(FORWARD, PhoneNumber(mode="answer", answer_after=2))
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(20)
    assert call.bridged_with is not None and call.bridged_with.call.to == FORWARD


def test_it_closes_waiting_callers_when_the_queue_closes(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    clock.set(utc("2026-11-27 15:58"))  # Friday 16:58 in Stockholm; closes at 17:00
    board = busy_switchboard(app, clock, closing_while_waiting="close")
    with app.app_context():
        office_hours(board.organisation_id, board.queue_id)
        operators.log_out(board.operators["op_anna"], None, clock.now())
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(60)
    assert call.status == "in-progress"
    assert not call.heard_text_contains("Vi har stängt")
    emulator.advance(120)  # past 17:00
    assert call.heard_text_contains("Vi har stängt just nu")
    assert call.status == "completed"
    with app.app_context():
        assert state_of(call.sid) == "closed"


def first_three_minutes(app: Flask, clock: ManualClock, emulator: Emulator, number: str, language: str):  # type: ignore[no-untyped-def]
    board = busy_switchboard(app, clock, language=language, periodic_interval_seconds=60)
    call = emulator.place_call(CALLER, number(board.number), CallerScript())
    emulator.advance(180)
    return [text for text in call.heard_texts]


def test_it_tells_a_waiting_caller_in_swedish_where_they_are(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    heard = first_three_minutes(app, clock, emulator, incoming_number, "sv")
    said = " | ".join(heard)
    assert heard[0].startswith("Välkommen"), said
    assert "Just nu är alla våra telefonister upptagna" in said
    assert "Du är först i kön" in said
    assert "Tack för att du väntar" in said
    # Nobody is serving, so no waiting time is promised.
    assert "väntetid" not in said


def test_it_tells_a_waiting_caller_in_english_where_they_are(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    heard = first_three_minutes(app, clock, emulator, incoming_number, "en")
    said = " | ".join(heard)
    assert heard[0].startswith("Welcome"), said
    assert "All our operators are busy" in said
    assert "You are first in the queue" in said
    assert "Thank you for holding" in said
    assert "waiting time" not in said


def test_it_answers_the_caller_after_the_announcements_when_an_operator_resumes(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    board = busy_switchboard(app, clock)
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=2))
    call = emulator.place_call(CALLER, incoming_number(board.number))
    emulator.advance(40)
    with app.app_context():
        operators.resume(board.operators["op_anna"], clock.now())
    emulator.tick_now()
    assert call.wait_until(lambda: call.bridged_with is not None, timeout=60)
