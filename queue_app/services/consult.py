"""Consult-then-transfer through a Twilio Conference (twilio.md §7, "Warm transfer").

The operator talks to the caller over a plain `<Dial><Client>` bridge. A consult moves both into
the conference `koe-call-<call id>` and dials the colleague into it while the caller is on hold:

1. `start_consult` (the API): a Transfer (kind consult, state dialing), due at once.
2. Step GATHER (worker): the operator's leg (their own call, bridged to the caller by `<Dial><Queue>`,
   or for a recalled call the child of the caller's Dial) is redirected into the conference (label
   `operator`). The bridge then ends; the caller's Enqueue action (or Dial action) asks
   `caller_seat`, which sends the caller into the same conference (label `caller`, the conference
   ends when they leave).
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
   colleague still rings, after pressing "back to the caller" before RESUME made their leaving end
   the call, or before GATHER moved their leg: the caller is recalled (back to the operator if they
   are free, else first in the queue) and first hears why (`/twilio/consult/<id>/recall`).
8. The safety net: a caller must never sit alone in the conference. Conference events that may
   leave them alone (the caller joins, anyone else leaves) set `alone_check_at` a few seconds ahead
   (a deadline, ALONE_SECONDS); step CHECK then lists the conference's participants and recalls a
   caller who has nobody connected with them, hanging up a colleague who still rings. While the
   caller has company and the call goes on, CHECK looks again every ALONE_SECONDS, so a lost
   participant-leave callback leaves nobody alone for long either.

Every webhook is one transaction and idempotent: a step is claimed once (a conditional UPDATE of
`next_attempt_at`), `attempts` counts the steps GATHER and DIAL so a duplicated join never dials
twice, and a status that does not fit the transfer's state changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.orm import Session

from ..domain import prompts_text
from ..domain.states import Call as CallState
from ..domain.states import is_final
from ..extensions import db
from ..models import Call, DirectoryEntry, Offer, OfferState, Organisation, Queue, Transfer, User
from ..models import TransferKind as Kind
from ..models import TransferState as State
from ..telephony.twiml import Utterance, spoken
from . import calls, offers, operators
from .transfers import E164, recall

log = logging.getLogger("koe.consult")

CALLER = "caller"
OPERATOR = "operator"
ACTIVE = (State.DIALING.value, State.CONSULTING.value)
DIAL_TIMEOUT_SECONDS = 20
# How long a caller may sit in the conference with nobody else before the worker looks (step CHECK).
ALONE_SECONDS = 5
# A consult waiting for the operator's bridge looks again this often; the bridge's own webhook
# (offers.bridge_formed) usually brings it forward at once.
BRIDGE_LOOK_SECONDS = 2
OPERATOR_LEFT = "operator_left"
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
    CHECK = "check"  # is the caller alone in the conference? then recall them


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
    conference_name: str = ""
    # The operator's own leg, bridged to the caller from their queue; None: a child of the
    # caller's <Dial> (a recalled call), found by asking Twilio.
    operator_sid: str | None = None

    @property
    def colleague_label(self) -> str:
        return colleague_label(self.transfer_id)


@dataclass(frozen=True, slots=True)
class ConferenceSeat:
    """Where the caller's Dial action sends the caller: into the consult's conference."""

    call_id: int
    name: str


@dataclass(frozen=True, slots=True)
class CallerRecall:
    """The caller goes back to the switchboard: first a sentence why, then `recall_path`."""

    transfer_id: int

    @property
    def path(self) -> str:
        return recall_path(self.transfer_id)


@dataclass(frozen=True, slots=True)
class AloneRecall:
    """Step CHECK found the caller alone: hang up a colleague who may still ring, move the caller."""

    caller_sid: str
    colleague_sid: str | None
    path: str


def conference_name(call_id: int) -> str:
    return f"koe-call-{call_id}"


def recall_path(transfer_id: int) -> str:
    return f"/twilio/consult/{transfer_id}/recall"


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


RECALLED_CALL_STATES = (CallState.WAITING.value, CallState.OFFERED.value)


def _recall_caller(session: Session, call: Call, transfer: Transfer, now: datetime, moment: str) -> None:
    """Nobody is with the caller any more: the call is recalled as a blind transfer's (the operator
    if they are free again, else first in the queue). Whoever calls this moves the caller's leg
    (to `recall_path`). `moment`: when it happened, for the call's history."""
    offers.move_call(
        session,
        call,
        CallState.TRANSFERRING,
        now,
        "consult_operator_left",
        transfer_id=transfer.id,
        moment=moment,
    )
    operators.on_call_ended(session, call, now)
    recall(session, transfer, call, OPERATOR_LEFT, now)


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


def caller_seat(group_key: str, now: datetime) -> ConferenceSeat | CallerRecall | None:
    """The caller's Dial (to the operator) ended: into the conference if a consult moved them.

    When the operator's leg ended instead (they hung up before GATHER moved it, or GATHER found it
    gone), the caller goes back to the switchboard rather than into an empty conference.
    None: no consult of this connection, the Dial ended as any other (offers.finish_dial).
    """
    with db.transaction() as session:
        offer = session.scalars(
            select(Offer).where(Offer.group_key == group_key).order_by(Offer.id).limit(1)
        ).first()
        call = session.get(Call, offer.call_id, with_for_update=True) if offer is not None else None
        transfer = _latest(session, call.id) if call is not None else None
        if offer is None or call is None or transfer is None or transfer.created_at < offer.created_at:
            return None  # no consult since this Dial began
        if transfer.state in ACTIVE and call.state == CallState.CONNECTED.value:
            if transfer.attempts > 0:
                return ConferenceSeat(call.id, conference_name(call.id))
            # GATHER never ran, so the operator hung up: no consult, the caller is recalled.
            _recall_caller(session, call, transfer, now, "before_gather")
            return CallerRecall(transfer.id)
        if transfer.recall_reason == OPERATOR_LEFT and call.state in RECALLED_CALL_STATES:
            # GATHER found the operator's leg gone and recalled the call: the caller follows.
            return CallerRecall(transfer.id)
        return None


def operator_seat(transfer_id: int) -> ConferenceSeat | None:
    """The operator's leg, redirected by GATHER: the conference, if the consult is still on."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id)
        if transfer is None or transfer.kind != Kind.CONSULT.value or transfer.state not in ACTIVE:
            return None
        return ConferenceSeat(transfer.call_id, conference_name(transfer.call_id))


def record_conference_event(
    call_id: int,
    event: str,
    label: str,
    conference_sid: str,
    now: datetime,
    ends_conference: bool = False,
    reason_left: str = "",
) -> bool:
    """A conference status callback. Returns True when the worker has something to do.

    `ends_conference` is the participant's EndConferenceOnExit, `reason_left` the
    ReasonParticipantLeft of a participant-leave.
    """
    with db.transaction() as session:
        call = session.get(Call, call_id, with_for_update=True)
        transfer = _latest(session, call_id) if call is not None else None
        if call is None or transfer is None:
            log.info("conference event %s for call %s without a consult", event, call_id)
            return False
        wake = False
        if event == "participant-join" and label in (CALLER, OPERATOR):
            wake = _joined(transfer, label, conference_sid, now)
        elif event == "participant-leave" and label == CALLER and transfer.state in ACTIVE:
            _end(session, call, transfer, State.CANCELED, "caller_hung_up", now)
            return True
        elif event == "participant-leave" and label == OPERATOR and reason_left != "conference-ended":
            wake = _operator_left(session, call, transfer, now, ends_conference)
        # The safety net: whenever the caller may now be alone, the worker looks a little later.
        may_be_alone = (event == "participant-join" and label == CALLER) or (
            event == "participant-leave" and label not in ("", CALLER) and reason_left != "conference-ended"
        )
        if may_be_alone and not is_final(call.state):
            wake = _look_for_alone_caller(transfer, now) or wake
        return wake


def _look_for_alone_caller(transfer: Transfer, now: datetime) -> bool:
    """Set the safety net's deadline (never later than one already set); True when it changed."""
    at = now + timedelta(seconds=ALONE_SECONDS)
    if transfer.alone_check_at is not None and transfer.alone_check_at <= at:
        return False
    transfer.alone_check_at = at
    return True


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


def _operator_left(
    session: Session, call: Call, transfer: Transfer, now: datetime, ends_conference: bool
) -> bool:
    """The operator's leg left the conference (not because the conference ended)."""
    if call.state != CallState.CONNECTED.value or ends_conference:
        # Back to a plain call (RESUME): the conference, and so the caller's call, ends with them.
        return False
    if transfer.state == State.CONSULTING.value:
        # Hanging up during a consult hands the caller over, as on a desk phone.
        _hand_over(session, call, transfer, now, "consult_connected_on_hangup")
        return True
    back_with_caller = (
        transfer.state in (State.CANCELED.value, State.RECALLED.value)
        and transfer.recall_reason in BACK_WITH_CALLER
    )
    if transfer.state != State.DIALING.value and not back_with_caller:
        return False
    # The colleague still rings, or the operator was going back to the caller but RESUME had not
    # yet made their leaving end the call: nobody is with the caller. As a blind transfer's
    # recall: back to the operator if free again, else first in the queue; RESUME moves the caller.
    moment = "while_dialing" if transfer.state == State.DIALING.value else f"after_{transfer.recall_reason}"
    _recall_caller(session, call, transfer, now, moment)
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


def recall_words(transfer_id: int) -> tuple[Utterance, str | None] | None:
    """What a recalled caller hears (in the queue's language), and where they go next.

    None: no such consult. The path is None when the call is over (the caller is gone).
    """
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id)
        call = session.get(Call, transfer.call_id) if transfer is not None else None
        if transfer is None or call is None or transfer.kind != Kind.CONSULT.value:
            return None
        queue = session.get(Queue, call.queue_id) if call.queue_id else None
        language, voice = (queue.language, queue.voice) if queue else ("sv", None)
        said = spoken(prompts_text.consult_caller_recalled(language), language, voice)
        return said, None if is_final(call.state) else _recall_path(session, call)


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
            if step is Step.GATHER and _wait_for_bridge(session, transfer, now):
                continue
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
        due.extend(_claim_checks(session, now))
    return due


def _wait_for_bridge(session: Session, transfer: Transfer, now: datetime) -> bool:
    """Answered before the welcome ended, the operator's leg waits for the caller to reach their
    queue. Moving it now would strand the caller there, so the consult begins once the bridge forms
    (or the call ends, which `_plan` handles)."""
    call = session.get(Call, transfer.call_id)
    if (
        call is None
        or call.state != CallState.CONNECTED.value
        or not offers.bridge_pending(session, call.id, now)
    ):
        return False
    transfer.next_attempt_at = now + timedelta(seconds=BRIDGE_LOOK_SECONDS)
    return True


def _claim_checks(session: Session, now: datetime) -> list[ConsultStep]:
    """The safety net's CHECK steps whose deadline has passed, each claimed once."""
    rows = session.scalars(
        select(Transfer)
        .where(Transfer.kind == Kind.CONSULT.value, Transfer.alone_check_at <= now)
        .order_by(Transfer.alone_check_at)
        .with_for_update(skip_locked=True)
    ).all()
    checks = []
    for transfer in rows:
        claimed = session.execute(
            update(Transfer)
            .where(Transfer.id == transfer.id, Transfer.alone_check_at == transfer.alone_check_at)
            .values(camp_on_until=None)  # alone_check_at's column
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        call = session.get(Call, transfer.call_id)
        if call is None or is_final(call.state):
            continue
        checks.append(
            ConsultStep(
                step=Step.CHECK,
                transfer_id=transfer.id,
                caller_sid=call.call_sid,
                conference_name=conference_name(call.id),
            )
        )
    return checks


def look_again(transfer_id: int, now: datetime) -> None:
    """CHECK found company with the caller: while the call goes on, look again in ALONE_SECONDS
    (a participant-leave callback can be lost, and nothing else would tell)."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        call = session.get(Call, transfer.call_id) if transfer is not None else None
        if transfer is None or call is None or call.state != CallState.CONNECTED.value:
            return
        _look_for_alone_caller(transfer, now)


def caller_alone(transfer_id: int, now: datetime) -> AloneRecall | None:
    """CHECK found the caller alone in the conference: recall the call unless that happened already.

    Returns how to move the caller, or None when the call is over (nobody to move).
    """
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        call = session.get(Call, transfer.call_id, with_for_update=True) if transfer else None
        if (
            transfer is None
            or call is None
            or call.state not in (CallState.CONNECTED.value, *RECALLED_CALL_STATES)
        ):
            return None  # over, or being moved elsewhere (a blind transfer)
        was_active = transfer.state in ACTIVE
        if call.state != CallState.CONNECTED.value and transfer.ended_at is not None:
            # Recalled already: RESUME or the Dial action moves the caller at once. Still there
            # ALONE_SECONDS after the recall means they were not moved; sooner, the list may be stale.
            moved_by = transfer.ended_at + timedelta(seconds=ALONE_SECONDS)
            if now < moved_by:
                transfer.alone_check_at = moved_by
                return None
        offers.call_event(session, call, "consult_caller_alone", now, transfer_id=transfer.id)
        if call.state == CallState.CONNECTED.value:
            _recall_caller(session, call, transfer, now, "caller_alone")
        colleague = transfer.consult_call_sid if was_active else None
        return AloneRecall(call.call_sid, colleague, recall_path(transfer.id))


def _plan(session: Session, transfer: Transfer, call: Call, step: Step, now: datetime) -> ConsultStep | None:
    if step in (Step.GATHER, Step.DIAL) and call.state != CallState.CONNECTED.value:
        # The call ended before the step: nothing to move, nobody to dial.
        _end(session, call, transfer, State.CANCELED, "caller_hung_up", now)
        transfer.next_attempt_at = None
        return None
    queue = session.get(Queue, call.queue_id) if call.queue_id else None
    path = None
    if step is Step.RESUME and transfer.recall_reason == OPERATOR_LEFT:
        path = recall_path(transfer.id)
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
        operator_sid=_operator_leg(session, call) if step is Step.GATHER else None,
    )


def _operator_leg(session: Session, call: Call) -> str | None:
    offer = offers.latest_accepted(session, call.id)
    return offer.leg_sid if offer is not None else None


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


def operator_gone(transfer_id: int, step: Step, now: datetime) -> None:
    """GATHER found the operator's leg gone (they hung up), or DIAL found no operator in the
    conference (the leg dropped on its way in): the caller is recalled. Their Dial action
    (`caller_seat`) sends them back, or, had it already seated them in the conference, the safety
    net's CHECK moves them."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        call = session.get(Call, transfer.call_id, with_for_update=True) if transfer else None
        if transfer is None or call is None or transfer.state not in ACTIVE:
            return
        if call.state != CallState.CONNECTED.value:
            _end(session, call, transfer, State.CANCELED, "caller_hung_up", now)
            transfer.next_attempt_at = None
            return
        _recall_caller(session, call, transfer, now, step.value)
        _look_for_alone_caller(transfer, now)


def step_failed(transfer_id: int, step: Step, reason: str, now: datetime) -> None:
    """A step's REST request failed: GATHER -> the consult never started; DIAL -> recalled, failed."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        call = session.get(Call, transfer.call_id, with_for_update=True) if transfer else None
        if step is Step.CHECK:
            # The safety net must not lapse because one look failed: look again later.
            if transfer is not None and call is not None and not is_final(call.state):
                _look_for_alone_caller(transfer, now)
            return
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
    """The earliest step or alone-check of a consult still to run (the worker's agenda reads it)."""
    consults = Transfer.kind == Kind.CONSULT.value
    steps = select(func.min(Transfer.next_attempt_at)).where(consults).scalar_subquery()
    checks = select(func.min(Transfer.camp_on_until)).where(consults).scalar_subquery()
    earliest = case(
        (checks.is_(None), steps), (steps.is_(None), checks), (checks < steps, checks), else_=steps
    )
    return select(earliest)


def next_step(session: Session) -> datetime | None:
    return session.scalar(next_step_query())
