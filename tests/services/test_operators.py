"""Operators: log-in rules, pause, wrap-up, missed offers and automatic log-out, on real SQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, OperatorEvent, OperatorStatus, Organisation, Queue, QueueLogin
from queue_app.services import operators
from queue_app.services.operators import NotAllowed, NotLicensed, OperatorError

from ..factories import make_membership, make_org, make_queue, make_user


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture
def world(ctx: None) -> dict[str, int]:
    with db.transaction() as session:
        org = make_org(session)
        q1 = make_queue(session, org, name="Växeln", max_missed_offers=3, wrap_up_seconds=30)
        q2 = make_queue(session, org, name="Support")
        q3 = make_queue(session, org, name="Ekonomi")
        anna = make_user(session, org, name="Anna")
        make_membership(session, q1, anna)
        make_membership(session, q2, anna)
        make_membership(session, q3, anna, may_log_in=False)
        basic = make_user(session, org, name="Berit", plan="basic")
        make_membership(session, q1, basic)
        return {"org": org.id, "q1": q1.id, "q2": q2.id, "q3": q3.id, "anna": anna.id, "basic": basic.id}


def status_of(user_id: int) -> OperatorStatus:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        return status


def events_of(user_id: int) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(OperatorEvent.kind).where(OperatorEvent.user_id == user_id).order_by(OperatorEvent.id)
            )
        )


def test_it_logs_in_to_several_queues_at_once(world: dict[str, int], clock: ManualClock) -> None:
    view = operators.log_in(world["anna"], [world["q1"], world["q2"]], clock.now())
    assert view.state == "available"
    assert set(view.queue_ids) == {world["q1"], world["q2"]}
    assert events_of(world["anna"]).count("logged_in") == 2


def test_it_refuses_a_user_on_the_basic_plan(world: dict[str, int], clock: ManualClock) -> None:
    with pytest.raises(NotLicensed, match=r"Basic plan.*Pro, Business or Enterprise"):
        operators.log_in(world["basic"], [world["q1"]], clock.now())


def test_it_refuses_a_member_without_may_log_in(world: dict[str, int], clock: ManualClock) -> None:
    with pytest.raises(NotAllowed, match="You may not log in to: Ekonomi"):
        operators.log_in(world["anna"], [world["q1"], world["q3"]], clock.now())
    with db.transaction() as session:
        assert session.scalars(select(QueueLogin)).all() == []


def test_it_refuses_a_queue_the_user_is_not_a_member_of(world: dict[str, int], clock: ManualClock) -> None:
    with db.transaction() as session:
        org = make_org(session)
        other = make_queue(session, org, name="Elsewhere").id
        stranger = make_user(session, org).id
    with pytest.raises(NotAllowed, match="Elsewhere"):
        operators.log_in(stranger, [other], clock.now())
    # Another organisation's queue: refused without telling its name.
    with pytest.raises(NotAllowed, match="1 unknown queue") as refused:
        operators.log_in(stranger, [world["q1"]], clock.now())
    assert "Växeln" not in str(refused.value)


def test_it_needs_at_least_one_queue(world: dict[str, int], clock: ManualClock) -> None:
    with pytest.raises(OperatorError, match="at least one queue"):
        operators.log_in(world["anna"], [], clock.now())


def test_it_stays_available_when_logging_out_of_one_of_two_queues(
    world: dict[str, int], clock: ManualClock
) -> None:
    operators.log_in(world["anna"], [world["q1"], world["q2"]], clock.now())
    view = operators.log_out(world["anna"], [world["q1"]], clock.now())
    assert view.state == "available"
    assert view.queue_ids == (world["q2"],)
    view = operators.log_out(world["anna"], None, clock.now(), reason="end of day")
    assert view.state == "offline"
    assert view.logged_out_reason == "end of day"


def test_it_pauses_with_a_reason_and_resumes(world: dict[str, int], clock: ManualClock) -> None:
    operators.log_in(world["anna"], [world["q1"]], clock.now())
    view = operators.pause(world["anna"], "Lunch", clock.now())
    assert (view.state, view.pause_reason) == ("paused", "Lunch")
    view = operators.resume(world["anna"], clock.now())
    assert (view.state, view.pause_reason) == ("available", None)
    assert events_of(world["anna"])[-2:] == ["paused", "resumed"]


def test_it_refuses_to_pause_when_not_logged_in(world: dict[str, int], clock: ManualClock) -> None:
    with pytest.raises(OperatorError, match="Log in"):
        operators.pause(world["anna"], "Lunch", clock.now())


def _connect(world: dict[str, int], clock: ManualClock) -> int:
    """Anna logged in to q1 and on a call; returns the call id."""
    operators.log_in(world["anna"], [world["q1"]], clock.now())
    with db.transaction() as session:
        call = Call(
            organisation_id=world["org"],
            queue_id=world["q1"],
            call_sid="CA" + "c" * 32,
            from_number="+46701234567",
            to_number="+46855500001",
            state="connected",
            arrived_at=clock.now(),
            entered_queue_at=clock.now(),
            answered_by_id=world["anna"],
        )
        session.add(call)
        session.flush()
        status = session.get(OperatorStatus, world["anna"])
        assert status is not None
        status.state = "ringing"
        operators.record_answer(session, world["anna"], call, clock.now())
        return call.id


def test_it_refuses_to_pause_during_a_call(world: dict[str, int], clock: ManualClock) -> None:
    _connect(world, clock)
    with pytest.raises(OperatorError, match="during a call"):
        operators.pause(world["anna"], "Lunch", clock.now())


def test_it_starts_wrap_up_when_the_call_ends_and_ends_it_when_due(
    world: dict[str, int], clock: ManualClock
) -> None:
    call_id = _connect(world, clock)
    ended = clock.now()
    with db.transaction() as session:
        call = session.get(Call, call_id)
        assert call is not None
        operators.on_call_ended(session, call, ended)
        operators.on_call_ended(session, call, ended + timedelta(seconds=5))  # a second report: no change
    status = status_of(world["anna"])
    assert status.state == "wrap_up"
    assert status.wrap_up_until == ended + timedelta(seconds=30)
    assert status.last_call_ended_at == ended
    assert status.current_call_id is None
    assert operators.end_due_wrap_ups(ended + timedelta(seconds=29)) == 0
    assert operators.end_due_wrap_ups(ended + timedelta(seconds=30)) == 1
    assert status_of(world["anna"]).state == "available"


def test_it_lets_the_operator_end_wrap_up_early_or_ask_for_more(
    world: dict[str, int], clock: ManualClock
) -> None:
    call_id = _connect(world, clock)
    with db.transaction() as session:
        call = session.get(Call, call_id)
        assert call is not None
        operators.on_call_ended(session, call, clock.now())
    view = operators.extend_wrap_up(world["anna"], 60, clock.now())
    assert view.wrap_up_until == clock.now() + timedelta(seconds=90)
    assert operators.end_wrap_up(world["anna"], clock.now()).state == "available"


def test_it_skips_wrap_up_when_the_queue_has_none(world: dict[str, int], clock: ManualClock) -> None:
    with db.transaction() as session:
        from queue_app.models import Queue

        queue = session.get(Queue, world["q1"])
        assert queue is not None
        queue.wrap_up_seconds = 0
    call_id = _connect(world, clock)
    with db.transaction() as session:
        call = session.get(Call, call_id)
        assert call is not None
        operators.on_call_ended(session, call, clock.now())
    assert status_of(world["anna"]).state == "available"


def _miss(world: dict[str, int], outcome: str, clock: ManualClock) -> bool:
    with db.transaction() as session:
        from queue_app.models import Queue

        status = session.get(OperatorStatus, world["anna"])
        assert status is not None
        status.state = "ringing"
        logged_out = operators.record_missed_offer(
            session, world["anna"], session.get(Queue, world["q1"]), outcome, clock.now()
        )
        if not logged_out:
            operators.release_after_offer(session, world["anna"], clock.now())
        return logged_out


def test_it_counts_no_answer_declined_and_unreachable_apart(
    world: dict[str, int], clock: ManualClock
) -> None:
    operators.log_in(world["anna"], [world["q1"]], clock.now())
    assert not _miss(world, "no_answer", clock)
    assert not _miss(world, "declined", clock)
    status = status_of(world["anna"])
    assert (status.missed_no_answer, status.missed_declined, status.missed_unreachable) == (1, 1, 0)
    assert status.state == "available"


def test_it_logs_out_automatically_after_the_queues_consecutive_misses(
    world: dict[str, int], clock: ManualClock
) -> None:
    operators.log_in(world["anna"], [world["q1"], world["q2"]], clock.now())
    assert not _miss(world, "no_answer", clock)
    assert not _miss(world, "unreachable", clock)
    assert _miss(world, "declined", clock)
    status = status_of(world["anna"])
    assert status.state == "offline"
    assert status.logged_out_reason == operators.REASON_MISSED_OFFERS
    with db.transaction() as session:
        assert session.scalars(select(QueueLogin).where(QueueLogin.user_id == world["anna"])).all() == []
    # Logging in again is a fresh start.
    view = operators.log_in(world["anna"], [world["q1"]], clock.now())
    assert view.logged_out_reason is None
    assert operators.consecutive_misses(status_of(world["anna"])) == 0


def test_it_resets_the_misses_when_the_operator_answers(world: dict[str, int], clock: ManualClock) -> None:
    operators.log_in(world["anna"], [world["q1"]], clock.now())
    _miss(world, "no_answer", clock)
    _miss(world, "no_answer", clock)
    with db.transaction() as session:
        status = session.get(OperatorStatus, world["anna"])
        assert status is not None
        status.state = "ringing"
        call = Call(
            organisation_id=world["org"],
            queue_id=world["q1"],
            call_sid="CA" + "d" * 32,
            from_number="+46701234567",
            to_number="+46855500001",
            state="connected",
            arrived_at=clock.now(),
        )
        session.add(call)
        session.flush()
        operators.record_answer(session, world["anna"], call, clock.now())
    status = status_of(world["anna"])
    assert (status.state, operators.consecutive_misses(status)) == ("on_call", 0)


def test_it_never_logs_out_when_the_limit_is_zero(world: dict[str, int], clock: ManualClock) -> None:
    with db.transaction() as session:
        from queue_app.models import Queue

        queue = session.get(Queue, world["q1"])
        assert queue is not None
        queue.max_missed_offers = 0
    operators.log_in(world["anna"], [world["q1"]], clock.now())
    assert not any(_miss(world, "no_answer", clock) for _ in range(6))
    assert status_of(world["anna"]).state == "available"


# --- vanished consoles ---------------------------------------------------------------------------


def heartbeat(user_id: int, at: datetime) -> None:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        status.last_heartbeat_at = at


def test_it_logs_out_an_operator_whose_console_stopped_sending_heartbeats(
    world: dict[str, int], clock: ManualClock
) -> None:
    start = clock.now()
    operators.log_in(world["anna"], [world["q1"], world["q2"]], start)
    heartbeat(world["anna"], start + timedelta(seconds=30))
    silent_since = start + timedelta(seconds=30)
    with db.transaction() as session:
        assert operators.next_console_deadline(session, start, 90) == silent_since + timedelta(seconds=90)
    assert operators.log_out_vanished_consoles(silent_since + timedelta(seconds=89), 90) == []
    assert status_of(world["anna"]).state == "available"
    assert operators.log_out_vanished_consoles(silent_since + timedelta(seconds=90), 90) == [world["anna"]]
    status = status_of(world["anna"])
    assert (status.state, status.logged_out_reason) == ("offline", operators.REASON_CONSOLE_VANISHED)
    assert operators.view(world["anna"]).logged_out_reason == "console_vanished"  # type: ignore[union-attr]
    assert events_of(world["anna"])[-3:] == ["logged_out", "logged_out", "offline"]
    with db.transaction() as session:
        assert operators.next_console_deadline(session, silent_since + timedelta(seconds=90), 90) is None


def test_it_watches_only_browser_consoles_that_have_sent_a_heartbeat(
    world: dict[str, int], clock: ManualClock
) -> None:
    start = clock.now()
    with db.transaction() as session:
        org = session.get(Organisation, world["org"])
        queue = session.get(Queue, world["q1"])
        assert org is not None and queue is not None
        phone = make_user(session, org, client_identity=None, phone_number="+46701112233")
        make_membership(session, queue, phone)
        phone_id = phone.id
    operators.log_in(world["anna"], [world["q1"]], start)  # never sent a heartbeat
    operators.log_in(phone_id, [world["q1"]], start)
    heartbeat(phone_id, start)  # even if one were recorded, a phone has no console to vanish
    much_later = start + timedelta(hours=3)
    assert operators.log_out_vanished_consoles(much_later, 90) == []
    assert status_of(world["anna"]).state == "available"
    assert status_of(phone_id).state == "available"
    with db.transaction() as session:
        assert operators.next_console_deadline(session, start, 90) is None


def test_it_counts_silence_from_a_log_in_after_the_last_heartbeat(
    world: dict[str, int], clock: ManualClock
) -> None:
    yesterday = clock.now() - timedelta(hours=20)
    heartbeat_at_login = clock.now()
    operators.log_in(world["anna"], [world["q1"]], yesterday)
    heartbeat(world["anna"], yesterday)
    operators.log_out(world["anna"], None, yesterday + timedelta(hours=1))
    operators.log_in(world["anna"], [world["q1"]], heartbeat_at_login)
    assert operators.log_out_vanished_consoles(heartbeat_at_login + timedelta(seconds=60), 90) == []
    assert operators.log_out_vanished_consoles(heartbeat_at_login + timedelta(seconds=90), 90) == [
        world["anna"]
    ]


def test_it_leaves_an_operator_on_a_call_logged_in_however_silent(
    world: dict[str, int], clock: ManualClock
) -> None:
    _connect(world, clock)
    heartbeat(world["anna"], clock.now())
    later = clock.now() + timedelta(minutes=30)
    assert operators.log_out_vanished_consoles(later, 90) == []
    assert status_of(world["anna"]).state == "on_call"
    with db.transaction() as session:
        assert operators.next_console_deadline(session, clock.now(), 90) is None


def test_it_logs_out_a_silent_operator_in_wrap_up_or_paused(
    world: dict[str, int], clock: ManualClock
) -> None:
    operators.log_in(world["anna"], [world["q1"]], clock.now())
    operators.pause(world["anna"], "Lunch", clock.now())
    heartbeat(world["anna"], clock.now())
    assert operators.log_out_vanished_consoles(clock.now() + timedelta(seconds=91), 90) == [world["anna"]]
    assert status_of(world["anna"]).state == "offline"
