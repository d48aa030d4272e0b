"""Operators: log in/out per queue, pause, wrap-up, missed offers and automatic log-out.

Public functions without a session run one use case in one transaction. Functions that take a
`session` are steps of a larger use case (an answered offer, an ended call) and leave the commit to
their caller. Every change appends an `OperatorEvent`. Time is always passed in.

Operator rows are read with `FOR UPDATE` (ignored by SQLite, whose writers are serialised), so a
change here and the dispatcher's `SKIP LOCKED` claim never interleave on one operator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, Subquery, case, func, select, type_coerce
from sqlalchemy.orm import Session

from ..db import UTCDateTime
from ..domain.states import Operator as OpState
from ..domain.states import is_final, operator_can_move
from ..extensions import db
from ..models import (
    PLANS_THAT_MAY_LOG_IN,
    Call,
    Offer,
    OfferState,
    OperatorEvent,
    OperatorStatus,
    Queue,
    QueueLogin,
    QueueMembership,
    User,
)

log = logging.getLogger("koe.operators")

# `logged_out_reason` values; the console turns them into a sentence in the operator's language.
REASON_MISSED_OFFERS = "missed_offers"
REASON_LOGGED_OUT = "logged_out"
# An administrator (or a configuration import) deactivated the user.
REASON_DEACTIVATED = "deactivated"
# The browser console stopped sending heartbeats (closed, crashed, asleep); the console reads this.
REASON_CONSOLE_VANISHED = "console_vanished"
DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 90
# Ringing: the offer's own end counts the miss and frees them; on a call: the call's end does.
_STATES_A_VANISHED_CONSOLE_LEAVES = (OpState.AVAILABLE.value, OpState.PAUSED.value, OpState.WRAP_UP.value)

_MISSED_COUNTERS = {
    OfferState.NO_ANSWER: "missed_no_answer",
    OfferState.DECLINED: "missed_declined",
    OfferState.UNREACHABLE: "missed_unreachable",
}


class OperatorError(Exception):
    """The rules refuse what was asked; the message is meant for the person who asked."""


class NotLicensed(OperatorError):
    pass


class NotAllowed(OperatorError):
    pass


@dataclass(frozen=True, slots=True)
class OperatorView:
    user_id: int
    state: str
    queue_ids: tuple[int, ...]
    pause_reason: str | None
    wrap_up_until: datetime | None
    logged_out_reason: str | None


# --- helpers -------------------------------------------------------------------------------------


def _event(
    session: Session,
    status: OperatorStatus,
    kind: str,
    now: datetime,
    queue_id: int | None = None,
    **data: Any,
) -> None:
    session.add(
        OperatorEvent(
            organisation_id=status.organisation_id,
            user_id=status.user_id,
            queue_id=queue_id,
            at=now,
            kind=kind,
            data=data,
        )
    )


def lock_status(session: Session, user_id: int) -> OperatorStatus | None:
    return session.get(OperatorStatus, user_id, with_for_update=True, populate_existing=True)


def _status_for(session: Session, user: User, now: datetime) -> OperatorStatus:
    status = lock_status(session, user.id)
    if status is None:
        status = OperatorStatus(
            user_id=user.id,
            organisation_id=user.organisation_id,
            state=OpState.OFFLINE.value,
            state_since=now,
            missed_no_answer=0,
            missed_declined=0,
            missed_unreachable=0,
            version=0,
        )
        session.add(status)
        session.flush()
    return status


def _move(
    session: Session, status: OperatorStatus, target: OpState, now: datetime, kind: str, **data: Any
) -> bool:
    """Apply a legal transition and log it; an illegal one is logged and ignored."""
    if status.state == target.value and target is not OpState.WRAP_UP:
        return False
    if not operator_can_move(status.state, target.value):
        log.info("operator %s: ignored move %s -> %s (%s)", status.user_id, status.state, target, kind)
        return False
    previous = status.state
    status.state = target.value
    status.state_since = now
    status.version = (status.version or 0) + 1
    if target is not OpState.PAUSED:
        status.pause_reason = None
    if target is not OpState.WRAP_UP:
        status.wrap_up_until = None
    _event(session, status, kind, now, **({"from": previous, "to": target.value} | data))
    return True


def login_queue_ids(session: Session, user_id: int) -> list[int]:
    return list(
        session.scalars(select(QueueLogin.queue_id).where(QueueLogin.user_id == user_id).order_by("queue_id"))
    )


def _reset_missed(status: OperatorStatus) -> None:
    status.missed_no_answer = 0
    status.missed_declined = 0
    status.missed_unreachable = 0


def consecutive_misses(status: OperatorStatus) -> int:
    return status.missed_no_answer + status.missed_declined + status.missed_unreachable


def _idle_state(session: Session, user_id: int) -> OpState:
    """Where an operator goes when a ring or a wrap-up is over: available, or offline if logged out."""
    return OpState.AVAILABLE if login_queue_ids(session, user_id) else OpState.OFFLINE


# --- use cases -----------------------------------------------------------------------------------


def log_in(user_id: int, queue_ids: list[int] | set[int] | tuple[int, ...], now: datetime) -> OperatorView:
    """Log in to one or several queues at once; only licensed members with "may log in" may."""
    wanted = set(queue_ids)
    with db.transaction() as session:
        user = session.get(User, user_id)
        if user is None or not user.is_active:
            raise NotAllowed("This user does not exist or has been deactivated.")
        if user.plan not in PLANS_THAT_MAY_LOG_IN:
            raise NotLicensed(
                f"{user.name} has the {user.plan.capitalize()} plan, which does not include answering queue "
                "calls. Logging in to a queue needs Pro, Business or Enterprise."
            )
        if not wanted:
            raise OperatorError("Choose at least one queue to log in to.")
        rows = session.execute(
            select(Queue.id, Queue.name, QueueMembership.may_log_in)
            .outerjoin(
                QueueMembership, (QueueMembership.queue_id == Queue.id) & (QueueMembership.user_id == user_id)
            )
            .where(Queue.id.in_(wanted), Queue.organisation_id == user.organisation_id)
        ).all()
        allowed = {qid for qid, _name, may in rows if may}
        refused = wanted - allowed
        if refused:
            names = sorted(name for qid, name, _may in rows if qid in refused)
            unknown = len(refused) - len(names)
            listed = ", ".join(names + ([f"{unknown} unknown queue(s)"] if unknown else []))
            raise NotAllowed(
                f"You may not log in to: {listed}. An administrator can give you the permission."
            )
        status = _status_for(session, user, now)
        present = set(login_queue_ids(session, user_id))
        for qid in sorted(wanted - present):
            session.add(QueueLogin(user_id=user_id, queue_id=qid, logged_in_at=now))
            _event(session, status, "logged_in", now, queue_id=qid)
        # Logging in again is a fresh start: the missed-offer count and the old reason go.
        _reset_missed(status)
        status.logged_out_reason = None
        if status.state == OpState.OFFLINE.value:
            _move(session, status, OpState.AVAILABLE, now, "available")
        session.flush()
        return _view(session, status)


def log_out(
    user_id: int,
    queue_ids: list[int] | set[int] | tuple[int, ...] | None,
    now: datetime,
    reason: str | None = None,
) -> OperatorView:
    """Log out of the given queues (None: all). Out of the last one, the operator goes offline."""
    with db.transaction() as session:
        status = lock_status(session, user_id)
        if status is None:
            raise OperatorError("You are not logged in to any queue.")
        log_out_in(session, status, queue_ids, now, reason)
        session.flush()
        return _view(session, status)


def log_out_in(
    session: Session,
    status: OperatorStatus,
    queue_ids: list[int] | set[int] | tuple[int, ...] | None,
    now: datetime,
    reason: str | None,
) -> None:
    logins = session.scalars(select(QueueLogin).where(QueueLogin.user_id == status.user_id)).all()
    for login in logins:
        if queue_ids is None or login.queue_id in queue_ids:
            _event(session, status, "logged_out", now, queue_id=login.queue_id, reason=reason)
            session.delete(login)
    session.flush()
    if login_queue_ids(session, status.user_id):
        return
    status.logged_out_reason = reason
    # During a call the operator stays on it; the call's end sends them to wrap-up, then offline.
    if status.state != OpState.ON_CALL.value:
        _move(session, status, OpState.OFFLINE, now, "offline", reason=reason)


def deactivate(session: Session, user: User, now: datetime) -> bool:
    """Deactivate a user: no more log-ins, logged out of every queue; False if already inactive.

    Their rows stay (calls, events, messages keep their history). The caller runs `licences.sync`:
    an inactive user holds no licence.
    """
    if not user.is_active:
        return False
    user.is_active = False
    status = lock_status(session, user.id)
    if status is not None:
        log_out_in(session, status, None, now, REASON_DEACTIVATED)
    return True


def pause(user_id: int, reason: str, now: datetime) -> OperatorView:
    with db.transaction() as session:
        status = lock_status(session, user_id)
        if status is None or not login_queue_ids(session, user_id):
            raise OperatorError("Log in to a queue before pausing.")
        if status.state == OpState.ON_CALL.value:
            raise OperatorError("You cannot pause during a call; pause when it has ended.")
        reason = (reason or "").strip()[:100] or "pause"
        if status.state == OpState.PAUSED.value:
            status.pause_reason = reason
        else:
            _move(session, status, OpState.PAUSED, now, "paused", reason=reason)
            status.pause_reason = reason
        session.flush()
        return _view(session, status)


def resume(user_id: int, now: datetime) -> OperatorView:
    with db.transaction() as session:
        status = lock_status(session, user_id)
        if status is None:
            raise OperatorError("You are not logged in to any queue.")
        if status.state == OpState.PAUSED.value:
            _move(session, status, _idle_state(session, user_id), now, "resumed")
        session.flush()
        return _view(session, status)


def end_wrap_up(user_id: int, now: datetime) -> OperatorView:
    """The operator ends their wrap-up early."""
    with db.transaction() as session:
        status = lock_status(session, user_id)
        if status is None:
            raise OperatorError("You are not logged in to any queue.")
        if status.state == OpState.WRAP_UP.value:
            _move(session, status, _idle_state(session, user_id), now, "wrap_up_ended", early=True)
        session.flush()
        return _view(session, status)


def extend_wrap_up(user_id: int, seconds: int, now: datetime) -> OperatorView:
    """The operator asks for more wrap-up time."""
    with db.transaction() as session:
        status = lock_status(session, user_id)
        if status is None or status.state != OpState.WRAP_UP.value:
            raise OperatorError("You are not in wrap-up.")
        base = max(status.wrap_up_until or now, now)
        status.wrap_up_until = base + timedelta(seconds=max(0, seconds))
        status.version += 1
        _event(session, status, "wrap_up_extended", now, until=status.wrap_up_until.isoformat())
        session.flush()
        return _view(session, status)


def end_due_wrap_ups(now: datetime) -> int:
    """Worker sweep: wrap-ups whose time is up end (derived from the stored `wrap_up_until`)."""
    with db.transaction() as session:
        due = session.scalars(
            select(OperatorStatus)
            .where(OperatorStatus.state == OpState.WRAP_UP.value, OperatorStatus.wrap_up_until <= now)
            .with_for_update(skip_locked=True)
        ).all()
        for status in due:
            _move(session, status, _idle_state(session, status.user_id), now, "wrap_up_ended")
        return len(due)


def _watched_consoles() -> Select[tuple[int, datetime, Any]]:
    """Logged-in browser operators whose console has sent a heartbeat at least once (a phone-number
    device has no console): user id, last heartbeat, latest log-in."""
    return (
        select(
            OperatorStatus.user_id,
            OperatorStatus.last_heartbeat_at,
            func.max(QueueLogin.logged_in_at).label("logged_in_at"),
        )
        .join(QueueLogin, QueueLogin.user_id == OperatorStatus.user_id)
        .join(User, User.id == OperatorStatus.user_id)
        .where(
            OperatorStatus.last_heartbeat_at.is_not(None),
            OperatorStatus.state.in_(_STATES_A_VANISHED_CONSOLE_LEAVES),
            User.client_identity.is_not(None),
            User.client_identity != "",
        )
        .group_by(OperatorStatus.user_id, OperatorStatus.last_heartbeat_at)
    )


def console_last_seen() -> Subquery:
    """Each watched console's last sign of life, as `last_seen` (the worker's agenda reads its
    minimum; the console counts as vanished `timeout` seconds after it)."""
    watched = _watched_consoles().subquery()
    later = case(
        (watched.c.logged_in_at > watched.c.last_heartbeat_at, watched.c.logged_in_at),
        else_=watched.c.last_heartbeat_at,
    )
    return select(type_coerce(later, UTCDateTime()).label("last_seen")).subquery()


def _console_deadlines(session: Session, timeout_seconds: int) -> dict[int, datetime]:
    """When each watched console counts as vanished.

    Last seen is the later of the last heartbeat and the latest log-in, so an operator who logs in
    again with an old heartbeat on record is not thrown out at once.
    """
    rows = session.execute(_watched_consoles()).all()
    timeout = timedelta(seconds=timeout_seconds)
    deadlines = {}
    for user_id, heartbeat, logged_in in rows:
        last_seen = max(heartbeat, _aware(logged_in)) if logged_in is not None else heartbeat
        deadlines[user_id] = last_seen + timeout
    return deadlines


def log_out_vanished_consoles(
    now: datetime, timeout_seconds: int = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS
) -> list[int]:
    """Worker sweep: log out operators whose browser console has been silent for `timeout_seconds`.

    No caller then rings an empty chair, and the "logged in" figures stay true. The operator is told
    why (`logged_out_reason`) when the console comes back.
    """
    with db.transaction() as session:
        due = sorted(uid for uid, at in _console_deadlines(session, timeout_seconds).items() if at <= now)
        gone = []
        for user_id in due:
            status = lock_status(session, user_id)
            # Re-checked under the row lock: a heartbeat or a new offer may have come in between.
            if (
                status is None
                or status.state not in _STATES_A_VANISHED_CONSOLE_LEAVES
                or status.last_heartbeat_at is None
                or status.last_heartbeat_at + timedelta(seconds=timeout_seconds) > now
            ):
                continue
            log_out_in(session, status, None, now, REASON_CONSOLE_VANISHED)
            gone.append(user_id)
        if gone:
            log.info("logged out %d operator(s) whose console vanished: %s", len(gone), gone)
        return gone


def next_console_deadline(
    session: Session, now: datetime, timeout_seconds: int = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS
) -> datetime | None:
    """The next instant a watched console counts as vanished (only future ones: the past is swept)."""
    upcoming = [at for at in _console_deadlines(session, timeout_seconds).values() if at > now]
    return min(upcoming) if upcoming else None


def _aware(value: datetime | str) -> datetime:
    # An aggregate (max) is not typed by the column, so SQLite hands back the stored text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def wrap_up_end_query() -> Select[tuple[datetime | None]]:
    """The earliest end of a wrap-up in progress."""
    return select(func.min(OperatorStatus.wrap_up_until)).where(OperatorStatus.state == OpState.WRAP_UP.value)


def next_wrap_up_end(session: Session) -> datetime | None:
    return session.scalar(wrap_up_end_query())


def view(user_id: int) -> OperatorView | None:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        return None if status is None else _view(session, status)


def _view(session: Session, status: OperatorStatus) -> OperatorView:
    return OperatorView(
        user_id=status.user_id,
        state=status.state,
        queue_ids=tuple(login_queue_ids(session, status.user_id)),
        pause_reason=status.pause_reason,
        wrap_up_until=status.wrap_up_until,
        logged_out_reason=status.logged_out_reason,
    )


# --- steps of offer and call use cases (the caller commits) ----------------------------------------


def record_answer(session: Session, user_id: int, call: Call, now: datetime) -> None:
    """The operator took the call: on_call, and the consecutive-miss count starts again."""
    status = lock_status(session, user_id)
    if status is None:
        return
    _reset_missed(status)
    status.current_call_id = call.id
    _move(session, status, OpState.ON_CALL, now, "answered", call_id=call.id, queue_id=call.queue_id)


def record_missed_offer(
    session: Session, user_id: int, queue: Queue | None, outcome: str, now: datetime
) -> bool:
    """Count a missed offer (no-answer, declined, unreachable apart); True if it logged them out.

    After the queue's `max_missed_offers` consecutive misses (0: never) the operator is logged out
    of every queue with `logged_out_reason`, so no caller rings an empty chair.
    """
    status = lock_status(session, user_id)
    counter = _MISSED_COUNTERS.get(OfferState(outcome))
    if status is None or counter is None:
        return False
    setattr(status, counter, getattr(status, counter) + 1)
    status.version += 1
    total = consecutive_misses(status)
    queue_id = queue.id if queue else None
    _event(session, status, "offer_missed", now, queue_id=queue_id, outcome=outcome, consecutive=total)
    limit = queue.max_missed_offers if queue else 0
    if limit and total >= limit:
        log_out_in(session, status, None, now, REASON_MISSED_OFFERS)
        return True
    return False


def release_after_offer(session: Session, user_id: int, now: datetime) -> None:
    """An offer to this operator is over without a call: back to available (or offline).

    Only if they ring for nothing else: a re-login may already have given them a new offer.
    """
    status = lock_status(session, user_id)
    if status is None or status.state != OpState.RINGING.value:
        return
    still_ringing = session.scalar(
        select(func.count())
        .select_from(Offer)
        .where(Offer.user_id == user_id, Offer.state == OfferState.RINGING.value)
    )
    if still_ringing:
        return
    _move(session, status, _idle_state(session, user_id), now, "offer_ended")


def on_call_ended(session: Session, call: Call, now: datetime) -> None:
    """The call the operator was connected to has ended: wrap-up for the queue's wrap_up_seconds.

    Idempotent: a second call (status callback and Dial action both report the end) changes nothing.
    A caller who hung up while the call rang frees the ringing operators here too, in case the
    Dial's action never arrives.
    """
    if is_final(call.state):
        _cancel_ringing_offers(session, call, now)
    status = session.scalars(
        select(OperatorStatus).where(OperatorStatus.current_call_id == call.id).with_for_update()
    ).first()
    if status is None and call.answered_by_id is not None:
        candidate = lock_status(session, call.answered_by_id)
        if (
            candidate is not None
            and candidate.state == OpState.ON_CALL.value
            and candidate.current_call_id is None
        ):
            status = candidate
    if status is None or status.state != OpState.ON_CALL.value:
        return
    queue = session.get(Queue, call.queue_id) if call.queue_id else None
    wrap = queue.wrap_up_seconds if queue else 0
    status.current_call_id = None
    status.last_call_ended_at = now
    if wrap > 0 or not login_queue_ids(session, status.user_id):
        _move(session, status, OpState.WRAP_UP, now, "wrap_up_started", call_id=call.id, seconds=wrap)
        status.wrap_up_until = now + timedelta(seconds=wrap)
    else:
        _move(session, status, OpState.AVAILABLE, now, "call_ended", call_id=call.id)


def _cancel_ringing_offers(session: Session, call: Call, now: datetime) -> None:
    ringing = session.scalars(
        select(Offer)
        .where(Offer.call_id == call.id, Offer.state == OfferState.RINGING.value)
        .order_by(Offer.id)
        .with_for_update()
    ).all()
    for offer in ringing:
        offer.state = OfferState.CANCELED.value
        offer.ended_at = now
    session.flush()
    for offer in ringing:
        release_after_offer(session, offer.user_id, now)
