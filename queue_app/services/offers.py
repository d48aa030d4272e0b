"""What happens to an offer: the TwiML it needs, an answered leg, a missed one, the Dial's end.

Webhooks (web/offers.py) call these; each is one transaction and idempotent: a retried or late
callback finds the offer no longer ringing and changes nothing twice.

Devices: an operator with a `client_identity` rings in the browser (`<Client>`); one without, but
with a `phone_number`, rings that phone (`<Number>` with a whisper: "press 1 to take the call", so
a voicemail that picks up does not count as an answer).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Exists, select, update
from sqlalchemy.orm import Session

from ..domain.states import Call as CallState
from ..domain.states import can_move, is_final
from ..extensions import db
from ..models import (
    Call,
    CallEvent,
    Offer,
    OfferState,
    Queue,
    QueueLogin,
    Transfer,
    TransferKind,
    TransferState,
    User,
)
from . import operators

log = logging.getLogger("koe.offers")

# The Queue url (`bridge_formed`) is asked a moment before the bridge itself forms.
BRIDGE_SETTLE_SECONDS = 1

# The offer's deadline is the ring timeout plus Twilio's buffer (about 5 s, twilio.md §3) plus slack
# for the Dial action to reach us; after that the sweep reclaims it.
OFFER_GRACE_SECONDS = 15

# Twilio's DialCallStatus -> what it means for the offers still ringing.
DIAL_OUTCOMES = {
    "no-answer": OfferState.NO_ANSWER,
    "busy": OfferState.DECLINED,
    "failed": OfferState.UNREACHABLE,
    "canceled": OfferState.CANCELED,
}
LEG_OUTCOMES = DIAL_OUTCOMES
CALLER_GONE_STATUSES = frozenset({"completed", "canceled", "busy", "failed", "no-answer"})


class DialOutcome(StrEnum):
    HANGUP = "hangup"  # the call was answered and is over
    REQUEUE = "requeue"  # back to <Enqueue>, keeping the caller's place
    NOTHING = "nothing"  # the caller has gone; the answer is not used


@dataclass(frozen=True, slots=True)
class OfferTarget:
    user_id: int
    kind: str  # "client" | "number"
    address: str  # client identity or E.164 number


@dataclass(frozen=True, slots=True)
class OfferPlan:
    group_key: str
    ringing: bool
    ring_timeout: int = 20
    queue_name: str = ""
    language: str = "sv"
    voice: str | None = None
    targets: tuple[OfferTarget, ...] = ()


def device_of(user: User) -> OfferTarget | None:
    if user.client_identity:
        return OfferTarget(user.id, "client", user.client_identity)
    if user.phone_number:
        return OfferTarget(user.id, "number", user.phone_number)
    return None


def call_event(
    session: Session, call: Call, kind: str, now: datetime, user_id: int | None = None, **data: Any
) -> None:
    session.add(
        CallEvent(
            organisation_id=call.organisation_id,
            call_id=call.id,
            at=now,
            kind=kind,
            user_id=user_id,
            data=data,
        )
    )


def move_call(session: Session, call: Call, target: CallState, now: datetime, kind: str, **data: Any) -> bool:
    """Apply a legal call transition and log it; an illegal (late, duplicate) one is ignored."""
    if not can_move(call.state, target.value):
        log.info("call %s: ignored move %s -> %s (%s)", call.call_sid, call.state, target, kind)
        return False
    previous = call.state
    call.state = target.value
    call.version = (call.version or 0) + 1
    call_event(session, call, kind, now, **({"from": previous, "to": target.value} | data))
    return True


def _group(session: Session, group_key: str) -> list[Offer]:
    return list(
        session.scalars(
            select(Offer).where(Offer.group_key == group_key).order_by(Offer.id).with_for_update()
        ).all()
    )


def _lock_call(session: Session, call_id: int) -> Call | None:
    return session.get(Call, call_id, with_for_update=True, populate_existing=True)


def create_offer_group(
    session: Session, call: Call, user_ids: Iterable[int], ring_timeout: int, now: datetime
) -> str:
    """Offer rows for operators already claimed (moved to ringing) by the caller of this function."""
    group_key = str(uuid.uuid4())
    deadline = now + timedelta(seconds=ring_timeout + OFFER_GRACE_SECONDS)
    users = list(user_ids)
    for user_id in users:
        session.add(
            Offer(
                organisation_id=call.organisation_id,
                call_id=call.id,
                user_id=user_id,
                queue_id=call.queue_id,
                group_key=group_key,
                state=OfferState.RINGING.value,
                created_at=now,
                deadline_at=deadline,
            )
        )
    if call.queue_id is not None:
        session.execute(
            update(QueueLogin)
            .where(QueueLogin.queue_id == call.queue_id, QueueLogin.user_id.in_(users))
            .values(last_offered_at=now)
            .execution_options(synchronize_session=False)
        )
    return group_key


# --- TwiML plans ---------------------------------------------------------------------------------


def offer_plan(group_key: str) -> OfferPlan:
    """What the caller leg should dial for this offer group, or `ringing=False` if it is over."""
    with db.transaction() as session:
        offers = session.scalars(select(Offer).where(Offer.group_key == group_key).order_by(Offer.id)).all()
        ringing = [o for o in offers if o.state == OfferState.RINGING.value]
        if not ringing:
            return OfferPlan(group_key, ringing=False)
        call = session.get(Call, ringing[0].call_id)
        if call is None or call.state != CallState.OFFERED.value:
            return OfferPlan(group_key, ringing=False)
        queue = session.get(Queue, call.queue_id) if call.queue_id else None
        targets = []
        for offer in ringing:
            user = session.get(User, offer.user_id)
            target = device_of(user) if user else None
            if target:
                targets.append(target)
        return OfferPlan(
            group_key,
            ringing=bool(targets),
            ring_timeout=queue.ring_timeout_seconds if queue else 20,
            queue_name=queue.name if queue else "",
            language=queue.language if queue else "sv",
            voice=queue.voice if queue else None,
            targets=tuple(targets),
        )


# --- outcomes ------------------------------------------------------------------------------------


def _of_user(offers: list[Offer], user_id: int | None) -> Offer | None:
    """The offer of the group that rang this operator."""
    return next((o for o in offers if o.user_id == user_id), None)


def _find_offer(session: Session, offers: list[Offer], user_id: int | None, to: str | None) -> Offer | None:
    if user_id is not None:
        return _of_user(offers, user_id)
    if not to:
        return None
    for offer in offers:
        user = session.get(User, offer.user_id)
        target = device_of(user) if user else None
        if target and (
            (target.kind == "client" and to == f"client:{target.address}")
            or (target.kind == "number" and to.replace(" ", "") == target.address.replace(" ", ""))
        ):
            return offer
    return None


def _accept(session: Session, offers: list[Offer], offer: Offer, now: datetime) -> bool:
    if offer.state == OfferState.ACCEPTED.value:
        return True
    if offer.state != OfferState.RINGING.value:
        log.info(
            "offer %s for user %s answered after it ended (%s)", offer.group_key, offer.user_id, offer.state
        )
        return False
    if any(o.state == OfferState.ACCEPTED.value for o in offers):
        return False
    call = _lock_call(session, offer.call_id)
    if call is None or not move_call(
        session, call, CallState.CONNECTED, now, "answered", user_id=offer.user_id
    ):
        return False
    call.answered_at = now
    call.answered_by_id = offer.user_id
    offer.state = OfferState.ACCEPTED.value
    offer.ended_at = now
    operators.record_answer(session, offer.user_id, call, now)
    for other in offers:
        if other.state == OfferState.RINGING.value:
            other.state = OfferState.CANCELED.value
            other.ended_at = now
            session.flush()
            operators.release_after_offer(session, other.user_id, now)
    return True


def _end_offer(
    session: Session, offer: Offer, outcome: OfferState, now: datetime, count_miss: bool = True
) -> None:
    offer.state = outcome.value
    offer.ended_at = now
    session.flush()
    logged_out = False
    if count_miss and outcome in (OfferState.NO_ANSWER, OfferState.DECLINED, OfferState.UNREACHABLE):
        queue = session.get(Queue, offer.queue_id) if offer.queue_id else None
        logged_out = operators.record_missed_offer(session, offer.user_id, queue, outcome.value, now)
    if not logged_out:
        operators.release_after_offer(session, offer.user_id, now)


def _call_has_live_offer(session: Session, call_id: int, except_group: str | None) -> bool:
    query = select(Offer.id).where(
        Offer.call_id == call_id, Offer.state.in_((OfferState.RINGING.value, OfferState.ACCEPTED.value))
    )
    if except_group:
        query = query.where(Offer.group_key != except_group)
    return session.scalar(query.limit(1)) is not None


def close_group(
    session: Session,
    offers: list[Offer],
    outcome: OfferState,
    now: datetime,
    kind: str,
    count_miss: bool = True,
) -> Call | None:
    """End every still-ringing offer of a group and return the caller to the queue (their place kept)."""
    if not offers:
        return None
    for offer in offers:
        if offer.state == OfferState.RINGING.value:
            _end_offer(session, offer, outcome, now, count_miss=count_miss)
    call = _lock_call(session, offers[0].call_id)
    if (
        call is not None
        and call.state == CallState.OFFERED.value
        and not _call_has_live_offer(session, call.id, except_group=None)
    ):
        move_call(
            session, call, back_state(call), now, kind, group_key=offers[0].group_key, outcome=outcome.value
        )
    return call


def is_callback(call: Call) -> bool:
    """A call the caller asked us to return: its offers ring an operator's outbound leg, not a Dial."""
    return call.callback_number is not None


def back_state(call: Call) -> CallState:
    """Where a call goes after a missed offer, keeping its place: waiting, or waiting for its callback."""
    return CallState.CALLBACK_PENDING if is_callback(call) else CallState.WAITING


# The steps services/callbacks.py composes into its own transactions.
lock_group = _group
lock_call = _lock_call
accept_offer = _accept
end_offer = _end_offer


def record_leg_status(
    group_key: str,
    leg_status: str,
    now: datetime,
    user_id: int | None = None,
    to: str | None = None,
    own_leg_sid: str | None = None,
) -> None:
    """An operator leg's status callback: who answered, who declined, who hung up. Idempotent.

    The leg is a child of the caller's `<Dial>` (a recall) or the operator's own outbound call (a
    queue offer, `leg_sid` set). For the latter nothing else reports the end of the ringing: when
    the last leg of the group has ended unanswered, the caller simply waits on (their place kept).
    `own_leg_sid`: the callback came from an outbound call of our own (Direction outbound-api); it
    may come before the worker recorded the leg's SID (a race, or a worker killed in between).
    """
    with db.transaction() as session:
        offers = _group(session, group_key)
        offer = _find_offer(session, offers, user_id, to)
        if offer is None:
            log.info("leg callback for unknown offer group=%s user=%s to=%s", group_key, user_id, to)
            return
        if own_leg_sid and offer.leg_sid is None:
            offer.leg_sid = own_leg_sid
        user = session.get(User, offer.user_id)
        target = device_of(user) if user else None
        if leg_status == "in-progress":
            # A phone's answer may be its voicemail: it counts only after the whisper's "1".
            if target is not None and target.kind == "client":
                _accept(session, offers, offer, now)
            return
        if leg_status not in CALLER_GONE_STATUSES:
            return
        own_leg = offer.leg_sid is not None
        offer.leg_done = True
        if offer.state == OfferState.ACCEPTED.value and own_leg:
            _connection_over(session, offer, now)  # the operator hung up (or their line dropped)
            return
        if offer.state != OfferState.RINGING.value:
            return
        # One operator declined or could not be reached while others may still ring. An own leg
        # that ended "completed" without being accepted (a voicemail that never pressed 1) is a miss.
        _end_offer(session, offer, LEG_OUTCOMES.get(leg_status, OfferState.NO_ANSWER), now)
        if own_leg:
            _after_last_leg(session, offers, now, "offer_missed")


# --- the operator's own leg (a queue offer) ------------------------------------------------------


class LegStep(StrEnum):
    BRIDGE = "bridge"  # take the caller out of their queue: <Dial><Queue>
    HOLD = "hold"  # taken, but the caller still hears the welcome: their queue begins after it
    CONFIRM = "confirm"  # a phone: "press 1 to take the call" first
    GONE = "gone"  # another operator took it, or the caller left: hang up


@dataclass(frozen=True, slots=True)
class LegAnswer:
    step: LegStep
    call_id: int = 0
    queue_name: str = ""
    language: str = "sv"
    voice: str | None = None


def leg_created(group_key: str, user_id: int, leg_sid: str) -> None:
    """The worker created the operator's leg. Kept even if the offer ended meanwhile: then the leg
    is a stray one, and the worker's next round hangs it up."""
    with db.transaction() as session:
        offer = _of_user(_group(session, group_key), user_id)
        if offer is not None and offer.leg_sid is None:
            offer.leg_sid = leg_sid


def leg_failed(group_key: str, user_id: int, now: datetime, reason: str) -> None:
    """The leg could not be created (our side or Twilio's): that operator is free again, not charged
    with a miss; the caller waits on if nobody else rings for them."""
    with db.transaction() as session:
        offers = _group(session, group_key)
        offer = _of_user(offers, user_id)
        if offer is None or offer.state != OfferState.RINGING.value:
            return
        _end_offer(session, offer, OfferState.UNREACHABLE, now, count_miss=False)
        call = _lock_call(session, offer.call_id)
        if call is not None:
            call_event(session, call, "offer_leg_failed", now, group_key=group_key, reason=reason)
        _after_last_leg(session, offers, now, "offer_canceled")


def answer_leg(
    group_key: str, user_id: int | None, leg_sid: str, now: datetime, confirmed: bool
) -> LegAnswer:
    """The operator answered their leg. A browser takes the call at once (the first answer wins); a
    phone only once it pressed 1 (`confirmed`), since a voicemail answers too."""
    with db.transaction() as session:
        offers = _group(session, group_key)
        offer = _of_user(offers, user_id)
        if offer is None:
            log.info("leg answered for unknown offer group=%s user=%s", group_key, user_id)
            return LegAnswer(LegStep.GONE)
        offer.leg_sid = offer.leg_sid or leg_sid
        call = session.get(Call, offer.call_id)
        queue = session.get(Queue, call.queue_id) if call is not None and call.queue_id else None
        answer = LegAnswer(
            LegStep.GONE,
            offer.call_id,
            queue.name if queue else "",
            queue.language if queue else "sv",
            queue.voice if queue else None,
        )
        user = session.get(User, offer.user_id)
        target = device_of(user) if user else None
        if target is not None and target.kind == "number" and not confirmed:
            ringing = offer.state == OfferState.RINGING.value
            return replace(answer, step=LegStep.CONFIRM if ringing else LegStep.GONE)
        if call is None or is_final(call.state):
            if offer.state == OfferState.ACCEPTED.value and call is not None:
                operators.on_call_ended(session, call, now)  # gone between the answer and the bridge
            return answer
        if offer.state == OfferState.ACCEPTED.value and not _still_ours(session, call, offer):
            return answer  # a HOLD that outlived its call: transferred or consulted meanwhile
        if not _accept(session, offers, offer, now):
            return answer
        return replace(answer, step=LegStep.BRIDGE if in_own_queue(call) else LegStep.HOLD)


def _still_ours(session: Session, call: Call, offer: Offer) -> bool:
    """Is the caller still this accepted offer's to bridge? Not once a blind transfer or a later
    offer has taken the call, e.g. when the operator transferred it before the welcome ended. (A
    consult keeps the call connected: it waits for the bridge, see `bridge_pending`.)"""
    return call.state == CallState.CONNECTED.value and _latest_group(session, call.id) == offer.group_key


def _latest_group(session: Session, call_id: int) -> str | None:
    """The call's newest offer group. Not the newest offer's id: operators rung together share a
    group, and the one whose offer has the lower id is as much the answerer as any other."""
    return session.scalar(
        select(Offer.group_key).where(Offer.call_id == call_id).order_by(Offer.id.desc()).limit(1)
    )


def bridge_formed(group_key: str, user_id: int | None, now: datetime, queue_sid: str | None = None) -> None:
    """The Queue url's request: the bridge forms. It also names the caller's Twilio queue, which a
    caller who hangs up while talking never reports otherwise (services/twilio_queues.py)."""
    with db.transaction() as session:
        offer = _of_user(_group(session, group_key), user_id)
        if offer is None or offer.bridged_at is not None:
            return
        call = session.get(Call, offer.call_id)
        if call is not None and queue_sid and call.twilio_queue_sid is None:
            call.twilio_queue_sid = queue_sid
        offer.bridged_at = now
        # A consult that waited for this bridge may begin once it has settled (consult._wait_for_bridge).
        settled = now + timedelta(seconds=BRIDGE_SETTLE_SECONDS)
        session.execute(
            update(Transfer)
            .where(
                Transfer.call_id == offer.call_id,
                Transfer.kind == TransferKind.CONSULT.value,
                Transfer.state == TransferState.DIALING.value,
                Transfer.attempts == 0,
                Transfer.next_attempt_at > settled,
            )
            .values(next_attempt_at=settled)
            .execution_options(synchronize_session=False)
        )


def latest_accepted(session: Session, call_id: int) -> Offer | None:
    """The offer through which the call was last answered."""
    return session.scalars(
        select(Offer)
        .where(Offer.call_id == call_id, Offer.state == OfferState.ACCEPTED.value)
        .order_by(Offer.id.desc())
        .limit(1)
    ).first()


def bridge_pending(session: Session, call_id: int, now: datetime) -> bool:
    """The call was answered on an operator's own leg whose bridge has not formed yet (the caller
    was still hearing the welcome): moving that leg now would leave the caller in their queue. The
    Queue url is asked just before the bridge, so a bridge younger than BRIDGE_SETTLE_SECONDS counts
    as pending too."""
    offer = latest_accepted(session, call_id)
    if offer is None or offer.leg_sid is None:
        return False
    return offer.bridged_at is None or offer.bridged_at > now - timedelta(seconds=BRIDGE_SETTLE_SECONDS)


def in_own_queue(call: Call) -> bool:
    """Has the caller reached their Twilio queue (fetched the waitUrl)? Before that the queue may not
    exist yet, and `<Dial><Queue>` of a missing queue fails."""
    return bool((call.announcement_state or {}).get("joined_at"))


def refuse_unconfirmed(group_key: str, user_id: int | None, now: datetime) -> None:
    """A phone operator's leg ended its "press 1" without a 1 (a voicemail): a missed offer."""
    with db.transaction() as session:
        offers = _group(session, group_key)
        offer = _of_user(offers, user_id)
        if offer is not None and offer.state == OfferState.RINGING.value:
            _end_offer(session, offer, OfferState.NO_ANSWER, now)
            _after_last_leg(session, offers, now, "offer_missed")


def _after_last_leg(session: Session, offers: list[Offer], now: datetime, kind: str) -> None:
    """One operator's leg is over; once no leg of the group rings, the caller simply waits on."""
    if not any(o.state == OfferState.RINGING.value for o in offers):
        close_group(session, offers, OfferState.NO_ANSWER, now, kind)


def leg_bridge_ended(group_key: str, user_id: int | None, dial_status: str, now: datetime) -> bool:
    """The operator leg's `<Dial><Queue>` ended: the talk is over, or it never began. True: it never
    began though the caller is still there for this operator (their queue was empty a moment): try
    again."""
    with db.transaction() as session:
        offer = _of_user(_group(session, group_key), user_id)
        if offer is None or offer.state != OfferState.ACCEPTED.value:
            return False
        call = _lock_call(session, offer.call_id)
        if dial_status != "completed" and call is not None and _still_ours(session, call, offer):
            return True
        _connection_over(session, offer, now)
        return False


def caller_bridge_ended(call_sid: str, now: datetime) -> None:
    """The caller's side of the same end (their Enqueue action said `bridged`)."""
    with db.transaction() as session:
        call_id = session.scalar(select(Call.id).where(Call.call_sid == call_sid))
        offer = latest_accepted(session, call_id) if call_id is not None else None
        if offer is not None and offer.leg_sid is not None:
            _connection_over(session, offer, now)


def accepted_group(call_sid: str) -> str | None:
    """The offer group through which this caller was last answered."""
    with db.transaction() as session:
        return session.scalar(
            select(Offer.group_key)
            .join(Call, Call.id == Offer.call_id)
            .where(Call.call_sid == call_sid, Offer.state == OfferState.ACCEPTED.value)
            .order_by(Offer.id.desc())
            .limit(1)
        )


def _connection_over(session: Session, offer: Offer, now: datetime) -> None:
    """Caller and operator are no longer bridged. Completed, unless the call has moved on since
    (a transfer, a consult, a later offer): then the service that moved it owns the call.
    Idempotent: the operator's Dial action, both status callbacks and the caller's Enqueue action
    may all report it."""
    call = _lock_call(session, offer.call_id)
    if call is None:
        return
    talking = call.state == CallState.CONNECTED.value and _latest_group(session, call.id) == offer.group_key
    if (
        talking
        and not _transferred_since(session, call.id, offer.created_at)
        and move_call(session, call, CallState.COMPLETED, now, "completed", reason="answered")
    ):
        call.ended_at = now
        call.outcome_reason = call.outcome_reason or "answered"
    if call.state != CallState.CONNECTED.value or call.answered_by_id != offer.user_id:
        operators.on_call_ended(session, call, now)


def _transferred_since(session: Session, call_id: int, since: datetime) -> bool:
    """A transfer or consult began since the answer: it moved the legs, and it owns their ends."""
    return (
        session.scalar(
            select(Transfer.id).where(Transfer.call_id == call_id, Transfer.created_at >= since).limit(1)
        )
        is not None
    )


def _stray() -> list[ColumnElement[bool]]:
    # As the partial index ix_offers_stray_legs (models.py) reads it.
    return [
        Offer.leg_sid.is_not(None),
        Offer.leg_done.is_(False),
        Offer.state.not_in((OfferState.RINGING.value, OfferState.ACCEPTED.value)),
    ]


def stray_legs(session: Session) -> list[tuple[int, str]]:
    """Legs still up whose offer is over: (offer id, leg sid), for the worker to hang up."""
    rows = session.execute(select(Offer.id, Offer.leg_sid).where(*_stray()).order_by(Offer.id)).all()
    return [(offer_id, str(sid)) for offer_id, sid in rows]


def stray_legs_exist() -> Exists:
    return select(Offer.id).where(*_stray()).exists()


def legs_hung_up(offer_ids: list[int]) -> None:
    if not offer_ids:
        return
    with db.transaction() as session:
        session.execute(
            update(Offer)
            .where(Offer.id.in_(offer_ids))
            .values(leg_done=True)
            .execution_options(synchronize_session=False)
        )


def confirm_whisper(group_key: str, user_id: int | None, to: str | None, digits: str, now: datetime) -> bool:
    """A phone operator pressed a key during the whisper; "1" takes the call. True: bridge."""
    with db.transaction() as session:
        offers = _group(session, group_key)
        offer = _find_offer(session, offers, user_id, to)
        if offer is None or digits.strip() != "1":
            return False
        return _accept(session, offers, offer, now)


def finish_dial(
    group_key: str, dial_status: str, call_status: str, bridged: bool, now: datetime
) -> DialOutcome:
    """The caller leg's Dial has ended. Idempotent: a retried action changes nothing twice."""
    with db.transaction() as session:
        offers = _group(session, group_key)
        if not offers:
            log.info("dial action for unknown offer group %s", group_key)
            return DialOutcome.REQUEUE
        accepted = next((o for o in offers if o.state == OfferState.ACCEPTED.value), None)
        if dial_status == "completed" and (accepted is not None or bridged):
            return _finish_answered(session, offers, accepted, now)
        caller_gone = call_status in CALLER_GONE_STATUSES
        if caller_gone:
            # The caller hung up while it rang: nobody missed anything. The call's own status
            # callback (web/voice.py) records the abandonment.
            for offer in offers:
                if offer.state == OfferState.RINGING.value:
                    _end_offer(session, offer, OfferState.CANCELED, now, count_miss=False)
            call = _lock_call(session, offers[0].call_id)
            if call is not None:
                call_event(session, call, "caller_hung_up_while_offered", now, group_key=group_key)
            return DialOutcome.NOTHING
        # completed without an accepted offer and without a bridge: a phone answered by voicemail
        # or hung up during the whisper. That is a no-answer.
        outcome = DIAL_OUTCOMES.get(dial_status, OfferState.NO_ANSWER)
        call = close_group(session, offers, outcome, now, "offer_missed")
        if call is not None and call.state in (CallState.COMPLETED.value, CallState.CONNECTED.value):
            return DialOutcome.HANGUP
        return DialOutcome.REQUEUE


def _finish_answered(
    session: Session, offers: list[Offer], accepted: Offer | None, now: datetime
) -> DialOutcome:
    call = _lock_call(session, offers[0].call_id)
    for offer in offers:
        if offer.state == OfferState.RINGING.value:
            _end_offer(session, offer, OfferState.CANCELED, now, count_miss=False)
    if call is None:
        return DialOutcome.HANGUP
    if call.state == CallState.OFFERED.value:
        # Bridged, but the leg callback naming the operator was lost.
        move_call(session, call, CallState.CONNECTED, now, "answered", user_id=None)
        call.answered_at = call.answered_at or now
    if move_call(session, call, CallState.COMPLETED, now, "completed", reason="answered"):
        call.ended_at = now
        call.outcome_reason = call.outcome_reason or "answered"
    operators.on_call_ended(session, call, now)
    return DialOutcome.HANGUP


def cancel_group(group_key: str, now: datetime, reason: str, caller_gone: bool = False) -> None:
    """The redirect to the offer failed: free the operators; the caller waits again (or is gone)."""
    with db.transaction() as session:
        offers = _group(session, group_key)
        call = close_group(session, offers, OfferState.CANCELED, now, "offer_canceled", count_miss=False)
        if call is not None:
            call_event(session, call, "offer_redirect_failed", now, group_key=group_key, reason=reason)
            if caller_gone and move_call(session, call, CallState.ABANDONED, now, "abandoned", reason=reason):
                call.ended_at = call.ended_at or now
                call.outcome_reason = call.outcome_reason or "ended_before_offer"


def reclaim_expired(session: Session, now: datetime) -> int:
    """Offers still ringing past their deadline: a lost callback. Caller back to waiting (or to
    callback_pending for a callback's offer).

    Not counted as a miss: the operator may never have rung (the redirect may not have happened),
    and an automatic log-out must not follow from our own lost callback.
    """
    keys = session.scalars(
        select(Offer.group_key)
        .where(Offer.state == OfferState.RINGING.value, Offer.deadline_at < now)
        .distinct()
        .order_by(Offer.group_key)
    ).all()
    for key in keys:
        close_group(
            session, _group(session, key), OfferState.NO_ANSWER, now, "offer_reclaimed", count_miss=False
        )
    return len(keys)
