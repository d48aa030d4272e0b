"""The dispatcher on real SQL: strategies, claims, reclaim, failed redirects, and racing dispatchers."""

from __future__ import annotations

import itertools
import threading
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
from queue_app.services import dispatch, operators

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
    assert redirects[0].path == f"/twilio/offer/{offer.group_key}"
    assert redirects[0].url("http://koe.test/") == f"http://koe.test/twilio/offer/{offer.group_key}"
    assert (offer.call_id, offer.user_id, offer.queue_id) == (call_id, anna, qid)
    assert offer.deadline_at == now + timedelta(seconds=20 + 15)
    assert call_state(call_id) == "offered"
    assert operator_state(anna) == "ringing"
    # Nothing left to offer: a second round changes nothing.
    assert dispatch.dispatch_once(now) == []


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
    assert len(rest.redirects) == 1


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
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.redirects: list[tuple[str, str]] = []

    def redirect_call(self, call_sid: str, url: str) -> str:
        if self.fail_with:
            raise self.fail_with
        self.redirects.append((call_sid, url))
        return "in-progress"


def test_it_redirects_only_after_commit_and_frees_everyone_when_it_fails(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    call_id = _add_call(qid, now)
    redirects = dispatch.dispatch_once(now)
    rest = FakeRest(TwilioRestException(500, "http://x", "Internal error", code=20500))
    assert worker.perform_redirects(redirects, now, rest) == 1  # type: ignore[arg-type]
    assert call_state(call_id) == "waiting"
    assert operator_state(anna) == "available"
    with db.transaction() as session:
        assert {o.state for o in session.scalars(select(Offer))} == {"canceled"}


def test_it_marks_a_caller_who_hung_up_before_the_redirect_as_abandoned(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    call_id = _add_call(qid, now)
    redirects = dispatch.dispatch_once(now)
    gone = TwilioRestException(400, "http://x", "Call is not in-progress. Cannot redirect.", code=21220)
    worker.perform_redirects(redirects, now, FakeRest(gone))  # type: ignore[arg-type]
    assert call_state(call_id) == "abandoned"
    assert operator_state(anna) == "available"


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
        sid = session.get(Call, call_id).call_sid  # type: ignore[union-attr]
    assert rest.redirects == [(sid, f"http://koe.test/twilio/offer/{offer.group_key}")]
    # Reclaimed and offered again: the new offer's deadline is next.
    assert worker.run_pending(now + timedelta(seconds=36)) == now + timedelta(seconds=36 + 35)
    assert len(rest.redirects) == 2
    assert operator_state(anna) == "ringing"


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
    (org_a, _call_a), _b = _two_organisations(now)
    monkeypatch.setattr(worker.TwilioRest, "from_app", classmethod(lambda cls: FakeRest()))
    with another_dispatcher_holds(org_a):
        assert worker.run_pending(now) == now + timedelta(seconds=worker.BUSY_RETRY_SECONDS)


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
