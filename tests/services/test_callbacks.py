"""Callbacks on real SQL: the dispatcher's outbound call, the operator leg's answer and status, the
Dial's result, retries, and idempotence of every step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException

from queue_app import worker
from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, MissedCall, Offer, OperatorStatus, Queue, User
from queue_app.services import callbacks, dispatch

from ..factories import make_org, make_queue
from .test_dispatch import log_in_all, make_call, make_operator

CALLER = "+46701234567"


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def _board(now: datetime, operators: int = 1, **queue: Any) -> tuple[int, list[int]]:
    with db.transaction() as session:
        org = make_org(session)
        q = make_queue(
            session, org, strategy="longest_idle", ring_timeout_seconds=20, wrap_up_seconds=10, **queue
        )
        users = [make_operator(session, org, q).id for _ in range(operators)]
        qid = q.id
    log_in_all(users, [qid], now - timedelta(hours=1))
    return qid, users


def _call(queue_id: int, now: datetime, *, callback: bool = True, **kw: Any) -> int:
    with db.transaction() as session:
        queue = session.get(Queue, queue_id)
        assert queue is not None
        fields: dict[str, Any] = {"state": "callback_pending", "callback_number": CALLER} if callback else {}
        call = make_call(session, queue, now, **(fields | kw))
        if callback:
            session.add(
                MissedCall(
                    organisation_id=call.organisation_id,
                    call_id=call.id,
                    queue_id=queue_id,
                    reason="callback",
                    created_at=now,
                )
            )
        return call.id


def _call_row(call_id: int) -> Call:
    with db.transaction() as session:
        call = session.get(Call, call_id)
        assert call is not None
        session.expunge(call)
        return call


def _operator(user_id: int) -> OperatorStatus:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        session.expunge(status)
        return status


def _missed() -> list[tuple[str, str]]:
    with db.transaction() as session:
        return [(m.reason, m.status) for m in session.scalars(select(MissedCall).order_by(MissedCall.id))]


def _offered(now: datetime) -> dispatch.PendingRedirect:
    (pending,) = dispatch.dispatch_once(now)
    assert pending.kind == dispatch.CREATE_CALL
    assert pending.group_key is not None
    return pending


def test_it_dispatches_a_callback_as_an_outbound_call_to_the_operator(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna,) = _board(now)
    call_id = _call(qid, now)
    pending = _offered(now)
    with db.transaction() as session:
        identity = session.scalar(select(Offer.user_id).where(Offer.group_key == pending.group_key))
        assert identity == anna
        (offer,) = session.scalars(select(Offer)).all()
        assert offer.state == "ringing"
        user = session.get(User, anna)
        assert user is not None
        expected_to = f"client:{user.client_identity}"
    assert pending.to == expected_to
    assert pending.from_ == "+46855500001", "from the number the caller rang"
    assert pending.path == f"/twilio/callback/{pending.group_key}"
    assert (
        pending.status_url("https://koe.test/")
        == f"https://koe.test/twilio/callback/{pending.group_key}/status"
    )
    assert pending.timeout == 20
    assert _call_row(call_id).state == "offered"
    assert _operator(anna).state == "ringing"


def test_it_keeps_the_callers_place_among_waiting_callers(ctx: None, clock: ManualClock) -> None:
    # Both are outbound calls now (a queue offer rings the operator's own leg too): the path tells
    # a callback's call to its operator from a waiting caller's offer.
    now = clock.now()
    qid, _ = _board(now)
    waiting = _call(qid, now, callback=False, waited=60)
    callback = _call(qid, now, waited=120)
    (pending,) = dispatch.dispatch_once(now)
    assert (pending.call_id, pending.kind, pending.path, pending.user_id) == (
        callback,
        dispatch.CREATE_CALL,
        f"/twilio/callback/{pending.group_key}",
        None,
    )
    assert _call_row(waiting).state == "waiting"

    qid2, (bo,) = _board(now)
    older = _call(qid2, now, callback=False, waited=300)
    _call(qid2, now, waited=100)
    (pending,) = dispatch.dispatch_once(now)
    assert (pending.call_id, pending.kind, pending.path, pending.user_id) == (
        older,
        dispatch.CREATE_CALL,
        f"/twilio/offer/{pending.group_key}/answer?operator={bo}",
        bo,
    )


def test_it_rings_one_operator_for_a_callback_even_in_a_ring_all_queue(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, users = _board(now, operators=3)
    with db.transaction() as session:
        queue = session.get(Queue, qid)
        assert queue is not None
        queue.strategy = "ring_all"
    _call(qid, now)
    _offered(now)
    assert sorted(_operator(u).state for u in users) == ["available", "available", "ringing"]


def test_it_connects_the_operator_and_completes_the_callback(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna,) = _board(now, name="Växeln")
    call_id = _call(qid, now)
    key = _offered(now).group_key
    assert key is not None

    plan = callbacks.answer(key, now)
    assert (plan.active, plan.callback_number, plan.caller_id, plan.queue_name) == (
        True,
        CALLER,
        "+46855500001",
        "Växeln",
    )
    assert callbacks.answer(key, now).active, "a repeated answer webhook dials again, changing nothing"
    row = _call_row(call_id)
    assert (row.state, row.answered_by_id) == ("connected", anna)
    assert _operator(anna).state == "on_call"
    assert callbacks.record_operator_leg(key, "in-progress", now) == "recorded"
    assert callbacks.record_operator_leg(key, "completed", now) == "ignored"

    later = now + timedelta(seconds=90)
    assert callbacks.finish(key, "completed", later).outcome == "completed"
    assert callbacks.finish(key, "completed", later).outcome == "ignored"
    row = _call_row(call_id)
    assert (row.state, row.outcome_reason, row.ended_at) == ("completed", "answered", later)
    assert _missed() == [("callback", "handled")]
    assert _operator(anna).state == "wrap_up"
    assert not callbacks.answer(key, later).active, "a late answer after the end dials nobody"


def test_it_counts_an_unanswered_operator_leg_as_a_missed_offer(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna,) = _board(now)
    call_id = _call(qid, now)
    key = _offered(now).group_key
    assert key is not None
    assert callbacks.record_operator_leg(key, "no-answer", now) == "missed"
    assert callbacks.record_operator_leg(key, "no-answer", now) == "ignored"
    row = _call_row(call_id)
    assert row.state == "callback_pending"
    status = _operator(anna)
    assert (status.state, status.missed_no_answer) == ("available", 1)
    assert not callbacks.answer(key, now).active, "an answer after the miss hangs up"
    with db.transaction() as session:
        assert session.scalars(select(Offer.state)).all() == ["no_answer"]


def test_it_retries_a_callback_then_gives_up_after_three_attempts(
    app: Flask, ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _board(now)
    call_id = _call(qid, now)
    outcomes = []
    for attempt in range(3):
        key = _offered(now).group_key
        assert key is not None
        assert callbacks.answer(key, now).active
        result = callbacks.finish(key, "no-answer", now, retry_seconds=300)
        outcomes.append(result.outcome)
        assert callbacks.finish(key, "no-answer", now).outcome == "ignored"
        assert _operator(anna).state == "wrap_up"
        row = _call_row(call_id)
        assert row.answered_by_id is None
        if attempt < 2:
            assert row.state == "callback_pending"
            assert callbacks.retry_at(row) == now + timedelta(seconds=300)
            # Wrap-up over, but the retry is not due yet: nothing to dispatch.
            now += timedelta(seconds=30)
            worker.operators.end_due_wrap_ups(now)
            assert dispatch.dispatch_once(now) == []
            with db.transaction() as session:
                assert callbacks.next_retry(session, now) == callbacks.retry_at(row)
            now = callbacks.retry_at(row) or now
    assert outcomes == ["retry", "retry", "given_up"]
    row = _call_row(call_id)
    assert (row.state, row.outcome_reason) == ("abandoned", "callback_unreachable")
    assert callbacks.attempts(row) == 3
    assert _missed() == [("callback", "open")]


def test_it_puts_a_callback_back_when_the_outbound_call_cannot_be_placed(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _board(now)
    call_id = _call(qid, now)
    pending = _offered(now)

    class FailingRest:
        def create_call(self, *args: Any, **kwargs: Any) -> str:
            raise TwilioRestException(400, "http://x", "Not found", code=20404)

    assert worker.perform_redirects([pending], now, FailingRest()) == 1  # type: ignore[arg-type]
    assert _call_row(call_id).state == "callback_pending", "not abandoned: the caller has no live leg"
    assert _operator(anna).state == "available"
    assert _operator(anna).missed_no_answer == 0


def test_it_places_the_outbound_call_with_the_right_parameters(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, _ = _board(now)
    _call(qid, now)
    pending = _offered(now)
    made: list[dict[str, Any]] = []

    class RecordingRest:
        def create_call(
            self, to: str, from_: str, url: str, status_callback: str | None = None, timeout: int = 30
        ) -> str:
            made.append(
                {"to": to, "from_": from_, "url": url, "status_callback": status_callback, "timeout": timeout}
            )
            return "CA1"

    assert worker.perform_redirects([pending], now, RecordingRest()) == 0  # type: ignore[arg-type]
    base = worker.current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    assert made == [
        {
            "to": pending.to,
            "from_": "+46855500001",
            "url": f"{base}/twilio/callback/{pending.group_key}",
            "status_callback": f"{base}/twilio/callback/{pending.group_key}/status",
            "timeout": 20,
        }
    ]


def _mark_handled(call_id: int, qid: int, user_id: int, now: datetime) -> None:
    from queue_app.services import console

    with db.transaction() as session:
        missed_id = session.scalar(select(MissedCall.id).where(MissedCall.call_id == call_id))
        org_id = session.scalar(select(Queue.organisation_id).where(Queue.id == qid))
    assert missed_id is not None and org_id is not None
    console.mark_handled(org_id, [qid], include_unqueued=False, missed_id=missed_id, user_id=user_id, now=now)


def test_marking_a_missed_caller_handled_cancels_their_pending_callback(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _board(now)
    call_id = _call(qid, now)

    _mark_handled(call_id, qid, anna, now)

    row = _call_row(call_id)
    assert (row.state, row.outcome_reason) == ("completed", "callback_canceled")
    assert _missed() == [("callback", "handled")]
    assert dispatch.dispatch_once(now) == []  # nobody is called back


def test_marking_handled_while_the_callback_rings_takes_the_offer_back(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna,) = _board(now)
    call_id = _call(qid, now)
    pending = _offered(now)
    assert pending.group_key is not None

    _mark_handled(call_id, qid, anna, now)
    late_answer = callbacks.answer(pending.group_key, now)

    assert _call_row(call_id).state == "completed"
    assert late_answer.active is False  # the operator's leg, answered now, dials nobody
    status = _operator(anna)
    assert (status.state, status.missed_no_answer) == ("available", 0)


def test_marking_an_abandoned_caller_handled_changes_no_call(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna,) = _board(now)
    call_id = _call(qid, now, callback=False, state="abandoned")
    with db.transaction() as session:
        session.add(
            MissedCall(
                organisation_id=_call_row(call_id).organisation_id,
                call_id=call_id,
                queue_id=qid,
                reason="abandoned",
                created_at=now,
            )
        )

    _mark_handled(call_id, qid, anna, now)

    assert _call_row(call_id).state == "abandoned"
    assert _missed() == [("abandoned", "handled")]
