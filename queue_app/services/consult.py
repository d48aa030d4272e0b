"""Consult-then-transfer through a Twilio Conference (twilio.md §7, "Warm transfer").

The operator talks to the caller over a plain `<Dial><Client>` bridge. A consult moves both into
the conference `koe-call-<call id>` and dials the colleague into it while the caller is on hold:

1. `start_consult` (the API): a Transfer (kind consult, state dialing), due at once.
2. Step GATHER (worker): the operator's leg, the child of the caller's Dial, is redirected into the
   conference (label `operator`). The caller's Dial then ends; its action (`caller_seat`) sends the
   caller into the same conference (label `caller`, the conference ends when they leave).
3. The conference's status callback (`record_conference_event`) keeps the conference SID; once the
   caller has joined, step DIAL: hold the caller (HoldUrl: the queue's hold music) and add the
   colleague (Participants create, label `colleague-<transfer id>`).
4. The colleague leg's status callback (`record_colleague_status`): answered -> consulting; busy,
   no answer, failed, or hung up during the consult -> recalled with that reason, and step RESUME:
   the caller is taken off hold and the operator hears why (AnnounceUrl).
5. The operator: `connect` (consulting -> connected; step CONNECT: the colleague now ends the
   conference on leaving, the caller is taken off hold, the operator is removed; the call is
   completed "transferred" and the operator goes to wrap-up), or `return_to_caller` (canceled
   "returned"; step RESUME hangs up the colleague's leg and takes the caller off hold).
6. The caller hangs up: the conference ends with them; an active consult is canceled
   "caller_hung_up" and step RESUME hangs up a colleague who still rings.
7. The operator hangs up while consulting: that hands the caller over (connect). While the
   colleague still rings: the caller is recalled to the front of the queue.

Every webhook is one transaction and idempotent: a step is claimed once (a conditional UPDATE of
`next_attempt_at`), `attempts` counts the steps GATHER and DIAL so a duplicated join never dials
twice, and a status that does not fit the transfer's state changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from ..domain.states import Call as CallState
from ..extensions import db
from ..models import Call, DirectoryEntry, Offer, OfferState, Organisation, Queue, Transfer, User
from ..models import TransferKind as Kind
from ..models import TransferState as State
from . import calls, offers, operators
from .transfers import E164, recall

log = logging.getLogger("koe.consult")

CALLER = "caller"
OPERATOR = "operator"
ACTIVE = (State.DIALING.value, State.CONSULTING.value)
DIAL_TIMEOUT_SECONDS = 20
# The colleague's CallStatus when they were never reached -> why the call came back.
NOT_REACHED = {"busy": "busy", "no-answer": "no_answer", "failed": "failed", "canceled": "no_answer"}
# After these the operator is back with the caller and hears why.
BACK_WITH_CALLER = frozenset({"returned", "busy", "no_answer", "failed", "colleague_hung_up"})
# After these a colleague's leg that may still ring is hung up.
HANG_UP_COLLEAGUE = frozenset({"returned", "caller_hung_up", "operator_left"})


class ConsultError(Exception):
    """The consult cannot be started or changed; `code` for the API, the message for the operator."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Step(StrEnum):
    GATHER = "gather"  # move the operator's leg (and so the caller) into the conference
    DIAL = "dial"  # hold the caller, add the colleague
    CONNECT = "connect"  # the caller and the colleague talk, the operator leaves
    RESUME = "resume"  # the colleague is gone or never came: back to the caller


@dataclass(frozen=True, slots=True)
class ConsultStep:
    """REST work decided in a transaction, done by the worker after commit."""

    step: Step
    transfer_id: int
    caller_sid: str
    conference_sid: str | None = None
    colleague_sid: str | None = None
    to_number: str = ""
    from_number: str = ""
    hold_url: str = ""
    reason: str | None = None
    redirect_path: str | None = None

    @property
    def colleague_label(self) -> str:
        return colleague_label(self.transfer_id)


@dataclass(frozen=True, slots=True)
class ConferenceSeat:
    """Where the caller's Dial action sends the caller: into the consult's conference."""

    call_id: int
    name: str


def conference_name(call_id: int) -> str:
    return f"koe-call-{call_id}"


def colleague_label(transfer_id: int) -> str:
    return f"colleague-{transfer_id}"


def _active(session: Session, call_id: int) -> Transfer | None:
    return session.scalars(
        select(Transfer)
        .where(Transfer.call_id == call_id, Transfer.kind == Kind.CONSULT.value, Transfer.state.in_(ACTIVE))
        .order_by(Transfer.id.desc())
        .limit(1)
        .with_for_update()
    ).first()


def _latest(session: Session, call_id: int) -> Transfer | None:
    return session.scalars(
        select(Transfer)
        .where(Transfer.call_id == call_id, Transfer.kind == Kind.CONSULT.value)
        .order_by(Transfer.id.desc())
        .limit(1)
        .with_for_update()
    ).first()


# --- the operator's actions ------------------------------------------------------------------------


def is_going_on(call_id: int) -> bool:
    """Is a consult of this call still dialling or talking? (No blind transfer meanwhile.)"""
    with db.transaction() as session:
        return _active(session, call_id) is not None


def start_consult(
    call_id: int, by_user_id: int, to_number: str, now: datetime, directory_entry_id: int | None = None
) -> int:
    """Record a consult of the operator's connected call; the worker does the rest."""
    if not E164.match(to_number or ""):
        raise ConsultError("invalid_number", "Enter the number in international form.")
    with db.transaction() as session:
        call = session.get(Call, call_id, with_for_update=True)
        if call is None or call.state != CallState.CONNECTED.value or call.answered_by_id != by_user_id:
            raise ConsultError("not_connected", "You can only consult about a call you are connected to.")
        if offers.is_callback(call):
            raise ConsultError("not_possible", "A callback cannot be consulted about; transfer it instead.")
        if _active(session, call.id) is not None:
            raise ConsultError("consult_active", "A consult is already going on for this call.")
        previous = _latest(session, call.id)
        # Already in the conference after an earlier consult: no GATHER, straight to DIAL.
        in_conference = previous is not None and previous.conference_sid is not None
        transfer = Transfer(
            organisation_id=call.organisation_id,
            call_id=call.id,
            from_user_id=by_user_id,
            directory_entry_id=directory_entry_id,
            to_number=to_number,
            kind=Kind.CONSULT.value,
            state=State.DIALING.value,
            attempts=1 if in_conference else 0,
            conference_sid=previous.conference_sid if in_conference and previous else None,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(transfer)
        session.flush()
        offers.call_event(session, call, "consult_started", now, by_user_id, transfer_id=transfer.id)
        return transfer.id


def _operators_consult(session: Session, call_id: int, user_id: int) -> tuple[Call, Transfer]:
    call = session.get(Call, call_id, with_for_update=True)
    if call is None or call.state != CallState.CONNECTED.value or call.answered_by_id != user_id:
        raise ConsultError("not_connected", "You can only do this with a call you are connected to.")
    transfer = _active(session, call.id)
    if transfer is None:
        raise ConsultError("no_consult", "There is no consult going on for this call.")
    return call, transfer


def connect(call_id: int, user_id: int, now: datetime) -> int:
    """The caller and the colleague talk; the operator leaves (and goes to wrap-up)."""
    with db.transaction() as session:
        call, transfer = _operators_consult(session, call_id, user_id)
        if transfer.state != State.CONSULTING.value:
            raise ConsultError("not_answered", "The colleague has not answered yet.")
        _hand_over(session, call, transfer, now, "consult_connected")
        return transfer.id


def _hand_over(session: Session, call: Call, transfer: Transfer, now: datetime, kind: str) -> None:
    transfer.state = State.CONNECTED.value
    transfer.ended_at = now
    transfer.next_attempt_at = now
    if offers.move_call(session, call, CallState.COMPLETED, now, kind, transfer_id=transfer.id):
        call.ended_at = now
        call.outcome_reason = "transferred"
    operators.on_call_ended(session, call, now)


def return_to_caller(call_id: int, user_id: int, now: datetime) -> int:
    """The operator goes back to the caller; a colleague's leg that is up or ringing is hung up."""
    with db.transaction() as session:
        call, transfer = _operators_consult(session, call_id, user_id)
        _end(session, call, transfer, State.CANCELED, "returned", now)
        return transfer.id


def _end(session: Session, call: Call, transfer: Transfer, state: State, reason: str, now: datetime) -> None:
    transfer.state = state.value
    transfer.recall_reason = reason
    transfer.ended_at = now
    # Before GATHER nothing has moved: nothing to undo.
    transfer.next_attempt_at = now if transfer.attempts > 0 else None
    offers.call_event(session, call, f"consult_{reason}", now, transfer_id=transfer.id)


# --- webhooks ------------------------------------------------------------------------------------


def caller_seat(group_key: str) -> ConferenceSeat | None:
    """The caller's Dial (to the operator) ended: into the conference if a consult moved them."""
    with db.transaction() as session:
        call_id = session.scalar(select(Offer.call_id).where(Offer.group_key == group_key).limit(1))
        if call_id is None:
            return None
        transfer = session.scalars(
            select(Transfer)
            .where(
                Transfer.call_id == call_id,
                Transfer.kind == Kind.CONSULT.value,
                Transfer.state.in_(ACTIVE),
                Transfer.attempts > 0,
            )
            .limit(1)
        ).first()
        state = session.scalar(select(Call.state).where(Call.id == call_id))
        if transfer is None or state != CallState.CONNECTED.value:
            return None
        return ConferenceSeat(call_id, conference_name(call_id))


def operator_seat(transfer_id: int) -> ConferenceSeat | None:
    """The operator's leg, redirected by GATHER: the conference, if the consult is still on."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id)
        if transfer is None or transfer.kind != Kind.CONSULT.value or transfer.state not in ACTIVE:
            return None
        return ConferenceSeat(transfer.call_id, conference_name(transfer.call_id))


def record_conference_event(call_id: int, event: str, label: str, conference_sid: str, now: datetime) -> bool:
    """A conference status callback. Returns True when the worker has something to do."""
    with db.transaction() as session:
        call = session.get(Call, call_id, with_for_update=True)
        transfer = _latest(session, call_id) if call is not None else None
        if call is None or transfer is None:
            log.info("conference event %s for call %s without a consult", event, call_id)
            return False
        if event == "participant-join" and label in (CALLER, OPERATOR):
            return _joined(transfer, label, conference_sid, now)
        if event == "participant-leave" and label == CALLER and transfer.state in ACTIVE:
            _end(session, call, transfer, State.CANCELED, "caller_hung_up", now)
            return True
        if event == "participant-leave" and label == OPERATOR:
            return _operator_left(session, call, transfer, now)
        return False


def _joined(transfer: Transfer, label: str, conference_sid: str, now: datetime) -> bool:
    if transfer.conference_sid is None and transfer.state in ACTIVE:
        transfer.conference_sid = conference_sid
    # DIAL once the caller is in: attempts == 1 means GATHER was done and DIAL not yet claimed.
    due = (
        label == CALLER
        and transfer.state == State.DIALING.value
        and transfer.attempts == 1
        and transfer.conference_sid is not None
        and transfer.next_attempt_at is None
    )
    if due:
        transfer.next_attempt_at = now
    return due


def _operator_left(session: Session, call: Call, transfer: Transfer, now: datetime) -> bool:
    if transfer.state == State.CONSULTING.value and call.state == CallState.CONNECTED.value:
        # Hanging up during a consult hands the caller over, as on a desk phone.
        _hand_over(session, call, transfer, now, "consult_connected_on_hangup")
        return True
    if transfer.state != State.DIALING.value or call.state != CallState.CONNECTED.value:
        return False
    # The colleague still rings and nobody is with the caller: to the front of the queue.
    offers.move_call(session, call, CallState.TRANSFERRING, now, "consult_operator_left")
    operators.on_call_ended(session, call, now)
    # As a blind transfer's recall: back to the operator if free again, else first in the queue.
    recall(session, transfer, call, "operator_left", now)
    transfer.next_attempt_at = now
    return True


def record_colleague_status(transfer_id: int, call_status: str, call_sid: str, now: datetime) -> bool:
    """The colleague leg's status callback. Returns True when the worker has something to do."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        if transfer is None or transfer.kind != Kind.CONSULT.value:
            return False
        if transfer.consult_call_sid is None and call_sid:
            transfer.consult_call_sid = call_sid
        call = session.get(Call, transfer.call_id, with_for_update=True)
        if call is None or transfer.state not in ACTIVE:
            return False
        if call_status == "in-progress":
            if transfer.state == State.DIALING.value:
                transfer.state = State.CONSULTING.value
                offers.call_event(session, call, "consult_answered", now, transfer_id=transfer.id)
            return False
        if call_status in NOT_REACHED and transfer.state == State.DIALING.value:
            _end(session, call, transfer, State.RECALLED, NOT_REACHED[call_status], now)
            return True
        if call_status == "completed":
            _end(session, call, transfer, State.RECALLED, "colleague_hung_up", now)
            return True
        return False


@dataclass(frozen=True, slots=True)
class Announcement:
    language: str
    name: str
    reason: str


def announcement(transfer_id: int) -> Announcement | None:
    """What the operator hears when they are back with the caller (in their own language)."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id)
        if transfer is None or transfer.recall_reason not in BACK_WITH_CALLER:
            return None
        user = session.get(User, transfer.from_user_id) if transfer.from_user_id else None
        org = session.get(Organisation, transfer.organisation_id)
        language = (user.locale if user else None) or (org.locale if org else "sv")
        entry_id = transfer.directory_entry_id
        entry = session.get(DirectoryEntry, entry_id) if entry_id else None
        return Announcement(language, entry.name if entry else "", transfer.recall_reason or "")


# --- the worker ----------------------------------------------------------------------------------


def _step_of(transfer: Transfer) -> Step | None:
    if transfer.state == State.DIALING.value:
        if transfer.attempts == 0:
            return Step.GATHER
        return Step.DIAL if transfer.attempts == 1 and transfer.conference_sid else None
    if transfer.state == State.CONNECTED.value:
        return Step.CONNECT
    if transfer.state in (State.CANCELED.value, State.RECALLED.value):
        return Step.RESUME
    return None


def claim_due(now: datetime) -> list[ConsultStep]:
    """Consult steps whose time has come, each claimed once (conditional UPDATE)."""
    due: list[ConsultStep] = []
    with db.transaction() as session:
        rows = session.scalars(
            select(Transfer)
            .where(Transfer.kind == Kind.CONSULT.value, Transfer.next_attempt_at <= now)
            .order_by(Transfer.next_attempt_at)
            .with_for_update(skip_locked=True)
        ).all()
        for transfer in rows:
            step = _step_of(transfer)
            bump = 1 if step in (Step.GATHER, Step.DIAL) else 0
            claimed = session.execute(
                update(Transfer)
                .where(Transfer.id == transfer.id, Transfer.next_attempt_at == transfer.next_attempt_at)
                .values(next_attempt_at=None, attempts=Transfer.attempts + bump)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1 or step is None:  # type: ignore[attr-defined]
                continue
            session.refresh(transfer)
            call = session.get(Call, transfer.call_id, with_for_update=True)
            if call is not None:
                planned = _plan(session, transfer, call, step, now)
                if planned is not None:
                    due.append(planned)
    return due


def _plan(session: Session, transfer: Transfer, call: Call, step: Step, now: datetime) -> ConsultStep | None:
    if step in (Step.GATHER, Step.DIAL) and call.state != CallState.CONNECTED.value:
        # The call ended before the step: nothing to move, nobody to dial.
        _end(session, call, transfer, State.CANCELED, "caller_hung_up", now)
        transfer.next_attempt_at = None
        return None
    queue = session.get(Queue, call.queue_id) if call.queue_id else None
    path = None
    if step is Step.RESUME and transfer.recall_reason == "operator_left":
        path = _recall_path(session, call)
    return ConsultStep(
        step=step,
        transfer_id=transfer.id,
        caller_sid=call.call_sid,
        conference_sid=transfer.conference_sid,
        colleague_sid=transfer.consult_call_sid,
        to_number=transfer.to_number,
        from_number=call.to_number,
        hold_url=calls.hold_music(session, queue).url,
        reason=transfer.recall_reason,
        redirect_path=path,
    )


def _recall_path(session: Session, call: Call) -> str:
    group = session.scalar(
        select(Offer.group_key)
        .where(Offer.call_id == call.id, Offer.state == OfferState.RINGING.value)
        .order_by(Offer.id.desc())
        .limit(1)
    )
    return f"/twilio/offer/{group}" if group else "/twilio/enqueue"


def colleague_dialled(transfer_id: int, call_sid: str, now: datetime) -> None:
    """DIAL created the colleague's leg. If the consult ended meanwhile, RESUME hangs it up."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        if transfer is None:
            return
        transfer.consult_call_sid = transfer.consult_call_sid or call_sid
        if transfer.state not in ACTIVE and transfer.state != State.CONNECTED.value:
            transfer.next_attempt_at = now


def step_failed(transfer_id: int, step: Step, reason: str, now: datetime) -> None:
    """A step's REST request failed: GATHER -> the consult never started; DIAL -> recalled, failed."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        call = session.get(Call, transfer.call_id, with_for_update=True) if transfer else None
        if transfer is None or call is None or transfer.state not in ACTIVE:
            log.info("consult %s: %s failed after it ended: %s", transfer_id, step, reason)
            return
        offers.call_event(session, call, "consult_step_failed", now, transfer_id=transfer_id, reason=reason)
        if step is Step.GATHER:
            _end(session, call, transfer, State.CANCELED, "not_started", now)
            transfer.next_attempt_at = None
        elif step is Step.DIAL:
            _end(session, call, transfer, State.RECALLED, "failed", now)


def next_step_query() -> Select[tuple[datetime | None]]:
    """The earliest step of a consult still to run (the worker's agenda reads it)."""
    return select(func.min(Transfer.next_attempt_at)).where(Transfer.kind == Kind.CONSULT.value)


def next_step(session: Session) -> datetime | None:
    return session.scalar(next_step_query())
