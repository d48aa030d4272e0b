"""While callers wait, through the emulator in virtual time: what they hear in the first three
minutes (exact words and instants, Swedish and English), and a full queue that closes itself and
reopens without flapping."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, CallEvent, Queue
from queue_app.services import operators
from queue_app.sim import CallerScript, ClientDevice, Emulator

from .scenario import Switchboard, make_switchboard, queue_settings

CALLER = "+46701234567"


def handled_before(board: Switchboard, clock: ManualClock, calls: int = 3) -> None:
    """The queue's books: `calls` callers an hour ago, each waited 10 minutes and talked 3."""
    now = clock.now()
    with db.transaction() as session:
        for i in range(calls):
            session.add(
                Call(
                    organisation_id=board.organisation_id,
                    queue_id=board.queue_id,
                    call_sid=f"CAbefore{i}",
                    from_number="+46700000000",
                    to_number=board.number,
                    state="completed",
                    arrived_at=now - timedelta(hours=1),
                    entered_queue_at=now - timedelta(hours=1),
                    answered_at=now - timedelta(minutes=50),
                    ended_at=now - timedelta(minutes=47),
                )
            )


def said_with_instants(
    app: Flask, clock: ManualClock, emulator: Emulator, number: Callable[[str], str], language: str
) -> tuple[list[tuple[float, str]], list[float]]:
    """Anna (the only operator) is on a long call and one caller waits, who gives up after 100 s.
    Our caller rings 15 s later and holds for three minutes: (seconds, words) of what they hear,
    and when hold music starts."""
    with app.app_context():
        board = make_switchboard(("op_anna",), language=language)
        handled_before(board, clock)
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=2))
    routed = number(board.number)
    emulator.place_call("+46701110000", routed, CallerScript(talk_for=600))
    emulator.advance(10)
    emulator.place_call("+46701110001", routed, CallerScript(patience=100))
    emulator.advance(5)
    start = clock.now()
    call = emulator.place_call(CALLER, routed, CallerScript())
    emulator.advance(180)
    heard = [((at - start).total_seconds(), kind, text) for at, kind, text, _ in call.heard]
    said = [(seconds, text) for seconds, kind, text in heard if kind == "say"]
    music = [seconds for seconds, kind, _ in heard if kind == "play"]
    # Hold music (10 s a track) fills every gap between the words: never a silence.
    instants = [seconds for seconds, _, _ in heard]
    assert all(b - a <= 10.01 for a, b in itertools.pairwise(instants))
    return said, music


def assert_heard(said: list[tuple[float, str]], expected: list[tuple[float, str]]) -> None:
    """The exact words, each at its instant (to the hundredth of a second)."""
    assert [text for _, text in said] == [text for _, text in expected]
    assert [at for at, _ in said] == pytest.approx([at for at, _ in expected], abs=0.01)


# Anna has talked three minutes + ten seconds' wrap-up a call: at number two the caller waits for
# two of them (380 s: "about six minutes"). At 110 s the caller ahead gives up: now first, and
# with one caller in 1,900 s of waiting hanging up, 1 / (1/190 + 1/1900) = 173 s ("about three").
# The first queue message comes once, then every minute "thank you for holding", position and wait.


def test_a_caller_hears_in_swedish_where_they_are_and_how_long_it_takes_minute_by_minute(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    said, music = said_with_instants(app, clock, emulator, incoming_number, "sv")
    assert_heard(
        said,
        [
            (0.0, "Välkommen till Exempel AB."),
            (
                1.69,
                "Just nu är alla våra telefonister upptagna. Var vänlig dröj kvar, så kopplas du fram så"
                " snart någon blir ledig.",
            ),
            (8.91, "Du är nummer två i kön."),
            (10.4, "Beräknad väntetid är ungefär sex minuter."),
            (63.07, "Tack för att du väntar. Du kopplas fram så snart en telefonist blir ledig."),
            (67.88, "Du är nummer två i kön."),
            (69.37, "Beräknad väntetid är ungefär sex minuter."),
            (122.04, "Tack för att du väntar. Du kopplas fram så snart en telefonist blir ledig."),
            (126.85, "Du är först i kön."),
            (128.02, "Beräknad väntetid är ungefär tre minuter."),
        ],
    )
    assert music[0] == pytest.approx(13.065, abs=0.01)  # right after the first wait
    assert 170 < music[-1] <= 180


def test_a_caller_hears_in_english_where_they_are_and_how_long_it_takes_minute_by_minute(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    said, music = said_with_instants(app, clock, emulator, incoming_number, "en")
    assert_heard(
        said,
        [
            (0.0, "Welcome to Exempel AB."),
            (
                1.43,
                "All our operators are busy at the moment. Please stay on the line, and you will be"
                " connected as soon as someone is free.",
            ),
            (9.23, "You are number two in the queue."),
            (11.31, "The estimated waiting time is about six minutes."),
            (64.43, "Thank you for holding. You will be connected as soon as an operator is free."),
            (69.37, "You are number two in the queue."),
            (71.45, "The estimated waiting time is about six minutes."),
            (124.57, "Thank you for holding. You will be connected as soon as an operator is free."),
            (129.51, "You are first in the queue."),
            (131.27, "The estimated waiting time is about three minutes."),
        ],
    )
    assert 170 < music[-1] <= 180


# --- overflow: closes itself when full, reopens when it eases, without flapping ------------------


def overflow_events(queue_id: int) -> list[str]:
    with db.transaction() as session:
        kinds = session.scalars(
            select(CallEvent.kind)
            .where(CallEvent.kind.in_(("overflow_started", "overflow_ended")))
            .order_by(CallEvent.at, CallEvent.id)
        ).all()
        active = session.scalar(select(Queue.overflow_active).where(Queue.id == queue_id))
    return [*kinds, f"active={active}"]


def test_a_full_queue_reopens_by_itself_when_it_eases_and_does_not_flap(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    # Ten callers close the queue (busy for the eleventh). It reopens only with at most eight
    # waiting (10 - 10 // 5) and a minute after it closed.
    with app.app_context():
        board = make_switchboard(("op_anna",))
        queue_settings(board.queue_id, overflow_max_callers=10, overflow_action="busy")
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
        operators.pause(board.operators["op_anna"], "möte", clock.now())  # nobody serves: they wait
    number = incoming_number(board.number)
    start = clock.now()

    def caller_at(second: float, patience: float | None = None):  # type: ignore[no-untyped-def]
        emulator.advance((start + timedelta(seconds=second) - clock.now()).total_seconds())
        return emulator.place_call(f"+467011{int(second * 10):05d}", number, CallerScript(patience=patience))

    waiting = [caller_at(0, patience=25), caller_at(1, patience=24)]
    waiting += [caller_at(2 + i) for i in range(8)]
    closes = caller_at(20)  # ten wait: the queue closes
    caller_at(25)  # 8 waiting now: callers 1 and 2 hung up at 25 s
    too_soon = caller_at(40)  # eased, but closed only 20 s ago
    reopens = caller_at(85)  # eased, and 65 s since it closed: in (9 waiting)
    ninth_to_tenth = caller_at(90)  # 10 waiting: in, and the queue closes again
    closed_again = caller_at(95)
    still_full = caller_at(160)  # a minute later, but still 10 waiting: no reopening
    emulator.advance(5)

    assert [c.status for c in (closes, too_soon, closed_again, still_full)] == ["busy"] * 4
    assert [c.status for c in (reopens, ninth_to_tenth)] == ["in-progress"] * 2
    assert [c.status for c in waiting] == ["completed"] * 2 + ["in-progress"] * 8  # never thrown out
    with app.app_context():
        assert overflow_events(board.queue_id) == [
            "overflow_started",
            "overflow_ended",
            "overflow_started",
            "active=True",
        ]
        with db.transaction() as session:
            states = dict(session.execute(select(Call.call_sid, Call.state)).all())
        assert {states[c.sid] for c in (closes, too_soon, closed_again, still_full)} == {"overflowed"}
        assert {states[c.sid] for c in (reopens, ninth_to_tenth)} == {"waiting"}
