"""The dispatcher: in one transaction, claim waiting calls and available operators and make offers.

`dispatch_once` reads the waiting calls and the available operators, asks `domain/routing.py` who
gets what, claims each call and operator with a conditional UPDATE (`WHERE state = 'waiting'` /
`'available'`, and `rowcount == 1`, as healthchecks' sendalerts does), commits, and only then
returns the redirects. The worker performs them (REST, after commit); a failed one cancels its offer.

On PostgreSQL the rows are read with `FOR UPDATE SKIP LOCKED`, so a second dispatcher or a webhook
holding a row never leads to one call offered twice or one operator ringing twice; a transaction-level
advisory lock keeps one dispatcher at work at a time (a dead worker's lock dies with its connection).
On SQLite writers are serialised and a process-wide lock plays the advisory lock's part.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from ..domain import routing
from ..domain.states import Call as CallState
from ..domain.states import Operator as OpState
from ..extensions import db
from ..models import (
    Call,
    Offer,
    OfferState,
    OperatorEvent,
    OperatorStatus,
    Organisation,
    Queue,
    QueueLogin,
    QueueSkill,
    Skill,
    User,
    UserSkill,
)
from . import offers

log = logging.getLogger("koe.dispatch")

# pg_try_advisory_xact_lock key: "Kö dispatcher". One global key: one dispatcher for all organisations.
DISPATCH_LOCK_KEY = 0x4B_6F_64_69
_local_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PendingRedirect:
    """A caller leg to move to new TwiML once the transaction that decided it has committed."""

    call_id: int
    call_sid: str
    path: str  # e.g. "/twilio/offer/<group_key>"
    group_key: str | None = None
    transfer_id: int | None = None

    def url(self, base: str) -> str:
        return base.rstrip("/") + self.path


@dataclass(frozen=True, slots=True)
class _Rules:
    queue: Queue
    rules: routing.QueueRules


@contextmanager
def _dispatcher_lock(session: Session, exclusive: bool) -> Iterator[bool]:
    if not exclusive:
        yield True
        return
    if session.get_bind().dialect.name == "postgresql":
        yield bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": DISPATCH_LOCK_KEY}))
        return
    acquired = _local_lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            _local_lock.release()


MISSED_OFFER_STATES = (OfferState.NO_ANSWER.value, OfferState.DECLINED.value, OfferState.UNREACHABLE.value)


def _missed_by(session: Session, call_ids: list[int]) -> dict[int, set[int]]:
    """Which operators already missed each of these calls."""
    missed: dict[int, set[int]] = {}
    if not call_ids:
        return missed
    rows = session.execute(
        select(Offer.call_id, Offer.user_id).where(
            Offer.call_id.in_(call_ids), Offer.state.in_(MISSED_OFFER_STATES)
        )
    )
    for call_id, user_id in rows:
        missed.setdefault(call_id, set()).add(user_id)
    return missed


def dispatch_once(now: datetime, *, exclusive: bool = True) -> list[PendingRedirect]:
    """Make every offer that can be made now; returns the redirects to perform after commit.

    `exclusive=False` skips the one-dispatcher lock (tests use it to race two dispatchers on row locks).
    """
    with db.transaction() as session, _dispatcher_lock(session, exclusive) as acquired:
        if not acquired:
            return []
        operators, logins = _load_operators(session, now)
        if not operators:
            return []
        queue_ids = sorted({qid for qids in logins.values() for qid in qids})
        calls = _load_waiting_calls(session, queue_ids)
        if not calls:
            return []
        queues = _load_queue_rules(session, sorted({c.queue_id for c in calls.values()}))
        missed = _missed_by(session, list(calls))
        snapshots = [
            routing.WaitingCall(
                call_id=c.id,
                queue_id=c.queue_id or 0,
                priority=c.priority,
                entered_at=c.entered_queue_at or c.arrived_at,
                required_skills=dict(c.required_skills or {}),
                missed_by=frozenset(missed.get(c.id, ())),
            )
            for c in calls.values()
        ]
        plan = routing.plan_offers(snapshots, operators, {qid: r.rules for qid, r in queues.items()}, now)
        return _apply(session, plan, calls, queues, now)


def _load_operators(
    session: Session, now: datetime
) -> tuple[list[routing.OperatorSnapshot], dict[int, set[int]]]:
    statuses = session.scalars(
        select(OperatorStatus)
        .where(OperatorStatus.state == OpState.AVAILABLE.value)
        .order_by(OperatorStatus.user_id)
        .with_for_update(skip_locked=True)
    ).all()
    if not statuses:
        return [], {}
    ids = [s.user_id for s in statuses]
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}
    logins: dict[int, set[int]] = defaultdict(set)
    logged_in_at: dict[int, datetime] = {}
    for login in session.scalars(select(QueueLogin).where(QueueLogin.user_id.in_(ids))):
        logins[login.user_id].add(login.queue_id)
        first = logged_in_at.get(login.user_id)
        logged_in_at[login.user_id] = login.logged_in_at if first is None else min(first, login.logged_in_at)
    skills: dict[int, dict[str, int]] = defaultdict(dict)
    for user_id, name, level in session.execute(
        select(UserSkill.user_id, Skill.name, UserSkill.level)
        .join(Skill, Skill.id == UserSkill.skill_id)
        .where(UserSkill.user_id.in_(ids))
    ):
        skills[user_id][name] = level
    answered = _answered_today(session, statuses, now)

    snapshots = []
    for status in statuses:
        user = users.get(status.user_id)
        if user is None or not user.is_active or offers.device_of(user) is None or not logins[status.user_id]:
            continue
        # Idle since the end of the last call, but not since before the current log-in.
        candidates = [t for t in (status.last_call_ended_at, logged_in_at.get(status.user_id)) if t]
        snapshots.append(
            routing.OperatorSnapshot(
                user_id=status.user_id,
                state=status.state,
                queue_ids=frozenset(logins[status.user_id]),
                skills=skills[status.user_id],
                idle_since=max(candidates) if candidates else None,
                answered_today=answered[status.user_id],
            )
        )
    return snapshots, logins


def _answered_today(
    session: Session, statuses: list[OperatorStatus], now: datetime
) -> dict[int, dict[int, int]]:
    """Calls answered per operator and queue since the start of the day in each organisation's zone."""
    by_org: dict[int, list[int]] = defaultdict(list)
    for status in statuses:
        by_org[status.organisation_id].append(status.user_id)
    counts: dict[int, dict[int, int]] = defaultdict(dict)
    for org_id, user_ids in by_org.items():
        zone = session.scalar(select(Organisation.timezone).where(Organisation.id == org_id)) or "UTC"
        since = routing.start_of_day(now, zone)
        for user_id, queue_id, n in session.execute(
            select(Call.answered_by_id, Call.queue_id, func.count())
            .where(Call.answered_by_id.in_(user_ids), Call.answered_at >= since, Call.queue_id.is_not(None))
            .group_by(Call.answered_by_id, Call.queue_id)
        ):
            counts[user_id][queue_id] = n
    return counts


def _load_waiting_calls(session: Session, queue_ids: list[int]) -> dict[int, Call]:
    if not queue_ids:
        return {}
    rows = session.scalars(
        select(Call)
        .where(Call.state == CallState.WAITING.value, Call.queue_id.in_(queue_ids))
        .order_by(Call.priority.desc(), Call.entered_queue_at, Call.id)
        .with_for_update(skip_locked=True, of=Call)
    ).all()
    return {c.id: c for c in rows}


def _load_queue_rules(session: Session, queue_ids: list[int]) -> dict[int, _Rules]:
    required: dict[int, dict[str, int]] = defaultdict(dict)
    for queue_id, name, level in session.execute(
        select(QueueSkill.queue_id, Skill.name, QueueSkill.min_level)
        .join(Skill, Skill.id == QueueSkill.skill_id)
        .where(QueueSkill.queue_id.in_(queue_ids))
    ):
        required[queue_id][name] = level
    last_offered: dict[int, int] = {}
    for queue_id, user_id in session.execute(
        select(QueueLogin.queue_id, QueueLogin.user_id)
        .where(QueueLogin.queue_id.in_(queue_ids), QueueLogin.last_offered_at.is_not(None))
        .order_by(QueueLogin.last_offered_at, QueueLogin.user_id)
    ):
        last_offered[queue_id] = user_id  # the last row per queue is the latest offer
    result: dict[int, _Rules] = {}
    for queue in session.scalars(select(Queue).where(Queue.id.in_(queue_ids))):
        result[queue.id] = _Rules(
            queue,
            routing.QueueRules(
                queue_id=queue.id,
                strategy=queue.strategy,
                parallel_count=queue.parallel_count,
                required_skills=required[queue.id],
                skill_widen_after_seconds=queue.skill_widen_after_seconds,
                last_offered_user_id=last_offered.get(queue.id),
            ),
        )
    return result


def _apply(
    session: Session,
    plan: list[routing.PlannedOffer],
    calls: dict[int, Call],
    queues: dict[int, _Rules],
    now: datetime,
) -> list[PendingRedirect]:
    redirects: list[PendingRedirect] = []
    for planned in plan:
        call = calls[planned.call_id]
        claimed = session.execute(
            update(Call)
            .where(Call.id == call.id, Call.state == CallState.WAITING.value)
            .values(state=CallState.OFFERED.value, version=Call.version + 1)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            log.info("call %s was taken by someone else before we could offer it", call.call_sid)
            continue
        won = [uid for uid in planned.user_ids if _claim_operator(session, uid, now)]
        if not won:
            session.execute(
                update(Call)
                .where(Call.id == call.id, Call.state == CallState.OFFERED.value)
                .values(state=CallState.WAITING.value, version=Call.version + 1)
                .execution_options(synchronize_session=False)
            )
            continue
        queue = queues[planned.queue_id].queue
        group_key = offers.create_offer_group(session, call, won, queue.ring_timeout_seconds, now)
        offers.call_event(session, call, "offered", now, group_key=group_key, user_ids=won)
        for uid in won:
            session.add(
                OperatorEvent(
                    organisation_id=call.organisation_id,
                    user_id=uid,
                    queue_id=call.queue_id,
                    at=now,
                    kind="offered",
                    data={"call_id": call.id, "group_key": group_key, "from": "available", "to": "ringing"},
                )
            )
        redirects.append(
            PendingRedirect(call.id, call.call_sid, f"/twilio/offer/{group_key}", group_key=group_key)
        )
    return redirects


def _claim_operator(session: Session, user_id: int, now: datetime) -> bool:
    result = session.execute(
        update(OperatorStatus)
        .where(OperatorStatus.user_id == user_id, OperatorStatus.state == OpState.AVAILABLE.value)
        .values(state=OpState.RINGING.value, state_since=now, version=OperatorStatus.version + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def claim_operator(session: Session, user_id: int, now: datetime) -> bool:
    """Claim one available operator for an offer made outside the dispatcher (a recall)."""
    return _claim_operator(session, user_id, now)


def reclaim_expired_offers(now: datetime) -> int:
    """Offers still ringing past their deadline (a lost callback): caller waits again, operators free."""
    with db.transaction() as session:
        return offers.reclaim_expired(session, now)


def next_offer_deadline(session: Session) -> datetime | None:
    return session.scalar(select(func.min(Offer.deadline_at)).where(Offer.state == OfferState.RINGING.value))


# --- waking the worker ---------------------------------------------------------------------------

WAKE_CHANNEL = "koe_wake"
# In-process wake-up: the worker thread of `flask serve` (and SQLite, which has no NOTIFY) waits on it.
wake_event = threading.Event()


def wake(organisation_id: int | None = None) -> None:
    """Tell the worker something changed (a caller arrived, an operator became free). Never raises.

    Call it after commit. On PostgreSQL it also sends NOTIFY koe_wake, which reaches a worker in
    another process; the worker's periodic sweep repairs a lost wake-up.
    """
    wake_event.set()
    try:
        if db.engine is not None and db.dialect == "postgresql":
            with db.engine.connect() as conn:
                conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": WAKE_CHANNEL, "payload": str(organisation_id or "")},
                )
                conn.commit()
    except Exception:  # a wake-up is a hint; the sweep catches up
        log.warning("could not notify the worker", exc_info=True)
