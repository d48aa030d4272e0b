"""The dispatcher: in one transaction, claim waiting calls and available operators and make offers.

`dispatch_once` reads the waiting calls and the available operators, asks `domain/routing.py` who
gets what, claims each call and operator with a conditional UPDATE (`WHERE state = 'waiting'` /
`'available'`, and `rowcount == 1`, as healthchecks' sendalerts does), commits, and only then
returns the redirects. The worker performs them (REST, after commit); a failed one cancels its offer.
Callers waiting for a callback (`callback_pending`) are served in the same order; their offer rings
one operator through an outbound call (`kind=CREATE_CALL`, services/callbacks.py).

Each organisation is dispatched in its own transaction under its own lock, so one busy switchboard
never holds up another and two workers can share the organisations between them.

On PostgreSQL the rows are read with `FOR UPDATE SKIP LOCKED`, so a second dispatcher or a webhook
holding a row never leads to one call offered twice or one operator ringing twice; a
transaction-level advisory lock per organisation keeps one dispatcher at work on it at a time. The
lock ends with the transaction, so a worker that dies mid-round leaves nothing behind: the other
worker's next round takes the organisation over. On SQLite writers are serialised and an in-process
lock per organisation plays the advisory lock's part.

A round reads only the head of each queue: the first `free operators of that queue +
WAITING_CALLS_SLACK` calls in priority and waiting order (an index serves exactly that order), so a
round costs the same at 10 or 10,000 waiting callers. Only when skills leave an operator of a queue
without a match in its head is more of that queue read, so nobody waits behind callers who need
someone else.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import ColumnElement, Exists, Select, and_, func, select, text, update
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
from . import callbacks, offers

log = logging.getLogger("koe.dispatch")

# pg_try_advisory_xact_lock(key1, key2) = (DISPATCH_LOCK_KEY, organisation id): "Kö dispatcher" for
# that organisation. The two-key form cannot collide between organisations as a hash could.
DISPATCH_LOCK_KEY = 0x4B_6F_64_69
# Callers read per queue beyond its free operators' count (parallel ringing and skills need a few more).
WAITING_CALLS_SLACK = 10
_local_locks: dict[int, threading.Lock] = {}
_local_locks_guard = threading.Lock()


REDIRECT = "redirect"
CREATE_CALL = "create_call"


@dataclass(frozen=True, slots=True)
class PendingRedirect:
    """REST work decided in a transaction, done by the worker once that transaction has committed.

    `kind=REDIRECT`: move the caller leg `call_sid` to the TwiML at `path`. `kind=CREATE_CALL`:
    create an outbound call to `to` (the operator's `client:<identity>` or phone) from `from_`,
    running `path` when answered, with status callbacks to `status_path` (by default `path +
    "/status"`) and ringing `timeout` s. A callback (services/callbacks.py) has no caller leg; a
    queue offer rings each operator so (`user_id`) while the caller waits on in their queue.
    """

    call_id: int
    call_sid: str
    path: str  # e.g. "/twilio/offer/<group_key>"
    group_key: str | None = None
    transfer_id: int | None = None
    kind: str = REDIRECT
    to: str | None = None
    from_: str | None = None
    timeout: int = 30
    status_path: str | None = None
    user_id: int | None = None

    def url(self, base: str) -> str:
        return base.rstrip("/") + self.path

    def status_url(self, base: str) -> str:
        if self.status_path:
            return base.rstrip("/") + self.status_path
        return self.url(base) + "/status"


@dataclass(frozen=True, slots=True)
class _Rules:
    queue: Queue
    rules: routing.QueueRules
    timezone: str  # the organisation's: fair counts from the start of its day


def _local_lock(organisation_id: int) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault(organisation_id, threading.Lock())


def _advisory_key(organisation_id: int) -> int:
    # int4 range for the two-key form; organisation ids beyond it wrap (sharing a lock is harmless).
    return (organisation_id + 2**31) % 2**32 - 2**31


@contextmanager
def _dispatcher_lock(session: Session, organisation_id: int, exclusive: bool) -> Iterator[bool]:
    if not exclusive:
        yield True
        return
    if session.get_bind().dialect.name == "postgresql":
        acquired = session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key, :org)"),
            {"key": DISPATCH_LOCK_KEY, "org": _advisory_key(organisation_id)},
        )
        yield bool(acquired)
        return
    lock = _local_lock(organisation_id)
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


# The calls the dispatcher offers: callers in the queue, and callers waiting to be called back.
DISPATCHED_STATES = (CallState.WAITING.value, CallState.CALLBACK_PENDING.value)
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


@dataclass(frozen=True, slots=True)
class OrganisationRound:
    redirects: list[PendingRedirect]
    # When skill widening next lets an operator left free take a caller left waiting.
    next_widening_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DispatchRound:
    redirects: list[PendingRedirect]
    # Organisations another dispatcher was working on: look again soon, it may have missed a change.
    busy: tuple[int, ...] = ()
    # The first instant widening changes what can be offered: a deadline for the worker.
    next_widening_at: datetime | None = None


def dispatch_once(
    now: datetime, *, exclusive: bool = True, organisation_ids: list[int] | None = None
) -> list[PendingRedirect]:
    """Make every offer that can be made now; returns the redirects to perform after commit.

    `exclusive=False` skips the one-dispatcher lock (tests use it to race two dispatchers on row locks).
    """
    return dispatch_round(now, exclusive=exclusive, organisation_ids=organisation_ids).redirects


def dispatch_round(
    now: datetime, *, exclusive: bool = True, organisation_ids: list[int] | None = None
) -> DispatchRound:
    """`dispatch_once` for every organisation with an available operator, one transaction each."""
    redirects: list[PendingRedirect] = []
    busy: list[int] = []
    widenings: list[datetime] = []
    for org_id in organisation_ids if organisation_ids is not None else organisations_to_dispatch():
        made = dispatch_organisation(org_id, now, exclusive=exclusive)
        if made is None:
            busy.append(org_id)
            continue
        redirects += made.redirects
        if made.next_widening_at is not None:
            widenings.append(made.next_widening_at)
    return DispatchRound(redirects, tuple(busy), min(widenings, default=None))


def _available_for_someone_waiting() -> ColumnElement[bool]:
    """An available operator (the row of `OperatorStatus` at hand) logged in to a queue where
    someone waits to be offered."""
    someone_waits = (
        select(Call.id)
        .join(QueueLogin, QueueLogin.queue_id == Call.queue_id)
        .where(QueueLogin.user_id == OperatorStatus.user_id, Call.state.in_(DISPATCHED_STATES))
        .exists()
    )
    return and_(OperatorStatus.state == OpState.AVAILABLE.value, someone_waits)


def anything_to_dispatch() -> Exists:
    """Has any organisation an available operator for a queue where someone waits (the agenda)?"""
    return select(OperatorStatus.user_id).where(_available_for_someone_waiting()).exists()


def organisations_to_dispatch() -> list[int]:
    """Organisations with an available operator logged in to a queue where someone waits.

    The others have nothing to decide, so a round that finds nothing to do costs one query.
    """
    assert db.engine is not None, "database not configured"
    # A plain read on the reading engine: on SQLite it must not wait for another dispatcher's write lock.
    with db.engine.connect() as conn:
        return list(
            conn.scalars(
                select(OperatorStatus.organisation_id)
                .where(_available_for_someone_waiting())
                .distinct()
                .order_by(OperatorStatus.organisation_id)
            )
        )


def dispatch_organisation(
    organisation_id: int, now: datetime, *, exclusive: bool = True
) -> OrganisationRound | None:
    """One organisation's round in one transaction; None if another dispatcher holds its lock."""
    with db.transaction() as session, _dispatcher_lock(session, organisation_id, exclusive) as acquired:
        if not acquired:
            return None
        operators = _load_operators(session, organisation_id)
        if not operators:
            return OrganisationRound([])
        free_per_queue: dict[int, int] = defaultdict(int)
        for op in operators:
            for qid in op.queue_ids:
                free_per_queue[qid] += 1
        round_ = _Round(session, now, operators)
        round_.read({qid: n + WAITING_CALLS_SLACK for qid, n in free_per_queue.items()})
        if not round_.calls:
            return OrganisationRound([])
        plan = round_.plan()
        # A queue whose head we read only in part, with an operator left free: skills kept them
        # from every caller read so far, so read further before deciding.
        while short := round_.read_in_part(plan):
            round_.read(short)
            plan = round_.plan()
        widening = routing.next_widening_at(round_.snapshots(), round_.operators, round_.rules(), plan, now)
        return OrganisationRound(_apply(session, plan, round_.calls, round_.queues, now), widening)


class _Round:
    """What one organisation's round has read so far; reading more of the queues' heads."""

    def __init__(self, session: Session, now: datetime, operators: list[routing.OperatorSnapshot]) -> None:
        self.session = session
        self.now = now
        self.operators = operators
        self.limits: dict[int, int] = {}
        self.calls: dict[int, Call] = {}
        self.queues: dict[int, _Rules] = {}
        self.missed: dict[int, set[int]] = {}
        self._with_answered = self._with_skills = False

    def read(self, limits: dict[int, int]) -> None:
        """Read up to `limits[queue]` callers of each queue, with what deciding for them needs."""
        self.limits.update(limits)
        more = _load_waiting_calls(self.session, limits, self.now)
        self.missed.update(_missed_by(self.session, [cid for cid in more if cid not in self.calls]))
        self.calls.update(more)
        new_queues = {c.queue_id for c in more.values() if c.queue_id and c.queue_id not in self.queues}
        if new_queues:
            self.queues.update(_load_queue_rules(self.session, sorted(new_queues)))
        self._enrich()

    def _enrich(self) -> None:
        # Only what a strategy or a requirement will look at: fair counts answered calls, and
        # skills matter only when a queue or a caller asks for some.
        if not self._with_answered and any(r.rules.strategy == routing.FAIR for r in self.queues.values()):
            timezone = next(iter(self.queues.values())).timezone
            self.operators = _with_answered_today(self.session, timezone, self.operators, self.now)
            self._with_answered = True
        needs_skills = any(r.rules.required_skills for r in self.queues.values()) or any(
            c.required_skills for c in self.calls.values()
        )
        if needs_skills and not self._with_skills:
            self.operators = _with_skills(self.session, self.operators)
            self._with_skills = True

    def snapshots(self) -> list[routing.WaitingCall]:
        return [_snapshot(c, self.missed) for c in self.calls.values()]

    def rules(self) -> dict[int, routing.QueueRules]:
        return {qid: r.rules for qid, r in self.queues.items()}

    def plan(self) -> list[routing.PlannedOffer]:
        return routing.plan_offers(self.snapshots(), self.operators, self.rules(), self.now)

    def read_in_part(self, plan: list[routing.PlannedOffer]) -> dict[int, int]:
        """Queues with an operator the plan left free whose head was read only up to its limit:
        the larger limits to read them to."""
        chosen = {uid for p in plan for uid in p.user_ids}
        left = {qid for op in self.operators if op.user_id not in chosen for qid in op.queue_ids}
        loaded: dict[int, int] = defaultdict(int)
        for c in self.calls.values():
            loaded[c.queue_id or 0] += 1
        limits = self.limits
        return {qid: limits[qid] * 4 for qid in left if qid in limits and loaded[qid] >= limits[qid]}


def _snapshot(call: Call, missed: dict[int, set[int]]) -> routing.WaitingCall:
    return routing.WaitingCall(
        call_id=call.id,
        queue_id=call.queue_id or 0,
        priority=call.priority,
        entered_at=call.entered_queue_at or call.arrived_at,
        required_skills=dict(call.required_skills or {}),
        missed_by=frozenset(missed.get(call.id, ())),
    )


def _load_operators(session: Session, organisation_id: int) -> list[routing.OperatorSnapshot]:
    """The organisation's available operators with their log-ins, in one statement.

    On PostgreSQL their status rows are locked (`FOR UPDATE OF operator_statuses SKIP LOCKED`): one
    that another transaction holds is left for the next round. Skills are added later, and only
    when some queue or caller needs them (`_with_skills`).
    """
    rows = session.execute(
        select(OperatorStatus, User, QueueLogin.queue_id, QueueLogin.logged_in_at)
        .join(User, User.id == OperatorStatus.user_id)
        .join(QueueLogin, QueueLogin.user_id == OperatorStatus.user_id)
        .where(
            OperatorStatus.state == OpState.AVAILABLE.value,
            OperatorStatus.organisation_id == organisation_id,
        )
        .order_by(OperatorStatus.user_id, QueueLogin.queue_id)
        .with_for_update(skip_locked=True, of=OperatorStatus)
    ).all()
    found: dict[int, tuple[OperatorStatus, User]] = {}
    logins: dict[int, set[int]] = defaultdict(set)
    logged_in_at: dict[int, datetime] = {}
    for status, user, queue_id, at in rows:
        found[status.user_id] = (status, user)
        logins[status.user_id].add(queue_id)
        first = logged_in_at.get(status.user_id)
        logged_in_at[status.user_id] = at if first is None else min(first, at)
    snapshots = []
    for user_id, (status, user) in found.items():
        if not user.is_active or offers.device_of(user) is None:
            continue
        # Idle since the end of the last call, but not since before the current log-in.
        candidates = [t for t in (status.last_call_ended_at, logged_in_at.get(user_id)) if t]
        snapshots.append(
            routing.OperatorSnapshot(
                user_id=user_id,
                state=status.state,
                queue_ids=frozenset(logins[user_id]),
                idle_since=max(candidates) if candidates else None,
            )
        )
    return snapshots


def _with_skills(
    session: Session, operators: list[routing.OperatorSnapshot]
) -> list[routing.OperatorSnapshot]:
    """The operators with their skills (name -> level)."""
    skills: dict[int, dict[str, int]] = defaultdict(dict)
    for user_id, name, level in session.execute(
        select(UserSkill.user_id, Skill.name, UserSkill.level)
        .join(Skill, Skill.id == UserSkill.skill_id)
        .where(UserSkill.user_id.in_([op.user_id for op in operators]))
    ):
        skills[user_id][name] = level
    return [replace(op, skills=skills[op.user_id]) for op in operators]


def _with_answered_today(
    session: Session, timezone: str, operators: list[routing.OperatorSnapshot], now: datetime
) -> list[routing.OperatorSnapshot]:
    """The operators with their calls answered per queue since the start of the organisation's day."""
    since = routing.start_of_day(now, timezone or "UTC")
    counts: dict[int, dict[int, int]] = defaultdict(dict)
    for user_id, queue_id, n in session.execute(
        select(Call.answered_by_id, Call.queue_id, func.count())
        .where(
            Call.answered_by_id.in_([op.user_id for op in operators]),
            Call.answered_at >= since,
            Call.queue_id.is_not(None),
        )
        .group_by(Call.answered_by_id, Call.queue_id)
    ):
        counts[user_id][queue_id] = n
    return [replace(op, answered_today=counts[op.user_id]) for op in operators]


def _load_waiting_calls(session: Session, limits: dict[int, int], now: datetime) -> dict[int, Call]:
    """The head of each queue: up to `limits[queue]` waiting calls in the order they are served.

    Callers waiting for a callback are in the same order (their place is kept); one whose last
    attempt failed is left out until its retry is due.
    """
    calls: dict[int, Call] = {}
    for queue_id, limit in sorted(limits.items()):
        rows = session.scalars(
            select(Call)
            .where(Call.queue_id == queue_id, Call.state.in_(DISPATCHED_STATES))
            .order_by(Call.priority.desc(), Call.entered_queue_at, Call.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        calls.update((c.id, c) for c in rows if callbacks.is_due(c, now))
    return calls


def _load_queue_rules(session: Session, queue_ids: list[int]) -> dict[int, _Rules]:
    """The queues' rules, their required skills and their organisation's time zone: one statement
    (one more for round robin's memory, when a queue uses it)."""
    rows = session.execute(
        select(Queue, Organisation.timezone, Skill.name, QueueSkill.min_level)
        .join(Organisation, Organisation.id == Queue.organisation_id)
        .outerjoin(QueueSkill, QueueSkill.queue_id == Queue.id)
        .outerjoin(Skill, Skill.id == QueueSkill.skill_id)
        .where(Queue.id.in_(queue_ids))
        .order_by(Queue.id)
    ).all()
    queues: dict[int, tuple[Queue, str]] = {}
    required: dict[int, dict[str, int]] = defaultdict(dict)
    for queue, timezone, name, level in rows:
        queues[queue.id] = (queue, timezone)
        if name is not None:
            required[queue.id][name] = level
    remembering = [q.id for q, _tz in queues.values() if q.strategy == routing.ROUND_ROBIN]
    last_offered = _round_robin_memory(session, remembering)
    result: dict[int, _Rules] = {}
    for queue, timezone in queues.values():
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
            timezone,
        )
    return result


def _round_robin_memory(session: Session, queue_ids: list[int]) -> dict[int, int]:
    """The operator each round-robin queue offered a call to last (it reads every log-in of them)."""
    last_offered: dict[int, int] = {}
    if queue_ids:
        for queue_id, user_id in session.execute(
            select(QueueLogin.queue_id, QueueLogin.user_id)
            .where(QueueLogin.queue_id.in_(queue_ids), QueueLogin.last_offered_at.is_not(None))
            .order_by(QueueLogin.last_offered_at, QueueLogin.user_id)
        ):
            last_offered[queue_id] = user_id  # the last row per queue is the latest offer
    return last_offered


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
        was = call.state  # waiting, or callback_pending
        claimed = session.execute(
            update(Call)
            .where(Call.id == call.id, Call.state == was)
            .values(state=CallState.OFFERED.value, version=Call.version + 1)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            log.info("call %s was taken by someone else before we could offer it", call.call_sid)
            continue
        callback = was == CallState.CALLBACK_PENDING.value
        if callback:
            # One outbound call per callback: the first of the planned operators we can claim.
            first = next((uid for uid in planned.user_ids if _claim_operator(session, uid, now)), None)
            won = [first] if first is not None else []
        else:
            won = [uid for uid in planned.user_ids if _claim_operator(session, uid, now)]
        if not won:
            session.execute(
                update(Call)
                .where(Call.id == call.id, Call.state == CallState.OFFERED.value)
                .values(state=was, version=Call.version + 1)
                .execution_options(synchronize_session=False)
            )
            continue
        queue = queues[planned.queue_id].queue
        group_key = offers.create_offer_group(session, call, won, queue.ring_timeout_seconds, now)
        offers.call_event(
            session,
            call,
            "offered",
            now,
            group_key=group_key,
            user_ids=won,
            **({"callback": True} if callback else {}),
        )
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
        if callback:
            redirects.append(_callback_call(session, call, won[0], group_key, queue.ring_timeout_seconds))
        else:
            redirects += offer_legs(session, call, won, group_key, queue.ring_timeout_seconds)
    return redirects


def offer_legs(
    session: Session, call: Call, user_ids: list[int], group_key: str, timeout: int
) -> list[PendingRedirect]:
    """One outbound call to each operator's device; the caller stays in their queue meanwhile.

    Every leg comes from the number the caller rang: a REST call's From must be one of our Twilio
    numbers (or a verified one) for a phone, and for a browser an arbitrary caller's number is not
    documented as allowed. The console shows the caller's number from the offer itself.
    """
    legs = []
    for user_id in user_ids:
        user = session.get(User, user_id)
        target = offers.device_of(user) if user else None
        if target is None:
            continue
        client = target.kind == "client"
        prefix = f"/twilio/offer/{group_key}"
        legs.append(
            PendingRedirect(
                call.id,
                call.call_sid,
                f"{prefix}/answer?operator={user_id}",
                group_key=group_key,
                kind=CREATE_CALL,
                to=f"client:{target.address}" if client else target.address,
                from_=call.to_number,
                timeout=timeout,
                status_path=f"{prefix}/leg?operator={user_id}",
                user_id=user_id,
            )
        )
    return legs


def _callback_call(
    session: Session, call: Call, user_id: int, group_key: str, timeout: int
) -> PendingRedirect:
    """The outbound call to the operator that starts a callback (the caller's leg is long gone)."""
    user = session.get(User, user_id)
    target = offers.device_of(user) if user else None
    to = "" if target is None else f"client:{target.address}" if target.kind == "client" else target.address
    return PendingRedirect(
        call.id,
        call.call_sid,
        f"/twilio/callback/{group_key}",
        group_key=group_key,
        kind=CREATE_CALL,
        to=to,
        from_=call.to_number,
        timeout=timeout,
    )


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


def offer_deadline_query() -> Select[tuple[datetime | None]]:
    """The earliest deadline of an offer still ringing."""
    return select(func.min(Offer.deadline_at)).where(Offer.state == OfferState.RINGING.value)


def next_offer_deadline(session: Session) -> datetime | None:
    return session.scalar(offer_deadline_query())


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
