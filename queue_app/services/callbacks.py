"""Calling back a caller who pressed 1 instead of waiting: the half after `calls.choose_option`.

The call waits as `callback_pending` with the place it had (priority, entered_queue_at). The
dispatcher offers it like a waiting call (Offer rows, the operator ringing, the call `offered`),
but what the worker then does is create an outbound call to the operator's device
(`PendingRedirect.kind == CREATE_CALL`), not redirect a caller leg. The webhooks of that leg
(web/offers.py, /twilio/callback/<group_key>…) land here, one transaction each, idempotent:

- `answer`: the operator's leg answered: the offer is accepted (operator on_call, call connected)
  and the leg is told whom to call: `<Dial callerId=<the number the caller rang>><Number>`.
- `record_operator_leg`: the leg's status callback. Not answered (no-answer, busy, failed,
  canceled): a missed offer like any other, and the call is `callback_pending` again, same place.
- `finish`: the Dial's action. `completed`: the call is completed, the operator goes to wrap-up and
  the MissedCall (reason callback) is handled. Otherwise the attempt failed: the call is retried
  after `CALLBACK_RETRY_SECONDS`; after `CALLBACK_MAX_ATTEMPTS` it ends `abandoned` with
  outcome_reason `callback_unreachable` and its MissedCall stays open for a human.

Attempts and the next try are kept in the call's `announcement_state["callback"]` (the caller has
hung up, so the announcements no longer use it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..domain.states import Call as CallState
from ..extensions import db
from ..models import Call, MissedCall, MissedCallStatus, Offer, OfferState, Queue, User
from . import offers, operators

log = logging.getLogger("koe.callbacks")

CALLBACK_MAX_ATTEMPTS = 3
DEFAULT_RETRY_SECONDS = 300
# How long the callee's phone rings (the <Dial timeout>).
CALLBACK_DIAL_TIMEOUT = 30
STATE_KEY = "callback"
_NOT_ANSWERED = {
    "no-answer": OfferState.NO_ANSWER,
    "busy": OfferState.DECLINED,
    "failed": OfferState.UNREACHABLE,
    "canceled": OfferState.CANCELED,
}
_NOT_FINAL = frozenset({"queued", "initiated", "ringing", "in-progress"})


# --- the call's callback memory ------------------------------------------------------------------


def _memory(call: Call) -> dict[str, Any]:
    value = (call.announcement_state or {}).get(STATE_KEY)
    return dict(value) if isinstance(value, dict) else {}


def attempts(call: Call) -> int:
    """Callback attempts that reached the callee's phone and were not answered."""
    return int(_memory(call).get("attempts", 0))


def retry_at(call: Call) -> datetime | None:
    raw = _memory(call).get("retry_at")
    return datetime.fromisoformat(raw) if raw else None


def is_due(call: Call, now: datetime) -> bool:
    """May the dispatcher offer this call now? Waiting calls always; callbacks once their retry is due."""
    if call.state != CallState.CALLBACK_PENDING.value:
        return True
    due = retry_at(call)
    return due is None or due <= now


def next_retry(session: Session, now: datetime) -> datetime | None:
    """The earliest callback retry still to come (the worker wakes then)."""
    upcoming = []
    for state in session.scalars(
        select(Call.announcement_state).where(Call.state == CallState.CALLBACK_PENDING.value)
    ):
        raw = (state or {}).get(STATE_KEY, {}).get("retry_at") if isinstance(state, dict) else None
        if raw:
            at = datetime.fromisoformat(raw)
            if at > now:
                upcoming.append(at)
    return min(upcoming) if upcoming else None


def _remember(call: Call, **values: Any) -> None:
    state = dict(call.announcement_state or {})
    state[STATE_KEY] = _memory(call) | values
    call.announcement_state = state  # a new dict: the JSON column sees the change


# --- the operator's leg ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackPlan:
    group_key: str
    active: bool
    callback_number: str = ""
    caller_id: str = ""  # the number the caller rang
    queue_name: str = ""
    language: str = "sv"
    voice: str | None = None
    # The operator's device is a phone: they must press 1 first (a voicemail never does).
    needs_confirm: bool = False


def _queue_of(session: Session, call: Call) -> Queue | None:
    return session.get(Queue, call.queue_id) if call.queue_id else None


def answer(group_key: str, now: datetime, confirmed: bool = False) -> CallbackPlan:
    """The operator answered the callback's outbound leg: accept the offer, say whom to dial.

    A phone's answer may be its voicemail, as for queue offers (services/offers.py): until the
    operator has pressed 1 (`confirmed`), the plan only asks for it and nothing is accepted.
    """
    with db.transaction() as session:
        group = offers.lock_group(session, group_key)
        if not group:
            log.info("callback answered for an unknown offer group %s", group_key)
            return CallbackPlan(group_key, active=False)
        offer = group[0]
        call = offers.lock_call(session, offer.call_id)
        if call is None or not call.callback_number:
            return CallbackPlan(group_key, active=False)
        if offer.state == OfferState.ACCEPTED.value and call.state != CallState.CONNECTED.value:
            return CallbackPlan(group_key, active=False)  # a late repeat of a finished attempt
        user = session.get(User, offer.user_id)
        device = offers.device_of(user) if user else None
        needs_confirm = not confirmed and device is not None and device.kind == "number"
        if needs_confirm and offer.state != OfferState.RINGING.value:
            return CallbackPlan(group_key, active=False)
        if not needs_confirm and not offers.accept_offer(session, group, offer, now):
            return CallbackPlan(group_key, active=False)
        queue = _queue_of(session, call)
        return CallbackPlan(
            group_key,
            active=True,
            callback_number=call.callback_number,
            caller_id=call.to_number,
            queue_name=queue.name if queue else "",
            language=queue.language if queue else "sv",
            voice=queue.voice if queue else None,
            needs_confirm=needs_confirm,
        )


def confirm(group_key: str, digits: str, now: datetime) -> CallbackPlan:
    """The phone operator's answer to "press 1": 1 takes the call; anything else, or nothing (a
    voicemail), is a missed offer and the callback waits for its next turn."""
    if digits.strip() == "1":
        return answer(group_key, now, confirmed=True)
    with db.transaction() as session:
        group = offers.lock_group(session, group_key)
        if any(o.state == OfferState.RINGING.value for o in group):
            offers.close_group(session, group, OfferState.NO_ANSWER, now, "callback_offer_unconfirmed")
    return CallbackPlan(group_key, active=False)


def record_operator_leg(group_key: str, leg_status: str, now: datetime) -> str:
    """The operator leg's status callback. Idempotent: only a still-ringing offer is changed."""
    if leg_status in _NOT_FINAL:
        return "recorded"
    with db.transaction() as session:
        group = offers.lock_group(session, group_key)
        if not any(o.state == OfferState.RINGING.value for o in group):
            # Answered (the Dial's action decides) or already ended: nothing more to do.
            return "ignored"
        if leg_status == "completed":
            # Ended without our answer webhook accepting it (it failed or came too late): our side,
            # so no miss is counted against the operator.
            offers.close_group(
                session, group, OfferState.NO_ANSWER, now, "callback_offer_lost", count_miss=False
            )
            return "lost"
        outcome = _NOT_ANSWERED.get(leg_status, OfferState.NO_ANSWER)
        offers.close_group(session, group, outcome, now, "callback_offer_missed")
        return "missed"


# --- the Dial to the caller ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackResult:
    outcome: str  # completed | retry | given_up | ignored
    language: str = "sv"
    voice: str | None = None


def finish(
    group_key: str,
    dial_status: str,
    now: datetime,
    retry_seconds: int = DEFAULT_RETRY_SECONDS,
    max_attempts: int = CALLBACK_MAX_ATTEMPTS,
) -> CallbackResult:
    """The Dial to the caller's number has ended. Idempotent: a repeated action changes nothing."""
    with db.transaction() as session:
        group = offers.lock_group(session, group_key)
        accepted = next((o for o in group if o.state == OfferState.ACCEPTED.value), None)
        if accepted is None:
            log.info("callback result for group %s without an accepted offer", group_key)
            return CallbackResult("ignored")
        call = offers.lock_call(session, accepted.call_id)
        if call is None:
            return CallbackResult("ignored")
        queue = _queue_of(session, call)
        language, voice = (queue.language, queue.voice) if queue else ("sv", None)
        latest = session.scalar(
            select(func.max(Offer.id)).where(
                Offer.call_id == call.id, Offer.state == OfferState.ACCEPTED.value
            )
        )
        if call.state != CallState.CONNECTED.value or latest != accepted.id:
            return CallbackResult("ignored", language, voice)  # a retried or late action
        if dial_status == "completed":
            _completed(session, call, accepted.user_id, now)
            return CallbackResult("completed", language, voice)
        return _failed(session, call, dial_status, now, retry_seconds, max_attempts, language, voice)


def _completed(session: Session, call: Call, user_id: int, now: datetime) -> None:
    offers.move_call(session, call, CallState.COMPLETED, now, "callback_completed", user_id=user_id)
    call.ended_at = now
    call.outcome_reason = "answered"
    session.execute(
        update(MissedCall)
        .where(MissedCall.call_id == call.id, MissedCall.status == MissedCallStatus.OPEN.value)
        .values(status=MissedCallStatus.HANDLED.value, handled_by_id=user_id, handled_at=now)
        .execution_options(synchronize_session=False)
    )
    operators.on_call_ended(session, call, now)


def _failed(
    session: Session,
    call: Call,
    dial_status: str,
    now: datetime,
    retry_seconds: int,
    max_attempts: int,
    language: str,
    voice: str | None,
) -> CallbackResult:
    tried = attempts(call) + 1
    if tried >= max_attempts:
        _remember(call, attempts=tried, last=dial_status, retry_at=None)
        offers.move_call(
            session, call, CallState.ABANDONED, now, "callback_unreachable", attempts=tried, dial=dial_status
        )
        call.ended_at = now
        call.outcome_reason = "callback_unreachable"
        outcome = "given_up"
    else:
        due = now + timedelta(seconds=retry_seconds)
        _remember(call, attempts=tried, last=dial_status, retry_at=due.isoformat())
        offers.move_call(
            session,
            call,
            CallState.CALLBACK_PENDING,
            now,
            "callback_failed",
            attempts=tried,
            dial=dial_status,
        )
        outcome = "retry"
    # The operator's part is over either way: wrap-up (or available) as after any call.
    operators.on_call_ended(session, call, now)
    # Nobody was reached: the attempt does not count as an answered call.
    call.answered_at = None
    call.answered_by_id = None
    return CallbackResult(outcome, language, voice)


def cancel(session: Session, call_id: int | None, user_id: int, now: datetime) -> bool:
    """The caller's callback is no longer wanted (their missed-call entry was marked handled).

    A pending callback ends `completed` with outcome `callback_canceled`. One whose offer rings at
    an operator right now is taken back first: the offer ends (no miss), so the operator's leg,
    if it is answered, finds nothing to dial. True when a callback was canceled.
    """
    call = offers.lock_call(session, call_id) if call_id is not None else None
    if call is None or not offers.is_callback(call):
        return False
    if call.state == CallState.OFFERED.value:
        for group_key in session.scalars(
            select(Offer.group_key)
            .where(Offer.call_id == call.id, Offer.state == OfferState.RINGING.value)
            .distinct()
        ).all():
            offers.close_group(
                session,
                offers.lock_group(session, group_key),
                OfferState.CANCELED,
                now,
                "callback_offer_canceled",
                count_miss=False,
            )
    if call.state != CallState.CALLBACK_PENDING.value:
        return False
    offers.move_call(session, call, CallState.COMPLETED, now, "callback_canceled", user_id=user_id)
    call.ended_at = now
    call.outcome_reason = "callback_canceled"
    _remember(call, retry_at=None)
    return True
