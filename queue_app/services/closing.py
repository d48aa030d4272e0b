"""Callers already waiting when their queue closes (hours end, a closure starts).

Each waiting caller gets the queue's `closing_while_waiting` treatment (`domain.arrival.
closing_treatment`): `serve` keeps them in the queue to be served, `close` claims the call as
`closed` and returns a redirect to `/twilio/closed/<CallSid>`, whose TwiML is the closing message,
then a hang-up or a forward, as for a caller who meets the closed queue. So that nothing waits
forever, a `serve` queue that is closed and has no operator logged in any more closes too.

The worker owns the REST calls. It calls, after commit, on every sweep and at the instants
`next_closing_at` names (the next time a queue with callers in it closes):

    redirects = closing.apply_closures(now)          # one transaction; calls are claimed
    worker.perform_redirects(redirects, now)         # ClosingRedirect has PendingRedirect's shape

A claimed call whose redirect fails (Twilio error) is not lost: it is already `closed`, so its
next waitUrl fetch answers `<Leave/>` and the Enqueue action (`QueueResult=leave`) plays the same
closing TwiML. Idempotent: a call is claimed by one conditional UPDATE, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from ..domain.arrival import closing_treatment
from ..domain.hours import HoursStatus
from ..domain.states import Call as CallState
from ..domain.states import Operator as OperatorState
from ..extensions import db
from ..models import Call, CallEvent, OperatorStatus, Organisation, Queue, QueueLogin
from . import calls
from .schedules import queue_hours_status

log = logging.getLogger("koe.closing")

CLOSED_PATH = "/twilio/closed/{call_sid}"


@dataclass(frozen=True, slots=True)
class ClosingRedirect:
    """A waiting caller to move to the closing TwiML once the claim has committed.

    The same fields as `services.dispatch.PendingRedirect` (without an offer group or transfer),
    so the worker's `perform_redirects` takes both.
    """

    call_id: int
    call_sid: str
    path: str
    group_key: str | None = None
    transfer_id: int | None = None

    def url(self, base: str) -> str:
        return base.rstrip("/") + self.path


def _queues_with_waiting_callers(session: Session) -> list[tuple[Queue, Organisation]]:
    # With their organisations, which the hours need: held here, the session's identity map
    # answers `session.get(Organisation, ...)` without another statement per queue.
    waiting = exists().where(Call.queue_id == Queue.id, Call.state == CallState.WAITING.value)
    return [
        (queue, organisation)
        for queue, organisation in session.execute(
            select(Queue, Organisation)
            .join(Organisation, Organisation.id == Queue.organisation_id)
            .where(waiting)
            .order_by(Queue.id)
        )
    ]


def _logged_in(session: Session, queue_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(QueueLogin)
            .join(OperatorStatus, OperatorStatus.user_id == QueueLogin.user_id)
            .where(QueueLogin.queue_id == queue_id, OperatorStatus.state != OperatorState.OFFLINE.value)
        )
        or 0
    )


def _claim(session: Session, queue: Queue, hours: HoursStatus, now: datetime) -> list[ClosingRedirect]:
    # Conditional: a call the dispatcher is offering right now (no longer `waiting`) is left alone;
    # if that offer is missed the caller returns to `waiting` and the next sweep closes them.
    claimed = session.execute(
        update(Call)
        .where(Call.queue_id == queue.id, Call.state == CallState.WAITING.value)
        .values(
            state=CallState.CLOSED.value,
            ended_at=now,
            outcome_reason=hours.reason,
            version=Call.version + 1,
        )
        .returning(Call.id, Call.call_sid, Call.organisation_id)
        .execution_options(synchronize_session=False)
    ).all()
    redirects = []
    for call_id, call_sid, organisation_id in claimed:
        data = {"from": CallState.WAITING.value, "to": CallState.CLOSED.value}
        session.add(
            CallEvent(
                organisation_id=organisation_id, call_id=call_id, at=now, kind="state_changed", data=data
            )
        )
        session.add(
            CallEvent(
                organisation_id=organisation_id,
                call_id=call_id,
                at=now,
                kind="closed_while_waiting",
                data={"reason": hours.reason, "label": hours.label},
                dedupe_key=f"closed_while_waiting:{call_sid}",
            )
        )
        redirects.append(ClosingRedirect(call_id, call_sid, CLOSED_PATH.format(call_sid=call_sid)))
    if redirects:
        log.info("closed queue_id=%s reason=%s callers=%d", queue.id, hours.reason, len(redirects))
    return redirects


def apply_closures(now: datetime) -> list[ClosingRedirect]:
    """Close the waiting callers of every closed queue whose treatment says so; the redirects to make.

    One transaction. Perform the redirects only after it returns (it has committed by then).
    """
    return sweep(now).redirects


def next_closing_at(now: datetime) -> datetime | None:
    """When a queue that has callers waiting next closes (or None): the worker's next wake-up."""
    return sweep(now, dry_run=True).next_closing_at


@dataclass(frozen=True, slots=True)
class Sweep:
    redirects: list[ClosingRedirect]
    next_closing_at: datetime | None


def sweep(now: datetime, *, dry_run: bool = False) -> Sweep:
    """One pass over the queues with callers waiting: close those that closed, and say when the
    next one closes. The worker calls this once a round; each queue's hours are read once.

    The look is a plain read (on SQLite it takes no write lock); a write transaction opens only
    when a queue's waiting callers are to be closed, and checks again under its lock.
    """
    soonest: datetime | None = None
    to_close: list[int] = []
    with db.reading() as session:
        for queue, _organisation in _queues_with_waiting_callers(session):
            hours = queue_hours_status(session, queue.id, now)
            if hours.open:
                if hours.until is not None and (soonest is None or hours.until < soonest):
                    soonest = hours.until
            elif _closes_its_callers(session, queue, hours):
                to_close.append(queue.id)
    if dry_run or not to_close:
        return Sweep([], soonest)
    return Sweep(_close(to_close, now), soonest)


def _closes_its_callers(session: Session, queue: Queue, hours: HoursStatus) -> bool:
    if hours.open:
        return False
    return closing_treatment(queue.closing_while_waiting, _logged_in(session, queue.id)) == "close"


def _close(queue_ids: list[int], now: datetime) -> list[ClosingRedirect]:
    redirects: list[ClosingRedirect] = []
    with db.transaction() as session:
        for queue_id in queue_ids:
            queue = session.get(Queue, queue_id)
            if queue is None:
                continue
            hours = queue_hours_status(session, queue_id, now)
            if _closes_its_callers(session, queue, hours):
                redirects.extend(_claim(session, queue, hours, now))
    return redirects


def answer_closed(call_sid: str, now: datetime) -> calls.Arrival:
    """`/twilio/closed/<CallSid>`: the closing TwiML for a caller redirected out of a closed queue.

    Marks the call closed if nothing did yet (a redirect made by hand), and answers the same for a
    retried request.
    """
    with db.transaction() as session:
        call = session.scalars(select(Call).where(Call.call_sid == call_sid)).one_or_none()
        if call is None or call.queue is None:
            log.warning("closing for an unknown call call_sid=%s", call_sid)
            return calls.Arrival(calls.ArrivalKind.UNKNOWN_CALL, say=calls.apology())
        queue = call.queue
        hours = queue_hours_status(session, queue.id, now)
        if call.state == CallState.WAITING:
            reason = hours.reason if not hours.open else "closed_while_waiting"
            updated = session.execute(
                update(Call)
                .where(Call.id == call.id, Call.state == CallState.WAITING.value)
                .values(
                    state=CallState.CLOSED.value,
                    ended_at=now,
                    outcome_reason=reason,
                    version=Call.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if updated.rowcount == 1:  # type: ignore[attr-defined]
                session.add(
                    CallEvent(
                        organisation_id=call.organisation_id,
                        call_id=call.id,
                        at=now,
                        kind="state_changed",
                        data={"from": CallState.WAITING.value, "to": CallState.CLOSED.value},
                    )
                )
            session.refresh(call)
        elif call.state != CallState.CLOSED:
            log.warning("closing redirect for a call in state %s call_sid=%s", call.state, call_sid)
        return calls.closing_arrival(session, queue, call, hours)
