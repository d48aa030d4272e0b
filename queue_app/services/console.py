"""Read models of the operator console, and the few small writes it makes.

Reads take the request's session (they never write, so on SQLite they take no write lock) and are
scoped by the organisation and by the queues the web layer says the user may see. Writes (heartbeat,
the read-once log-out notice, "handled") are one short transaction each. Time is passed in.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ..domain.states import Call as CallState
from ..domain.states import Operator as OpState
from ..extensions import db
from ..models import (
    Call,
    DirectoryEntry,
    MissedCall,
    MissedCallStatus,
    Offer,
    OfferState,
    OperatorEvent,
    OperatorStatus,
    Queue,
    QueueLogin,
    SentMessage,
    Transfer,
    User,
)
from . import callbacks
from .operators import REASON_MISSED_OFFERS

# Written by whoever logs out a console that stopped sending heartbeats (the worker).
REASON_CONSOLE_VANISHED = "console_vanished"
# The console sends a heartbeat this often; a console silent for several of these has vanished.
HEARTBEAT_INTERVAL_SECONDS = 15

# A caller is "in the queue" while waiting or ringing at an operator; a callback keeps their place.
IN_QUEUE_STATES = (CallState.WAITING.value, CallState.OFFERED.value, CallState.CALLBACK_PENDING.value)
WAITING_STATES = (CallState.WAITING.value, CallState.OFFERED.value)
# Enough to see the front of a long queue; the count tells how many there are in all.
CALLERS_SHOWN_PER_QUEUE = 50


class ConsoleError(Exception):
    pass


class NotFound(ConsoleError):
    pass


# --- the operator -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfferView:
    offer_id: int
    call_id: int
    queue_id: int | None
    caller_number: str
    waiting_since: datetime
    deadline_at: datetime


@dataclass(frozen=True, slots=True)
class CallView:
    call_id: int
    queue_id: int | None
    caller_number: str
    answered_at: datetime | None


@dataclass(frozen=True, slots=True)
class OperatorState:
    state: str
    state_since: datetime | None
    pause_reason: str | None
    wrap_up_until: datetime | None
    queue_ids: tuple[int, ...]
    notice_pending: bool
    last_heartbeat_at: datetime | None
    offer: OfferView | None
    current_call: CallView | None


def operator_state(session: Session, user_id: int) -> OperatorState:
    status = session.get(OperatorStatus, user_id, populate_existing=True)
    queue_ids = tuple(
        session.scalars(select(QueueLogin.queue_id).where(QueueLogin.user_id == user_id).order_by("queue_id"))
    )
    if status is None:
        return OperatorState(OpState.OFFLINE.value, None, None, None, queue_ids, False, None, None, None)
    offer = None
    if status.state == OpState.RINGING.value:
        row = session.execute(
            select(Offer, Call)
            .join(Call, Call.id == Offer.call_id)
            .where(Offer.user_id == user_id, Offer.state == OfferState.RINGING.value)
            .order_by(Offer.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            o, c = row
            offer = OfferView(
                o.id, c.id, c.queue_id, c.from_number, c.entered_queue_at or c.arrived_at, o.deadline_at
            )
    current = None
    if status.current_call_id is not None:
        call = session.get(Call, status.current_call_id)
        if call is not None:
            current = CallView(call.id, call.queue_id, call.from_number, call.answered_at)
    return OperatorState(
        state=status.state,
        state_since=status.state_since,
        pause_reason=status.pause_reason,
        wrap_up_until=status.wrap_up_until,
        queue_ids=queue_ids,
        notice_pending=status.logged_out_reason is not None,
        last_heartbeat_at=status.last_heartbeat_at,
        offer=offer,
        current_call=current,
    )


@dataclass(frozen=True, slots=True)
class LoggedOutNotice:
    reason: str
    missed_offers: int | None  # for REASON_MISSED_OFFERS: how many in a row


def take_logged_out_notice(user_id: int) -> LoggedOutNotice | None:
    """Why the operator was logged out, once: the first look takes the reason away.

    A conditional UPDATE makes two tabs looking at once see it only once between them.
    """
    with db.transaction() as session:
        reason = session.scalar(
            select(OperatorStatus.logged_out_reason).where(OperatorStatus.user_id == user_id)
        )
        if reason is None:
            return None
        taken = session.execute(
            update(OperatorStatus)
            .where(OperatorStatus.user_id == user_id, OperatorStatus.logged_out_reason == reason)
            .values(logged_out_reason=None)
        ).rowcount
        if taken != 1:
            return None
        missed = None
        if reason == REASON_MISSED_OFFERS:
            data = session.scalar(
                select(OperatorEvent.data)
                .where(OperatorEvent.user_id == user_id, OperatorEvent.kind == "offer_missed")
                .order_by(OperatorEvent.id.desc())
                .limit(1)
            )
            missed = int(data.get("consecutive", 0)) if isinstance(data, dict) else None
        return LoggedOutNotice(reason, missed or None)


def record_heartbeat(user_id: int, now: datetime) -> bool:
    """The console is alive. False if the user has never logged in to a queue (nothing to keep)."""
    with db.transaction() as session:
        return bool(
            session.execute(
                update(OperatorStatus).where(OperatorStatus.user_id == user_id).values(last_heartbeat_at=now)
            ).rowcount
        )


@dataclass(frozen=True, slots=True)
class VanishedOperator:
    user_id: int
    organisation_id: int
    last_seen_at: datetime


def vanished_operators(now: datetime, after_seconds: int) -> list[VanishedOperator]:
    """Logged-in operators whose console has been silent for `after_seconds` (for the worker).

    Last seen is the later of the last heartbeat and the last log-in to a queue, so an operator who
    just logged in is not taken for gone. Operators on a call are left alone: the call's end brings
    them back here. The worker logs them out with `operators.log_out(..., reason=REASON_CONSOLE_VANISHED)`.
    """
    cutoff = now - timedelta(seconds=after_seconds)
    with db.transaction() as session:
        rows = session.execute(
            select(
                OperatorStatus.user_id,
                OperatorStatus.organisation_id,
                OperatorStatus.last_heartbeat_at,
                func.max(QueueLogin.logged_in_at),
            )
            .join(QueueLogin, QueueLogin.user_id == OperatorStatus.user_id)
            .where(
                OperatorStatus.state != OpState.ON_CALL.value,
                or_(OperatorStatus.last_heartbeat_at.is_(None), OperatorStatus.last_heartbeat_at < cutoff),
            )
            .group_by(
                OperatorStatus.user_id, OperatorStatus.organisation_id, OperatorStatus.last_heartbeat_at
            )
            .having(func.max(QueueLogin.logged_in_at) < cutoff)
            .order_by(OperatorStatus.user_id)
        ).all()
    result = []
    for user_id, organisation_id, heartbeat, logged_in in rows:
        logged_in = _aware(logged_in)
        last_seen = max(heartbeat, logged_in) if heartbeat else logged_in
        result.append(VanishedOperator(user_id, organisation_id, last_seen))
    return result


def _aware(value: datetime | str) -> datetime:
    # An aggregate (max) is not typed by the column, so SQLite hands back the stored text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- queues -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    call_id: int
    number: str
    state: str  # waiting | offered | callback_pending
    priority: int
    waiting_since: datetime


@dataclass(frozen=True, slots=True)
class QueueFigures:
    queue_id: int
    operators_logged_in: int
    operators_free: int
    operators_by_state: dict[str, int]
    callers_waiting: int
    callbacks_pending: int
    longest_waiting_since: datetime | None
    callers: tuple[WaitingCaller, ...]


def queue_figures(
    session: Session, organisation_id: int, queue_ids: Sequence[int]
) -> dict[int, QueueFigures]:
    """Live figures of these queues (already checked to be visible to the asker)."""
    ids = list(queue_ids)
    if not ids:
        return {}
    by_state: dict[int, Counter[str]] = defaultdict(Counter)
    for queue_id, state, count in session.execute(
        select(QueueLogin.queue_id, OperatorStatus.state, func.count())
        .join(OperatorStatus, OperatorStatus.user_id == QueueLogin.user_id)
        .join(Queue, Queue.id == QueueLogin.queue_id)
        .where(QueueLogin.queue_id.in_(ids), Queue.organisation_id == organisation_id)
        .group_by(QueueLogin.queue_id, OperatorStatus.state)
    ):
        by_state[queue_id][state] += count
    callers: dict[int, list[WaitingCaller]] = defaultdict(list)
    for call_id, queue_id, number, state, priority, entered, arrived in session.execute(
        select(
            Call.id,
            Call.queue_id,
            Call.from_number,
            Call.state,
            Call.priority,
            Call.entered_queue_at,
            Call.arrived_at,
        )
        .where(
            Call.organisation_id == organisation_id, Call.queue_id.in_(ids), Call.state.in_(IN_QUEUE_STATES)
        )
        .order_by(Call.queue_id, Call.priority.desc(), Call.entered_queue_at, Call.id)
    ):
        callers[queue_id].append(WaitingCaller(call_id, number, state, priority, entered or arrived))
    figures = {}
    for queue_id in ids:
        states = by_state.get(queue_id, Counter())
        in_queue = callers.get(queue_id, [])
        waiting = [c for c in in_queue if c.state in WAITING_STATES]
        figures[queue_id] = QueueFigures(
            queue_id=queue_id,
            operators_logged_in=sum(states.values()),
            operators_free=states.get(OpState.AVAILABLE.value, 0),
            operators_by_state=dict(sorted(states.items())),
            callers_waiting=len(waiting),
            callbacks_pending=len(in_queue) - len(waiting),
            longest_waiting_since=min((c.waiting_since for c in waiting), default=None),
            callers=tuple(in_queue[:CALLERS_SHOWN_PER_QUEUE]),
        )
    return figures


# --- history ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransferView:
    id: int
    to_number: str
    to_name: str | None
    kind: str
    state: str
    recall_reason: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    channel: str
    to_address: str
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryItem:
    call_id: int
    queue_id: int | None
    queue_name: str | None
    caller_number: str
    answered_at: datetime | None
    ended_at: datetime | None
    state: str
    outcome: str
    transfers: tuple[TransferView, ...]
    messages: tuple[MessageView, ...]


def _outcome(call: Call, transfers: Sequence[TransferView]) -> str:
    """One word for the list: answered, transferred, recalled, in_progress (or the call's end state)."""
    if transfers:
        last = transfers[-1].state
        if last == "connected":
            return "transferred"
        # A consult that ended without the colleague left the operator with the caller: not a recall.
        if last == "recalled" and transfers[-1].kind != "consult":
            return "recalled"
        if last in ("dialing", "consulting", "camped_on"):
            return "transferring"
    if call.state == CallState.COMPLETED.value:
        return "answered"
    if call.ended_at is None:
        return "in_progress"
    return call.state


def history(session: Session, organisation_id: int, user_id: int, limit: int = 20) -> list[HistoryItem]:
    """The operator's recent calls: the ones they answered or transferred, newest first."""
    transferred_ids = select(Transfer.call_id).where(
        Transfer.organisation_id == organisation_id, Transfer.from_user_id == user_id
    )
    rows = session.execute(
        select(Call, Queue.name)
        .outerjoin(Queue, Queue.id == Call.queue_id)
        .where(
            Call.organisation_id == organisation_id,
            or_(Call.answered_by_id == user_id, Call.id.in_(transferred_ids)),
        )
        .order_by(func.coalesce(Call.answered_at, Call.arrived_at).desc(), Call.id.desc())
        .limit(limit)
    ).all()
    call_ids = [call.id for call, _name in rows]
    transfers: dict[int, list[TransferView]] = defaultdict(list)
    messages: dict[int, list[MessageView]] = defaultdict(list)
    if call_ids:
        for t, entry_name in session.execute(
            select(Transfer, DirectoryEntry.name)
            .outerjoin(DirectoryEntry, DirectoryEntry.id == Transfer.directory_entry_id)
            .where(Transfer.organisation_id == organisation_id, Transfer.call_id.in_(call_ids))
            .order_by(Transfer.created_at, Transfer.id)
        ):
            transfers[t.call_id].append(
                TransferView(t.id, t.to_number, entry_name, t.kind, t.state, t.recall_reason, t.created_at)
            )
        for m in session.scalars(
            select(SentMessage)
            .where(SentMessage.organisation_id == organisation_id, SentMessage.call_id.in_(call_ids))
            .order_by(SentMessage.created_at, SentMessage.id)
        ):
            if m.call_id is not None:
                messages[m.call_id].append(MessageView(m.id, m.channel, m.to_address, m.status, m.created_at))
    return [
        HistoryItem(
            call_id=call.id,
            queue_id=call.queue_id,
            queue_name=queue_name,
            caller_number=call.from_number,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            state=call.state,
            outcome=_outcome(call, transfers[call.id]),
            transfers=tuple(transfers[call.id]),
            messages=tuple(messages[call.id]),
        )
        for call, queue_name in rows
    ]


# --- missed callers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MissedItem:
    id: int
    call_id: int
    queue_id: int | None
    queue_name: str | None
    number: str
    reason: str
    status: str
    created_at: datetime
    waited_seconds: int | None
    handled_by_name: str | None
    handled_at: datetime | None
    earlier_open: int  # more open entries for the same number: one call back covers them all


def _missed_scope(organisation_id: int, queue_ids: Sequence[int], include_unqueued: bool):  # type: ignore[no-untyped-def]
    in_queues = MissedCall.queue_id.in_(list(queue_ids)) if queue_ids else None
    clauses = [
        c for c in (in_queues, MissedCall.queue_id.is_(None) if include_unqueued else None) if c is not None
    ]
    scope = or_(*clauses) if clauses else MissedCall.id.is_(None)
    return (MissedCall.organisation_id == organisation_id) & scope


def missed(
    session: Session,
    organisation_id: int,
    queue_ids: Sequence[int],
    *,
    include_unqueued: bool,
    status: str | None = MissedCallStatus.OPEN.value,
    limit: int = 50,
    only_id: int | None = None,
) -> list[MissedItem]:
    """Callers the switchboard owes a call, in the queues the asker sees; oldest open first."""
    scope = _missed_scope(organisation_id, queue_ids, include_unqueued)
    statement = (
        select(MissedCall, Call, Queue.name, User.name)
        .join(Call, Call.id == MissedCall.call_id)
        .outerjoin(Queue, Queue.id == MissedCall.queue_id)
        .outerjoin(User, User.id == MissedCall.handled_by_id)
        .where(scope)
    )
    if status is not None:
        statement = statement.where(MissedCall.status == status)
    if only_id is not None:
        statement = statement.where(MissedCall.id == only_id)
    if status == MissedCallStatus.OPEN.value:
        statement = statement.order_by(MissedCall.created_at, MissedCall.id)
    else:
        statement = statement.order_by(MissedCall.created_at.desc(), MissedCall.id.desc())
    rows = session.execute(statement.limit(limit)).all()
    open_per_number = Counter(
        number
        for (number,) in session.execute(
            select(func.coalesce(Call.callback_number, Call.from_number))
            .join(MissedCall, MissedCall.call_id == Call.id)
            .where(scope, MissedCall.status == MissedCallStatus.OPEN.value)
        )
    )
    return [_missed_item(m, c, qn, hn, open_per_number) for m, c, qn, hn in rows]


def _missed_item(
    m: MissedCall, c: Call, queue_name: str | None, handled_by: str | None, open_per_number: Counter[str]
) -> MissedItem:
    number = c.callback_number or c.from_number
    entered = c.entered_queue_at or c.arrived_at
    waited = int((c.ended_at - entered).total_seconds()) if c.ended_at and entered else None
    still_open = open_per_number.get(number, 0)
    return MissedItem(
        id=m.id,
        call_id=c.id,
        queue_id=m.queue_id,
        queue_name=queue_name,
        number=number,
        reason=m.reason,
        status=m.status,
        created_at=m.created_at,
        waited_seconds=waited,
        handled_by_name=handled_by,
        handled_at=m.handled_at,
        earlier_open=max(0, still_open - (1 if m.status == MissedCallStatus.OPEN.value else 0)),
    )


def open_missed_count(
    session: Session, organisation_id: int, queue_ids: Sequence[int], *, include_unqueued: bool
) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(MissedCall)
            .where(
                _missed_scope(organisation_id, queue_ids, include_unqueued),
                MissedCall.status == MissedCallStatus.OPEN.value,
            )
        )
        or 0
    )


def mark_handled(
    organisation_id: int,
    queue_ids: Sequence[int],
    *,
    include_unqueued: bool,
    missed_id: int,
    user_id: int,
    now: datetime,
) -> MissedItem:
    """Mark a missed caller handled. Twice is harmless: the first operator's name stays."""
    scope = _missed_scope(organisation_id, queue_ids, include_unqueued)
    with db.transaction() as session:
        exists = session.scalar(select(MissedCall.id).where(MissedCall.id == missed_id, scope))
        if exists is None:
            raise NotFound("No such missed call.")
        marked = session.execute(
            update(MissedCall)
            .where(MissedCall.id == missed_id, MissedCall.status == MissedCallStatus.OPEN.value)
            .values(status=MissedCallStatus.HANDLED.value, handled_by_id=user_id, handled_at=now)
        )
        if marked.rowcount == 1:  # type: ignore[attr-defined]
            # Handled by hand (called back from a mobile, say): the switchboard must not call again.
            call_id = session.scalar(select(MissedCall.call_id).where(MissedCall.id == missed_id))
            callbacks.cancel(session, call_id, user_id, now)
        (item,) = missed(
            session,
            organisation_id,
            queue_ids,
            include_unqueued=include_unqueued,
            status=None,
            only_id=missed_id,
        )
        return item
