"""The dispatcher on real SQL: strategies, claims, reclaim, failed redirects, and racing dispatchers."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioRestException

from queue_app import worker
from queue_app.clock import ManualClock
from queue_app.domain import routing
from queue_app.extensions import db
from queue_app.models import Call, Offer, OperatorStatus, Organisation, Queue, QueueLogin, User
from queue_app.services import agenda, calls, dispatch, offers, operators

from ..conftest import TEST_DATABASE_URL
from ..factories import make_membership, make_org, make_queue, make_user

_sids = itertools.count(1)


def make_call(
    session: Session, queue: Queue, now: datetime, *, waited: int = 60, priority: int = 0, **fields: Any
) -> Call:
    values: dict[str, Any] = {
        "organisation_id": queue.organisation_id,
        "queue_id": queue.id,
        "call_sid": f"CA{next(_sids):032x}",
        "from_number": "+46701234567",
        "to_number": "+46855500001",
        "state": "waiting",
        "priority": priority,
        "arrived_at": now - timedelta(seconds=waited + 5),
        "entered_queue_at": now - timedelta(seconds=waited),
    }
    call = Call(**(values | fields))
    session.add(call)
    session.flush()
    return call


def make_operator(session: Session, org: Organisation, *queues: Queue, **overrides: Any) -> User:
    user = make_user(session, org, **overrides)
    for queue in queues:
        make_membership(session, queue, user)
    return user


def log_in_all(users: list[int], queue_ids: list[int], now: datetime) -> None:
    for user_id in users:
        operators.log_in(user_id, queue_ids, now)


def call_state(call_id: int) -> str:
    with db.transaction() as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call.state


def operator_state(user_id: int) -> str:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        return status.state


def ringing_offers() -> list[Offer]:
    with db.transaction() as session:
        return list(session.scalars(select(Offer).where(Offer.state == "ringing").order_by(Offer.id)))


def set_idle(user_id: int, since: datetime) -> None:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        status.last_call_ended_at = since


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def _queue_with_operators(strategy: str, count: int, now: datetime, **queue: Any) -> tuple[int, list[int]]:
    with db.transaction() as session:
        org = make_org(session)
        q = make_queue(session, org, strategy=strategy, **queue)
        users = [make_operator(session, org, q).id for _ in range(count)]
        qid = q.id
    log_in_all(users, [qid], now - timedelta(hours=1))
    return qid, users


def _add_call(queue_id: int, now: datetime, **kw: Any) -> int:
    with db.transaction() as session:
        queue = session.get(Queue, queue_id)
        assert queue is not None
        return make_call(session, queue, now, **kw).id


def test_it_offers_a_waiting_call_and_claims_call_and_operator(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now, ring_timeout_seconds=20)
    call_id = _add_call(qid, now)
    redirects = dispatch.dispatch_once(now)
    assert len(redirects) == 1
    (offer,) = ringing_offers()
    # No redirect of the caller: an outbound call to Anna's browser, from the number the caller rang.
    (leg,) = redirects
    prefix = f"http://koe.test/twilio/offer/{offer.group_key}"
    assert (leg.kind, leg.user_id, leg.timeout) == (dispatch.CREATE_CALL, anna, 20)
    assert leg.to is not None and leg.to.startswith("client:")
    assert leg.url("http://koe.test/") == f"{prefix}/answer?operator={anna}"
    assert leg.status_url("http://koe.test/") == f"{prefix}/leg?operator={anna}"
    with db.transaction() as session:
        assert leg.from_ == session.get(Call, call_id).to_number  # type: ignore[union-attr]
    assert (offer.call_id, offer.user_id, offer.queue_id) == (call_id, anna, qid)
    assert offer.deadline_at == now + timedelta(seconds=20 + 15)
    assert call_state(call_id) == "offered"
    assert operator_state(anna) == "ringing"
    # Nothing left to offer: a second round changes nothing.
    assert dispatch.dispatch_once(now) == []


def test_it_rings_a_phone_operators_own_leg_from_the_number_the_caller_rang(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    with db.transaction() as session:
        org = make_org(session)
        queue = make_queue(session, org, strategy="ring_all", ring_timeout_seconds=25)
        browser = make_operator(session, org, queue).id
        phone = make_operator(session, org, queue, client_identity=None, phone_number="+46701112233").id
        qid = queue.id
    log_in_all([browser, phone], [qid], now - timedelta(hours=1))
    call_id = _add_call(qid, now, from_number="+46709998877", to_number="+46855500001")
    legs = {leg.user_id: leg for leg in dispatch.dispatch_once(now)}
    (offer, _) = ringing_offers()
    prefix = f"/twilio/offer/{offer.group_key}"
    with db.transaction() as session:
        identity = session.get(User, browser).client_identity  # type: ignore[union-attr]
    # One leg per operator, none a redirect of the caller (who stays in their queue).
    assert {u: (leg.kind, leg.call_id, leg.to, leg.from_, leg.timeout) for u, leg in legs.items()} == {
        # A REST call's From is one of our own numbers: the one the caller rang.
        browser: (dispatch.CREATE_CALL, call_id, f"client:{identity}", "+46855500001", 25),
        phone: (dispatch.CREATE_CALL, call_id, "+46701112233", "+46855500001", 25),
    }
    assert {u: (leg.path, leg.status_path) for u, leg in legs.items()} == {
        u: (f"{prefix}/answer?operator={u}", f"{prefix}/leg?operator={u}") for u in (browser, phone)
    }
    assert all(leg.group_key == offer.group_key for leg in legs.values())


def test_it_gives_fair_calls_to_whoever_answered_fewest_today(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna, bo) = _queue_with_operators("fair", 2, now)
    with db.transaction() as session:
        queue = session.get(Queue, qid)
        assert queue is not None
        for _ in range(2):
            make_call(
                session,
                queue,
                now,
                state="completed",
                answered_by_id=anna,
                answered_at=now - timedelta(hours=1),
            )
        # Yesterday's calls (before midnight in Stockholm) do not count.
        for _ in range(3):
            make_call(
                session,
                queue,
                now,
                state="completed",
                answered_by_id=bo,
                answered_at=now - timedelta(hours=12),
            )
        make_call(
            session, queue, now, state="completed", answered_by_id=bo, answered_at=now - timedelta(hours=2)
        )
    set_idle(bo, now - timedelta(seconds=5))
    set_idle(anna, now - timedelta(seconds=500))
    _add_call(qid, now)
    dispatch.dispatch_once(now)
    assert [o.user_id for o in ringing_offers()] == [bo]


def test_it_gives_the_call_to_the_longest_idle_operator(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna, bo, cilla) = _queue_with_operators("longest_idle", 3, now)
    set_idle(anna, now - timedelta(seconds=30))
    set_idle(bo, now - timedelta(seconds=600))
    set_idle(cilla, now - timedelta(seconds=100))
    _add_call(qid, now)
    dispatch.dispatch_once(now)
    assert [o.user_id for o in ringing_offers()] == [bo]


def test_it_remembers_round_robin_between_rounds(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, users = _queue_with_operators("round_robin", 3, now)
    got = []
    for i in range(4):
        at = now + timedelta(seconds=i)
        _add_call(qid, at)
        dispatch.dispatch_once(at)
        (offer,) = ringing_offers()
        got.append(offer.user_id)
        with db.transaction() as session:  # the operator declines; back to available
            o = session.get(Offer, offer.id)
            assert o is not None
            o.state = "declined"
            call = session.get(Call, o.call_id)
            assert call is not None
            call.state = "completed"
            operators.release_after_offer(session, o.user_id, at)
    assert got == [users[0], users[1], users[2], users[0]]


def test_it_rings_parallel_and_ring_all_groups(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, users = _queue_with_operators("parallel", 4, now, parallel_count=3)
    for i, user_id in enumerate(users):
        set_idle(user_id, now - timedelta(seconds=10 * (i + 1)))
    _add_call(qid, now)
    dispatch.dispatch_once(now)
    offers = ringing_offers()
    assert sorted(o.user_id for o in offers) == sorted(users[1:])
    assert len({o.group_key for o in offers}) == 1

    qid2, users2 = _queue_with_operators("ring_all", 3, now)
    _add_call(qid2, now)
    dispatch.dispatch_once(now)
    assert sorted(o.user_id for o in ringing_offers() if o.queue_id == qid2) == sorted(users2)


def test_it_offers_a_multi_queue_operator_only_one_call(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    with db.transaction() as session:
        org = make_org(session)
        q1, q2 = make_queue(session, org), make_queue(session, org)
        anna = make_operator(session, org, q1, q2).id
        older = make_call(session, q2, now, waited=300).id
        newer = make_call(session, q1, now, waited=30).id
        ids = (q1.id, q2.id)
    log_in_all([anna], list(ids), now)
    dispatch.dispatch_once(now)
    assert [(o.call_id, o.user_id) for o in ringing_offers()] == [(older, anna)]
    assert call_state(newer) == "waiting"


def test_it_skips_paused_wrap_up_deviceless_and_logged_out_operators(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    with db.transaction() as session:
        org = make_org(session)
        q = make_queue(session, org)
        paused = make_operator(session, org, q).id
        wrapping = make_operator(session, org, q).id
        deviceless = make_operator(session, org, q, client_identity=None, phone_number=None).id
        other_queue = make_operator(session, org, make_queue(session, org)).id
        qid = q.id
    log_in_all([paused, wrapping, deviceless], [qid], now)
    operators.pause(paused, "Lunch", now)
    with db.transaction() as session:
        status = session.get(OperatorStatus, wrapping)
        assert status is not None
        status.state = "wrap_up"
        status.wrap_up_until = now + timedelta(minutes=5)
    call_id = _add_call(qid, now)
    assert dispatch.dispatch_once(now) == []
    assert call_state(call_id) == "waiting"
    assert other_queue  # a member of another queue is never considered


def test_it_widens_skills_after_the_queues_wait(ctx: None, clock: ManualClock) -> None:
    from queue_app.models import Skill, UserSkill

    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now, skill_widen_after_seconds=60)
    with db.transaction() as session:
        queue = session.get(Queue, qid)
        assert queue is not None
        skill = Skill(organisation_id=queue.organisation_id, name="english")
        session.add(skill)
        session.flush()
        session.add(UserSkill(user_id=anna, skill_id=skill.id, level=3))
    call_id = _add_call(qid, now, waited=30, required_skills={"english": 5})
    assert dispatch.dispatch_once(now) == []
    later = now + timedelta(seconds=91)  # waited 121 s: two steps, 5 -> 3
    assert len(dispatch.dispatch_once(later)) == 1
    assert call_state(call_id) == "offered"


def test_it_names_the_widening_instant_as_the_workers_next_deadline(
    ctx: None, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from queue_app.models import Skill, UserSkill

    rest = FakeRest()
    monkeypatch.setattr(worker.TwilioRest, "from_app", classmethod(lambda cls: rest))
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now, skill_widen_after_seconds=60)
    with db.transaction() as session:
        queue = session.get(Queue, qid)
        assert queue is not None
        skill = Skill(organisation_id=queue.organisation_id, name="english")
        session.add(skill)
        session.flush()
        session.add(UserSkill(user_id=anna, skill_id=skill.id, level=3))
    call_id = _add_call(qid, now, waited=30, required_skills={"english": 5})
    widened = now + timedelta(seconds=90)  # 120 s of waiting: two steps, 5 -> 3
    assert dispatch.dispatch_round(now).next_widening_at == widened
    assert worker.run_pending(now) == widened
    assert worker.run_pending(widened - timedelta(microseconds=1)) == widened
    assert call_state(call_id) == "waiting"
    worker.run_pending(widened)
    assert call_state(call_id) == "offered"
    assert operator_state(anna) == "ringing"
    assert len(rest.created) == 1  # her browser rings; the caller stays in the queue


def test_it_reclaims_offers_past_their_deadline(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now, ring_timeout_seconds=20)
    call_id = _add_call(qid, now)
    with db.transaction() as session:
        entered = session.get(Call, call_id).entered_queue_at  # type: ignore[union-attr]
    dispatch.dispatch_once(now)
    assert dispatch.reclaim_expired_offers(now + timedelta(seconds=35)) == 0
    assert dispatch.reclaim_expired_offers(now + timedelta(seconds=36)) == 1
    assert call_state(call_id) == "waiting"
    assert operator_state(anna) == "available"
    with db.transaction() as session:
        call = session.get(Call, call_id)
        assert call is not None and call.entered_queue_at == entered
        status = session.get(OperatorStatus, anna)
        assert status is not None and operators.consecutive_misses(status) == 0
    assert ringing_offers() == []


class FakeRest:
    """Twilio's REST port at the boundary: records what the worker asked for.

    `fail_with` makes every request fail; with `fail_to` only the legs created to that address.
    """

    def __init__(self, fail_with: Exception | None = None, fail_to: str | None = None) -> None:
        self.fail_with = fail_with
        self.fail_to = fail_to
        self.redirects: list[tuple[str, str]] = []
        self.created: list[dict[str, Any]] = []
        self.hung_up: list[str] = []

    def _fails(self, to: str | None = None) -> None:
        if self.fail_with and (self.fail_to is None or self.fail_to == to):
            raise self.fail_with

    def redirect_call(self, call_sid: str, url: str) -> str:
        self._fails()
        self.redirects.append((call_sid, url))
        return "in-progress"

    def create_call(
        self, to: str, from_: str, url: str, status_callback: str | None = None, timeout: int = 30
    ) -> str:
        self._fails(to)
        sid = f"CA{uuid.uuid4().hex}"  # as Twilio's: "CA" and 32 hex digits
        self.created.append(
            {
                "sid": sid,
                "to": to,
                "from": from_,
                "url": url,
                "status_callback": status_callback,
                "timeout": timeout,
            }
        )
        return sid

    def hang_up(self, call_sid: str) -> None:
        self._fails()
        self.hung_up.append(call_sid)

    def sid_to(self, to: str) -> str:
        (sid,) = [leg["sid"] for leg in self.created if leg["to"] == to]
        return sid


def offer_rows() -> dict[int, Offer]:
    """Every offer, by operator (one call in these tests)."""
    with db.transaction() as session:
        return {o.user_id: o for o in session.scalars(select(Offer).order_by(Offer.id))}


def misses(user_id: int) -> tuple[int, int]:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        return operators.consecutive_misses(status), status.missed_unreachable


def test_it_creates_the_legs_only_after_commit_and_frees_an_operator_whose_leg_failed(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna, bo) = _queue_with_operators("ring_all", 2, now)
    call_id = _add_call(qid, now)
    legs = dispatch.dispatch_once(now)
    # Committed before any REST request: both ring in our rows, no leg exists yet.
    assert {o.user_id: (o.state, o.leg_sid) for o in ringing_offers()} == {
        anna: ("ringing", None),
        bo: ("ringing", None),
    }
    by_user = {leg.user_id: leg for leg in legs}
    error = TwilioRestException(500, "http://x", "Internal error", code=20500)
    rest = FakeRest(error, fail_to=by_user[anna].to)
    assert worker.perform_redirects(legs, now, rest) == 1  # type: ignore[arg-type]
    # Anna's leg was never made: her offer ends unreachable, not a miss of hers, and she is free.
    # Bo's still rings, so the caller stays offered to him.
    rows = offer_rows()
    assert (rows[anna].state, rows[anna].leg_sid, rows[bo].state) == ("unreachable", None, "ringing")
    assert rows[bo].leg_sid == rest.sid_to(by_user[bo].to or "")
    assert (operator_state(anna), operator_state(bo), call_state(call_id)) == (
        "available",
        "ringing",
        "offered",
    )
    assert misses(anna) == (0, 0)
    assert rest.redirects == []


def test_it_puts_the_caller_back_to_waiting_when_no_leg_could_be_made(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna, bo) = _queue_with_operators("ring_all", 2, now)
    call_id = _add_call(qid, now)
    with db.transaction() as session:
        entered = session.get(Call, call_id).entered_queue_at  # type: ignore[union-attr]
    legs = dispatch.dispatch_once(now)
    rest = FakeRest(TwilioRestException(500, "http://x", "Internal error", code=20500))
    assert worker.perform_redirects(legs, now, rest) == 2  # type: ignore[arg-type]
    assert {u: o.state for u, o in offer_rows().items()} == {anna: "unreachable", bo: "unreachable"}
    assert (operator_state(anna), operator_state(bo)) == ("available", "available")
    assert misses(anna) == misses(bo) == (0, 0)
    # Back to waiting with their place kept, and not abandoned: their own leg is untouched.
    assert call_state(call_id) == "waiting"
    with db.transaction() as session:
        assert session.get(Call, call_id).entered_queue_at == entered  # type: ignore[union-attr]
    assert rest.created == [] and rest.redirects == [] and rest.hung_up == []


def caller_hangs_up(call_id: int, now: datetime) -> None:
    """The caller's own status callback: their call is over."""
    with db.transaction() as session:
        sid = session.get(Call, call_id).call_sid  # type: ignore[union-attr]
    calls.record_status(calls.StatusCallback(sid, "completed", 1), now)


def test_it_hangs_up_the_legs_still_ringing_for_a_caller_who_hung_up(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna, bo) = _queue_with_operators("ring_all", 2, now)
    call_id = _add_call(qid, now)
    rest = FakeRest()
    assert worker.perform_redirects(dispatch.dispatch_once(now), now, rest) == 0  # type: ignore[arg-type]
    sids = sorted(leg["sid"] for leg in rest.created)
    assert len(sids) == 2
    assert worker.hang_up_stray_legs(rest) == 0  # type: ignore[arg-type]
    assert rest.hung_up == []  # both still ring for a caller who is there
    caller_hangs_up(call_id, now + timedelta(seconds=3))
    # The caller's status callback ends the call and the offers; nobody is charged with a miss.
    assert call_state(call_id) == "abandoned"
    assert {u: o.state for u, o in offer_rows().items()} == {anna: "canceled", bo: "canceled"}
    assert (operator_state(anna), operator_state(bo)) == ("available", "available")
    assert misses(anna) == misses(bo) == (0, 0)
    assert read_agenda(now).stray_legs
    # Their phones would ring on for nobody: the worker hangs both legs up, once each.
    assert worker.hang_up_stray_legs(rest) == 0  # type: ignore[arg-type]
    assert sorted(rest.hung_up) == sids
    assert [o.leg_done for o in offer_rows().values()] == [True, True]
    assert not read_agenda(now).stray_legs
    assert worker.hang_up_stray_legs(rest) == 0  # type: ignore[arg-type]
    assert sorted(rest.hung_up) == sids


def read_agenda(now: datetime) -> agenda.Agenda:
    return agenda.read(now, worker.heartbeat_timeout())


def test_it_hangs_up_the_other_legs_once_an_operator_took_the_call(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    qid, (anna, bo, cay) = _queue_with_operators("ring_all", 3, now)
    call_id = _add_call(qid, now)
    rest = FakeRest()
    worker.perform_redirects(dispatch.dispatch_once(now), now, rest)  # type: ignore[arg-type]
    sid = {u: o.leg_sid for u, o in offer_rows().items()}
    # Cay's leg ended by itself (she declined): its end is reported, nothing to hang up.
    offers.record_leg_status(offer_rows()[cay].group_key, "busy", now, user_id=cay)
    # Anna answers her leg in the browser: she takes the caller, Bo's offer is canceled.
    group = offer_rows()[anna].group_key
    answer = offers.answer_leg(group, anna, sid[anna] or "", now, confirmed=False)
    assert answer.step in (offers.LegStep.BRIDGE, offers.LegStep.HOLD)
    assert call_state(call_id) == "connected"
    rows = offer_rows()
    assert {u: (o.state, o.leg_done) for u, o in rows.items()} == {
        anna: ("accepted", False),
        bo: ("canceled", False),
        cay: ("declined", True),
    }
    assert worker.hang_up_stray_legs(rest) == 0  # type: ignore[arg-type]
    # Only Bo's: never the leg Anna talks on, nor the one that already ended.
    assert rest.hung_up == [sid[bo]]
    assert offer_rows()[bo].leg_done
    assert operator_state(bo) == "available" and misses(bo) == (0, 0)
    worker.hang_up_stray_legs(rest)  # type: ignore[arg-type]
    assert rest.hung_up == [sid[bo]]  # once
    # Twilio then reports the leg's end: nothing changes twice.
    offers.record_leg_status(group, "canceled", now, user_id=bo)
    assert (call_state(call_id), operator_state(anna), operator_state(bo)) == (
        "connected",
        "on_call",
        "available",
    )


def _one_stray_leg(now: datetime) -> str:
    qid, _ = _queue_with_operators("fair", 1, now)
    call_id = _add_call(qid, now)
    rest = FakeRest()
    worker.perform_redirects(dispatch.dispatch_once(now), now, rest)  # type: ignore[arg-type]
    caller_hangs_up(call_id, now)
    (leg,) = rest.created
    return str(leg["sid"])


@pytest.mark.parametrize("code", [20404, 21220])
def test_it_marks_a_leg_twilio_says_is_gone_as_done(ctx: None, clock: ManualClock, code: int) -> None:
    now = clock.now()
    _one_stray_leg(now)
    gone = FakeRest(TwilioRestException(404, "http://x", "Not found", code=code))
    assert worker.hang_up_stray_legs(gone) == 0  # type: ignore[arg-type]
    assert [o.leg_done for o in offer_rows().values()] == [True]
    assert not read_agenda(now).stray_legs


@pytest.mark.parametrize(
    "error",
    [TwilioRestException(500, "http://x", "Internal error", code=20500), ConnectionError("reset by peer")],
)
def test_it_keeps_a_stray_leg_for_the_next_round_when_twilio_fails(
    ctx: None, clock: ManualClock, error: Exception
) -> None:
    now = clock.now()
    sid = _one_stray_leg(now)
    assert worker.hang_up_stray_legs(FakeRest(error)) == 1  # type: ignore[arg-type]
    assert [o.leg_done for o in offer_rows().values()] == [False]
    assert read_agenda(now).stray_legs
    rest = FakeRest()
    assert worker.hang_up_stray_legs(rest) == 0  # type: ignore[arg-type]
    assert rest.hung_up == [sid]
    assert [o.leg_done for o in offer_rows().values()] == [True]


def test_it_runs_a_worker_round_and_reports_the_next_deadline(
    app: Flask, ctx: None, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now, ring_timeout_seconds=20)
    call_id = _add_call(qid, now)
    rest = FakeRest()
    monkeypatch.setattr(worker.TwilioRest, "from_app", classmethod(lambda cls: rest))
    assert worker.run_pending(now) == now + timedelta(seconds=35)
    (offer,) = ringing_offers()
    with db.transaction() as session:
        caller = session.get(Call, call_id)
        identity = session.get(User, anna).client_identity  # type: ignore[union-attr]
        assert caller is not None
    prefix = f"http://koe.test/twilio/offer/{offer.group_key}"
    (leg,) = rest.created
    assert leg == {
        "sid": offer.leg_sid,
        "to": f"client:{identity}",
        "from": caller.to_number,
        "url": f"{prefix}/answer?operator={anna}",
        "status_callback": f"{prefix}/leg?operator={anna}",
        "timeout": 20,
    }
    assert rest.redirects == []  # the caller stays in their queue
    # Reclaimed and offered again: the new offer's deadline is next, with a new leg.
    assert worker.run_pending(now + timedelta(seconds=36)) == now + timedelta(seconds=36 + 35)
    assert len(rest.created) == 2
    assert (call_state(call_id), operator_state(anna)) == ("offered", "ringing")
    # The reclaimed offer's leg is a stray one: the next round hangs it up, and only it.
    worker.run_pending(now + timedelta(seconds=37))
    assert rest.hung_up == [leg["sid"]]
    assert [o.leg_sid for o in ringing_offers()] == [rest.created[1]["sid"]]


def test_it_runs_the_loop_for_a_given_number_of_rounds(
    app: Flask, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[datetime] = []
    monkeypatch.setattr(worker, "run_pending", lambda now: rounds.append(now) or now)
    worker.run_forever(app, interval=0.01, install_signals=False, max_rounds=3)
    assert rounds == [clock.now()] * 3


def test_it_keeps_one_dispatcher_at_work_at_a_time(
    app: Flask, ctx: None, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.now()
    qid, _users = _queue_with_operators("fair", 2, now)
    _add_call(qid, now)
    _add_call(qid, now)
    inside, release = threading.Event(), threading.Event()
    real_plan = routing.plan_offers

    def slow_plan(*args: Any) -> Any:
        inside.set()
        assert release.wait(10)
        return real_plan(*args)

    monkeypatch.setattr(routing, "plan_offers", slow_plan)
    results: list[int] = []

    def first() -> None:
        with app.app_context():
            results.append(len(dispatch.dispatch_once(now)))

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    assert dispatch.dispatch_once(now) == []  # the other dispatcher holds the lock
    release.set()
    thread.join(10)
    assert results == [2]


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="row locks need PostgreSQL")
def test_it_never_double_books_when_two_dispatchers_race(
    app: Flask, ctx: None, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL row locks")
    now = clock.now()
    with db.transaction() as session:
        org = make_org(session)
        queues = [make_queue(session, org, strategy=s) for s in ("fair", "longest_idle", "parallel")]
        users = [make_operator(session, org, *queues).id for _ in range(6)]
        for i in range(12):
            make_call(session, queues[i % 3], now, waited=100 - i)
        qids = [q.id for q in queues]
    log_in_all(users, qids, now)
    barrier = threading.Barrier(2, timeout=10)
    real_load = dispatch._load_operators

    def load_together(*args: Any) -> Any:
        barrier.wait()  # both dispatchers are inside their transactions and read at the same moment
        return real_load(*args)

    monkeypatch.setattr(dispatch, "_load_operators", load_together)
    outcomes: list[Any] = []

    def run() -> None:
        with app.app_context():
            try:
                outcomes.append(dispatch.dispatch_once(now, exclusive=False))
            except Exception as exc:  # surfaced by the assertion below
                outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    offers = ringing_offers()
    per_operator = Counter(o.user_id for o in offers)
    groups_per_call = {o.call_id: set() for o in offers}
    for o in offers:
        groups_per_call[o.call_id].add(o.group_key)
    assert per_operator and max(per_operator.values()) == 1
    assert all(len(g) == 1 for g in groups_per_call.values())
    assert sum(len(o) for o in outcomes) == len(groups_per_call)
    with db.transaction() as session:
        ringing = session.scalars(
            select(OperatorStatus.user_id).where(OperatorStatus.state == "ringing")
        ).all()
        assert sorted(ringing) == sorted(per_operator)
        assert session.scalars(select(QueueLogin)).all()


# --- one dispatcher per organisation -----------------------------------------------------------


def _two_organisations(now: datetime) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two organisations, each with one logged-in operator and one waiting caller: (org, call) each."""
    result = []
    for _ in range(2):
        qid, _users = _queue_with_operators("fair", 1, now)
        call_id = _add_call(qid, now)
        with db.transaction() as session:
            queue = session.get(Queue, qid)
            assert queue is not None
            result.append((queue.organisation_id, call_id))
    return result[0], result[1]


@contextmanager
def another_dispatcher_holds(org_id: int) -> Iterator[None]:
    """Another worker, mid-round on this organisation: its advisory lock (PostgreSQL, from another
    connection) or the in-process lock (SQLite). Leaving the block is that worker dying or finishing.
    """
    if db.dialect == "postgresql":
        import psycopg

        assert db.engine is not None
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url) as other:
            other.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                (dispatch.DISPATCH_LOCK_KEY, dispatch._advisory_key(org_id)),
            )
            yield
            other.rollback()  # the transaction ends, and the lock with it
        return
    lock = dispatch._local_lock(org_id)
    assert lock.acquire(blocking=False)
    try:
        yield
    finally:
        lock.release()


def test_it_skips_only_the_organisation_whose_dispatcher_lock_is_held(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    (org_a, call_a), (_org_b, call_b) = _two_organisations(now)
    with another_dispatcher_holds(org_a):
        assert dispatch.dispatch_organisation(org_a, now) is None
        round_ = dispatch.dispatch_round(now)
    assert [r.call_id for r in round_.redirects] == [call_b]
    assert round_.busy == (org_a,)
    assert (call_state(call_a), call_state(call_b)) == ("waiting", "offered")
    # The other dispatcher is gone: the next round takes its organisation over at once.
    assert [r.call_id for r in dispatch.dispatch_once(now)] == [call_a]


def test_it_asks_the_worker_to_look_again_soon_when_an_organisation_was_busy(
    app: Flask, ctx: None, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.now()
    (org_a, _call_a), (_org_b, call_b) = _two_organisations(now)
    rest = FakeRest()
    monkeypatch.setattr(worker.TwilioRest, "from_app", classmethod(lambda cls: rest))
    with another_dispatcher_holds(org_a):
        assert worker.run_pending(now) == now + timedelta(seconds=worker.BUSY_RETRY_SECONDS)
    # The other organisation's caller was offered meanwhile: its operator's leg rings.
    (offer,) = ringing_offers()
    assert offer.call_id == call_b
    assert [leg["sid"] for leg in rest.created] == [offer.leg_sid]


# --- reading only the head of each queue ------------------------------------------------------


def test_it_reads_only_the_head_of_each_queue(
    ctx: None, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    with db.transaction() as session:
        queue = session.get(Queue, qid)
        assert queue is not None
        for i in range(40):
            make_call(session, queue, now, waited=100 + i)
        urgent = make_call(session, queue, now, waited=5, priority=2).id
    loaded: list[int] = []
    real_load = dispatch._load_waiting_calls

    def counting(*args: Any) -> Any:
        calls = real_load(*args)
        loaded.append(len(calls))
        return calls

    monkeypatch.setattr(dispatch, "_load_waiting_calls", counting)
    dispatch.dispatch_once(now)
    assert loaded == [1 + dispatch.WAITING_CALLS_SLACK]
    assert [(o.call_id, o.user_id) for o in ringing_offers()] == [(urgent, anna)]


def test_it_reads_further_when_skills_keep_a_free_operator_from_the_head(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    with db.transaction() as session:
        queue = session.get(Queue, qid)
        assert queue is not None
        # More callers who need English than one round reads at first, all ahead of a plain one.
        for i in range(3 * (1 + dispatch.WAITING_CALLS_SLACK)):
            make_call(session, queue, now, waited=1000 - i, required_skills={"engelska": 5})
        plain = make_call(session, queue, now, waited=10).id
    dispatch.dispatch_once(now)
    assert [(o.call_id, o.user_id) for o in ringing_offers()] == [(plain, anna)]


def test_it_reports_a_vanished_console_as_the_next_deadline_and_logs_it_out(
    app: Flask, ctx: None, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.now()
    _qid, (anna,) = _queue_with_operators("fair", 1, now)
    with db.transaction() as session:
        status = session.get(OperatorStatus, anna)
        assert status is not None
        status.last_heartbeat_at = now
    app.config["HEARTBEAT_TIMEOUT_SECONDS"] = 45
    monkeypatch.setattr(worker.TwilioRest, "from_app", classmethod(lambda cls: FakeRest()))
    assert worker.run_pending(now) == now + timedelta(seconds=45)
    assert operator_state(anna) == "available"
    assert worker.run_pending(now + timedelta(seconds=45)) is None
    assert operator_state(anna) == "offline"


def test_a_round_places_the_next_round_at_its_stored_deadline(
    app: Flask, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "run_pending", lambda now: now + timedelta(seconds=30))
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)
    try:
        loop = worker._Loop(app, scheduler, threading.Event(), None)
        before = datetime.now(UTC)
        worker._round(loop)
        job = scheduler.get_job(worker.ROUND_JOB)
        assert job is not None
        thirty = timedelta(seconds=30)
        assert before + thirty <= job.next_run_time <= datetime.now(UTC) + thirty

        worker._wake_now(loop)  # a wake-up replaces the later deadline
        job = scheduler.get_job(worker.ROUND_JOB)
        assert job is not None and job.next_run_time <= datetime.now(UTC)
    finally:
        scheduler.shutdown(wait=False)


def test_a_wake_up_runs_a_round_before_the_sweep_would(
    app: Flask, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[datetime] = []
    first, second = threading.Event(), threading.Event()

    def record(now: datetime) -> None:
        rounds.append(now)
        (first if len(rounds) == 1 else second).set()

    monkeypatch.setattr(worker, "run_pending", record)
    stop = threading.Event()
    thread = threading.Thread(
        target=worker.run_forever,
        args=(app,),
        kwargs={"interval": 3600, "stop": stop, "install_signals": False},
    )
    thread.start()
    try:
        assert first.wait(30), "the worker runs a round as it starts"
        with app.app_context():
            dispatch.wake()
        assert second.wait(30), "the wake-up ran a round; the hourly sweep could not have"
    finally:
        stop.set()
        dispatch.wake_event.set()
        thread.join(30)
    assert not thread.is_alive()
