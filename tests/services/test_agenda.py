"""The worker's agenda: each fact read in its one statement agrees with the step it stands for.

Each test sets up the rows a step works on and checks the agenda sees exactly when that step has
work, and that a worker round then does it (or leaves it alone before its time).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from queue_app import worker
from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, Offer, OperatorStatus, Queue, Recording, SentMessage, Transfer
from queue_app.services import (
    agenda,
    callbacks,
    consult,
    dispatch,
    messages,
    offers,
    operators,
    prompts,
    transfers,
)

from ..factories import make_org
from .test_dispatch import (
    FakeRest,
    _add_call,
    _queue_with_operators,
    call_state,
    operator_state,
    ringing_offers,
)

TIMEOUT = 45


@pytest.fixture
def ctx(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRest]:
    rest = FakeRest()
    monkeypatch.setattr(worker.TwilioRest, "from_app", classmethod(lambda cls: rest))
    app.config["HEARTBEAT_TIMEOUT_SECONDS"] = TIMEOUT
    with app.app_context():
        yield rest


def read(at: datetime) -> agenda.Agenda:
    return agenda.read(at, TIMEOUT)


def nothing_to_do(todo: agenda.Agenda) -> bool:
    return not (
        todo.offers_expired
        or todo.wrap_ups_due
        or todo.console_due
        or todo.transfers_due
        or todo.messages_due
        or todo.someone_waits
        or todo.callbacks_wait
        or todo.dispatchable
        or todo.recordings_to_call
        or todo.recordings_to_fetch
        or todo.stray_legs
    )


def test_it_finds_nothing_to_do_in_an_empty_switchboard(ctx: FakeRest, clock: ManualClock) -> None:
    todo = read(clock.now())
    assert nothing_to_do(todo)
    assert todo.deadlines() == []
    assert agenda.next_callback_retry(todo) is None


def test_it_sees_a_waiting_caller_and_whether_someone_can_take_them(
    ctx: FakeRest, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    operators.pause(anna, "Lunch", now)
    _add_call(qid, now)
    todo = read(now)
    assert (todo.someone_waits, todo.dispatchable) == (True, False)
    operators.resume(anna, now)
    assert read(now).dispatchable


def test_it_sees_an_offer_expire_strictly_after_its_deadline(ctx: FakeRest, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now, ring_timeout_seconds=20)
    call_id = _add_call(qid, now)
    worker.run_pending(now)
    deadline = now + timedelta(seconds=20 + 15)
    todo = read(deadline)
    with db.reading() as session:
        assert todo.offer_deadline == dispatch.next_offer_deadline(session) == deadline
    assert not todo.offers_expired and not todo.someone_waits
    after = read(deadline + timedelta(microseconds=1))
    assert after.offers_expired
    worker.run_pending(deadline + timedelta(microseconds=1))
    # Reclaimed, and offered again in the same round (the agenda had seen nobody free): her
    # browser is rung on a new leg, and the reclaimed offer's leg is left for the stray-leg step.
    assert (call_state(call_id), operator_state(anna)) == ("offered", "ringing")
    first, again = ctx.created
    assert first["to"] == again["to"] and first["sid"] != again["sid"]
    assert [o.leg_sid for o in ringing_offers()] == [again["sid"]]
    assert read(deadline + timedelta(microseconds=1)).stray_legs


def wrap_up(user_id: int, until: datetime) -> None:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        status.state = "wrap_up"
        status.wrap_up_until = until


def test_it_ends_a_wrap_up_at_its_end_and_offers_the_waiting_caller_in_that_round(
    ctx: FakeRest, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    until = now + timedelta(seconds=30)
    wrap_up(anna, until)
    call_id = _add_call(qid, now)
    todo = read(now)
    with db.reading() as session:
        assert todo.wrap_up_end == operators.next_wrap_up_end(session) == until
    assert not todo.wrap_ups_due and not todo.dispatchable
    assert worker.run_pending(now) == until
    assert call_state(call_id) == "waiting"
    assert read(until).wrap_ups_due
    worker.run_pending(until)
    assert (call_state(call_id), operator_state(anna)) == ("offered", "ringing")
    (leg,) = ctx.created
    assert leg["url"].endswith(f"/answer?operator={anna}") and ctx.redirects == []


@pytest.mark.parametrize(
    ("state", "has_leg", "leg_done", "stray"),
    [
        ("ringing", True, False, False),  # it rings for a caller who is there
        ("accepted", True, False, False),  # the operator talks on it
        ("canceled", True, False, True),  # another operator took the call, or the caller left
        ("no_answer", True, False, True),  # reclaimed past its deadline
        ("declined", True, False, True),
        ("canceled", True, True, False),  # hung up by the worker, or its end reported
        ("no_answer", True, True, False),
        ("unreachable", False, False, False),  # the leg was never made
        ("canceled", False, False, False),  # a recall's offer: the caller's own <Dial>, no leg
    ],
)
def test_it_sees_a_stray_leg_exactly_when_its_offer_is_over_and_the_leg_still_up(
    ctx: FakeRest, clock: ManualClock, state: str, has_leg: bool, leg_done: bool, stray: bool
) -> None:
    now = clock.now()
    qid, _users = _queue_with_operators("fair", 1, now)
    _add_call(qid, now)
    worker.run_pending(now)
    assert not read(now).stray_legs  # a fresh leg rings
    with db.transaction() as session:
        session.execute(
            update(Offer).values(state=state, leg_done=leg_done, leg_sid=Offer.leg_sid if has_leg else None)
        )
    assert read(now).stray_legs is stray
    worker.run_pending(now)
    assert ctx.hung_up == ([ctx.created[0]["sid"]] if stray else [])
    assert not read(now).stray_legs  # hung up and marked done, or nothing to do


def test_it_sees_the_other_legs_stray_once_an_operator_answers_until_they_end(
    ctx: FakeRest, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna, bo) = _queue_with_operators("ring_all", 2, now)
    _add_call(qid, now)
    worker.run_pending(now)
    (first, second) = ringing_offers()
    assert not read(now).stray_legs
    offers.answer_leg(first.group_key, anna, first.leg_sid or "", now, confirmed=False)
    assert read(now).stray_legs  # Bo's leg rings on for a call Anna took
    # Twilio reports Bo's leg over (he hung up) before the worker came to it: nothing to hang up.
    offers.record_leg_status(second.group_key, "completed", now, user_id=bo)
    assert not read(now).stray_legs
    worker.run_pending(now)
    assert ctx.hung_up == []


def heartbeat(user_id: int, at: datetime) -> None:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        status.last_heartbeat_at = at


def test_it_sees_a_console_fall_silent_counting_from_its_last_heartbeat(
    ctx: FakeRest, clock: ManualClock
) -> None:
    now = clock.now()
    _qid, (anna,) = _queue_with_operators("fair", 1, now)  # logged in an hour ago
    heartbeat(anna, now)
    todo = read(now)
    with db.reading() as session:
        expected = operators.next_console_deadline(session, now, TIMEOUT)
    assert todo.console_deadline == expected == now + timedelta(seconds=TIMEOUT)
    assert not todo.console_due
    gone = read(now + timedelta(seconds=TIMEOUT))
    assert gone.console_due and gone.console_deadline is None  # the past is swept, not waited for
    worker.run_pending(now + timedelta(seconds=TIMEOUT))
    assert operator_state(anna) == "offline"


def test_it_counts_a_console_from_a_log_in_later_than_its_last_heartbeat(
    ctx: FakeRest, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    heartbeat(anna, now - timedelta(hours=2))  # an old heartbeat from yesterday's session
    operators.log_out(anna, None, now)
    operators.log_in(anna, [qid], now)
    todo = read(now)
    assert todo.console_deadline == now + timedelta(seconds=TIMEOUT)
    assert not todo.console_due


def add_transfer(call_id: int, next_attempt_at: datetime) -> None:
    with db.transaction() as session:
        call = session.get(Call, call_id)
        assert call is not None
        session.add(
            Transfer(
                organisation_id=call.organisation_id,
                call_id=call.id,
                to_number="+46701110000",
                state="camped_on",
                next_attempt_at=next_attempt_at,
                created_at=next_attempt_at,
            )
        )


def test_it_sees_a_transfer_attempt_come_due(ctx: FakeRest, clock: ManualClock) -> None:
    now = clock.now()
    qid, _users = _queue_with_operators("fair", 1, now)
    call_id = _add_call(qid, now, state="connected")
    add_transfer(call_id, now + timedelta(seconds=10))
    todo = read(now)
    with db.reading() as session:
        assert todo.transfer_attempt == transfers.next_attempt(session) == now + timedelta(seconds=10)
    assert not todo.transfers_due
    assert read(now + timedelta(seconds=10)).transfers_due


def test_it_sees_a_consult_step_come_due_and_not_as_a_blind_transfer(
    ctx: FakeRest, clock: ManualClock
) -> None:
    now = clock.now()
    qid, _users = _queue_with_operators("fair", 1, now)
    call_id = _add_call(qid, now, state="connected")
    add_transfer(call_id, now + timedelta(seconds=5))
    with db.transaction() as session:
        session.execute(update(Transfer).values(kind="consult"))
    todo = read(now)
    with db.reading() as session:
        assert todo.consult_step == consult.next_step(session) == now + timedelta(seconds=5)
    assert todo.transfer_attempt is None, "a consult step is not a blind transfer's attempt"
    assert not todo.consult_due
    assert read(now + timedelta(seconds=5)).consult_due
    assert now + timedelta(seconds=5) in todo.deadlines()


def add_message(
    organisation_id: int, status: str, next_attempt_at: datetime, provider_id: str | None
) -> None:
    with db.transaction() as session:
        session.add(
            SentMessage(
                organisation_id=organisation_id,
                channel="email",
                to_address="bo@example.se",
                body="Ring tillbaka",
                status=status,
                provider_id=provider_id,
                next_attempt_at=next_attempt_at,
                created_at=next_attempt_at,
                updated_at=next_attempt_at,
            )
        )


@pytest.mark.parametrize(
    ("status", "provider_id", "waits"),
    [("queued", None, True), ("sending", None, True), ("sending", "SM1", False), ("sent", None, False)],
)
def test_it_sees_a_message_come_due(
    ctx: FakeRest, clock: ManualClock, status: str, provider_id: str | None, waits: bool
) -> None:
    now = clock.now()
    qid, _users = _queue_with_operators("fair", 1, now)
    with db.reading() as session:
        org = session.scalar(select(Queue.organisation_id).where(Queue.id == qid))
    assert org is not None
    add_message(org, status, now + timedelta(seconds=5), provider_id)
    todo = read(now + timedelta(seconds=5))
    with db.reading() as session:
        assert todo.message_due == messages.next_due(session)
    assert todo.messages_due is waits
    assert not read(now).messages_due


def test_it_sees_a_caller_waiting_for_a_callback_and_their_retry(ctx: FakeRest, clock: ManualClock) -> None:
    now = clock.now()
    qid, _users = _queue_with_operators("fair", 1, now)
    retry = now + timedelta(minutes=5)
    _add_call(
        qid,
        now,
        state="callback_pending",
        announcement_state={callbacks.STATE_KEY: {"retry_at": retry.isoformat()}},
    )
    todo = read(now)
    assert todo.callbacks_wait and not todo.someone_waits
    assert agenda.next_callback_retry(todo) == retry


def add_recording(organisation_id: int, status: str, created_at: datetime) -> None:
    with db.transaction() as session:
        session.add(
            Recording(
                organisation_id=organisation_id, purpose=prompts.PURPOSE, status=status, created_at=created_at
            )
        )


@pytest.mark.parametrize(
    ("status", "age_minutes", "to_call", "to_fetch"),
    [
        (prompts.PENDING, 0, True, False),
        (prompts.KEPT, 0, False, True),
        (prompts.CALLING, 0, False, False),
        (prompts.CALLING, 31, False, True),  # a session to give up on
        (prompts.STORED, 90, False, False),
    ],
)
def test_it_sees_a_recording_by_phone_to_place_or_fetch(
    ctx: FakeRest, clock: ManualClock, status: str, age_minutes: int, to_call: bool, to_fetch: bool
) -> None:
    now = clock.now()
    with db.transaction() as session:
        org_id = make_org(session).id
    add_recording(org_id, status, now - timedelta(minutes=age_minutes))
    todo = read(now)
    assert (todo.recordings_to_call, todo.recordings_to_fetch) == (to_call, to_fetch)
