"""Blind transfer of a connected call, with camp-on on busy and recall on no answer (minimal).

The operator asks for the transfer (`start_blind_transfer`); the worker moves the caller leg to
`/twilio/transfer/<id>` (a `<Dial>` to the colleague) after commit; the Dial's action decides:
answered -> the call is done; busy -> camp on (wait in `<Enqueue>` and retry later) when camp-on is
on, else recall; no answer -> recall to the transferring operator if available, else to the front
of the queue. A camped-on caller hears why they wait and, now and then, that they still do
(`camp_on_words`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from ..domain import prompts_text
from ..domain.states import Call as CallState
from ..domain.states import can_move
from ..extensions import db
from ..models import (
    Call,
    DirectoryEntry,
    Offer,
    OfferState,
    PromptKind,
    Queue,
    Transfer,
    TransferKind,
    TransferState,
    User,
)
from ..telephony.twiml import Music, Utterance
from . import calls, offers, operators
from .dispatch import PendingRedirect, claim_operator

log = logging.getLogger("koe.transfers")

RECALL_PRIORITY_BOOST = 10  # a recalled caller goes ahead of everyone who has not been served yet
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class TransferError(Exception):
    """The transfer cannot be made; the message is for the operator."""


class TransferOutcome(StrEnum):
    HANGUP = "hangup"  # connected to the colleague and over
    CAMP_ON = "camp_on"  # wait in the camp-on queue
    REDIRECT = "redirect"  # to `path` (an offer to the transferring operator, or the queue)
    NOTHING = "nothing"  # the caller has gone


@dataclass(frozen=True, slots=True)
class TransferResult:
    outcome: TransferOutcome
    path: str | None = None
    transfer_id: int | None = None
    language: str = "sv"


@dataclass(frozen=True, slots=True)
class TransferDial:
    transfer_id: int
    active: bool
    to_number: str = ""
    caller_id: str | None = None
    timeout: int = 20


def start_blind_transfer(call_id: int, by_user_id: int, to_number: str, now: datetime) -> int:
    """Record a blind transfer of the operator's connected call; the worker moves the caller."""
    number = re.sub(r"[\s\-()]", "", to_number or "")
    if not E164.match(number):
        raise TransferError("Enter the number in international form, e.g. +46 8 123 456 78.")
    with db.transaction() as session:
        call = session.get(Call, call_id, with_for_update=True)
        if call is None or call.state != CallState.CONNECTED.value or call.answered_by_id != by_user_id:
            raise TransferError("You can only transfer a call you are connected to.")
        transfer = Transfer(
            organisation_id=call.organisation_id,
            call_id=call.id,
            from_user_id=by_user_id,
            to_number=number,
            kind=TransferKind.BLIND.value,
            state=TransferState.DIALING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(transfer)
        session.flush()
        offers.move_call(
            session, call, CallState.TRANSFERRING, now, "transfer_started", transfer_id=transfer.id
        )
        # A blind transfer hands the caller on: the operator is done and goes to wrap-up.
        operators.on_call_ended(session, call, now)
        return transfer.id


def transfer_dial(transfer_id: int) -> TransferDial:
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id)
        if transfer is None or transfer.state != TransferState.DIALING.value:
            return TransferDial(transfer_id, active=False)
        call = session.get(Call, transfer.call_id)
        caller_id = None
        if call is not None:
            caller_id = call.from_number if E164.match(call.from_number or "") else call.to_number
        return TransferDial(transfer_id, active=True, to_number=transfer.to_number, caller_id=caller_id)


def finish_transfer_dial(
    transfer_id: int,
    dial_status: str,
    call_status: str,
    now: datetime,
    camp_on_seconds: int = 0,
    camp_on_retry_seconds: int = 30,
) -> TransferResult:
    """The Dial to the colleague has ended. Idempotent for a retried action."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        if transfer is None:
            return TransferResult(TransferOutcome.NOTHING)
        call = session.get(Call, transfer.call_id, with_for_update=True)
        if call is None:
            return TransferResult(TransferOutcome.NOTHING)
        if transfer.state != TransferState.DIALING.value:
            return _repeat(session, transfer, call)
        if dial_status == "completed":
            transfer.state = TransferState.CONNECTED.value
            transfer.ended_at = now
            if offers.move_call(
                session, call, CallState.COMPLETED, now, "transferred", transfer_id=transfer.id
            ):
                call.ended_at = now
                call.outcome_reason = "transferred"
            return TransferResult(TransferOutcome.HANGUP)
        if call_status in offers.CALLER_GONE_STATUSES:
            transfer.state = TransferState.CANCELED.value
            transfer.ended_at = now
            offers.call_event(session, call, "caller_hung_up_during_transfer", now, transfer_id=transfer.id)
            return TransferResult(TransferOutcome.NOTHING)
        if dial_status == "busy" and camp_on_seconds > 0:
            if transfer.camp_on_until is None:
                transfer.camp_on_until = now + timedelta(seconds=camp_on_seconds)
            if now < transfer.camp_on_until:
                transfer.state = TransferState.CAMPED_ON.value
                transfer.next_attempt_at = now + timedelta(seconds=camp_on_retry_seconds)
                offers.move_call(
                    session, call, CallState.CAMPED_ON, now, "camped_on", transfer_id=transfer.id
                )
                return TransferResult(TransferOutcome.CAMP_ON, None, transfer.id, _language(session, call))
        reason = {"busy": "busy", "failed": "failed"}.get(dial_status, "no_answer")
        return TransferResult(TransferOutcome.REDIRECT, path=recall(session, transfer, call, reason, now))


def _language(session: Session, call: Call) -> str:
    queue = session.get(Queue, call.queue_id) if call.queue_id else None
    return queue.language if queue else "sv"


@dataclass(frozen=True, slots=True)
class CampOnWords:
    """What a camped-on caller hears: why they wait (`intro`), then now and then `update`."""

    intro: Utterance
    update: Utterance
    music: Music


def camp_on_words(transfer_id: int) -> CampOnWords:
    """In the queue's language: the queue's (else the organisation's) camp-on prompt when one is
    set, else the built-in words naming the colleague ("Anna Berg pratar i ett annat samtal …")."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id)
        call = session.get(Call, transfer.call_id) if transfer else None
        queue = session.get(Queue, call.queue_id) if call and call.queue_id else None
        language, voice = (queue.language, queue.voice) if queue else ("sv", None)
        entry_id = transfer.directory_entry_id if transfer else None
        entry = session.get(DirectoryEntry, entry_id) if entry_id else None
        name = entry.name if entry else ""
        prompt = calls.prompt_of(session, queue, PromptKind.CAMP_ON) if queue else None
        return CampOnWords(
            intro=calls.utterance(prompt, prompts_text.camp_on_busy(language, name), language, voice),
            update=calls.utterance(prompt, prompts_text.camp_on_still_busy(language, name), language, voice),
            music=calls.hold_music(session, queue),
        )


def _repeat(session: Session, transfer: Transfer, call: Call) -> TransferResult:
    if transfer.state == TransferState.CONNECTED.value:
        return TransferResult(TransferOutcome.HANGUP)
    if transfer.state == TransferState.CAMPED_ON.value:
        return TransferResult(TransferOutcome.CAMP_ON, None, transfer.id, _language(session, call))
    if transfer.state == TransferState.RECALLED.value:
        group = session.scalar(
            select(Offer.group_key)
            .where(Offer.call_id == call.id, Offer.state == OfferState.RINGING.value)
            .order_by(Offer.id.desc())
            .limit(1)
        )
        return TransferResult(
            TransferOutcome.REDIRECT, path=f"/twilio/offer/{group}" if group else "/twilio/enqueue"
        )
    return TransferResult(TransferOutcome.NOTHING)


def recall(session: Session, transfer: Transfer, call: Call, reason: str, now: datetime) -> str:
    """Back to the transferring operator if they are free (an offer), else to the front of the queue.

    Returns the path the caller leg should go to next.
    """
    transfer.state = TransferState.RECALLED.value
    transfer.recall_reason = reason
    transfer.ended_at = now
    transfer.next_attempt_at = None
    user = session.get(User, transfer.from_user_id) if transfer.from_user_id else None
    if (
        user is not None
        and offers.device_of(user) is not None
        and operators.login_queue_ids(session, user.id)
        and can_move(call.state, CallState.OFFERED.value)
        and claim_operator(session, user.id, now)
    ):
        offers.move_call(
            session, call, CallState.OFFERED, now, "recalled", transfer_id=transfer.id, to="operator"
        )
        queue = session.get(Queue, call.queue_id) if call.queue_id else None
        group_key = offers.create_offer_group(
            session, call, [user.id], queue.ring_timeout_seconds if queue else 20, now
        )
        return f"/twilio/offer/{group_key}"
    # The operator was not free (the claim failed or never ran): the caller goes first in the queue.
    session.flush()
    if offers.move_call(
        session, call, CallState.WAITING, now, "recalled", transfer_id=transfer.id, to="queue"
    ):
        call.priority = call.priority + RECALL_PRIORITY_BOOST
        call.entered_queue_at = call.entered_queue_at or now
    return "/twilio/enqueue"


def claim_due(now: datetime) -> list[PendingRedirect]:
    """Worker: transfers whose next attempt is due -> the redirects to perform after commit.

    A dialing transfer is dialled for the first time; a camped-on one is retried, or recalled when
    its camp-on time is over. Claimed with a conditional UPDATE, so two workers never both redirect.
    """
    due: list[PendingRedirect] = []
    with db.transaction() as session:
        rows = session.scalars(
            select(Transfer)
            .where(
                Transfer.kind == TransferKind.BLIND.value,  # consults: services/consult.py
                Transfer.state.in_((TransferState.DIALING.value, TransferState.CAMPED_ON.value)),
                Transfer.next_attempt_at <= now,
            )
            .order_by(Transfer.next_attempt_at)
            .with_for_update(skip_locked=True)
        ).all()
        for transfer in rows:
            claimed = session.execute(
                update(Transfer)
                .where(Transfer.id == transfer.id, Transfer.next_attempt_at == transfer.next_attempt_at)
                .values(next_attempt_at=None, attempts=Transfer.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                continue
            session.refresh(transfer)
            call = session.get(Call, transfer.call_id, with_for_update=True)
            if call is None:
                continue
            if transfer.state == TransferState.CAMPED_ON.value:
                if transfer.camp_on_until is not None and now >= transfer.camp_on_until:
                    path = recall(session, transfer, call, "camp_on_timeout", now)
                    group = path.rsplit("/", 1)[-1] if path.startswith("/twilio/offer/") else None
                    due.append(PendingRedirect(call.id, call.call_sid, path, group_key=group))
                    continue
                transfer.state = TransferState.DIALING.value
                offers.move_call(
                    session, call, CallState.TRANSFERRING, now, "camp_on_retry", transfer_id=transfer.id
                )
            path = f"/twilio/transfer/{transfer.id}"
            due.append(PendingRedirect(call.id, call.call_sid, path, transfer_id=transfer.id))
    return due


def next_attempt_query() -> Select[tuple[datetime | None]]:
    """The earliest next attempt of a blind transfer still dialling or camped on."""
    return select(func.min(Transfer.next_attempt_at)).where(
        Transfer.kind == TransferKind.BLIND.value,
        Transfer.state.in_((TransferState.DIALING.value, TransferState.CAMPED_ON.value)),
    )


def next_attempt(session: Session) -> datetime | None:
    return session.scalar(next_attempt_query())


def redirect_failed(transfer_id: int, now: datetime, reason: str) -> None:
    """The caller could not be moved (they hung up): the transfer is over."""
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        if transfer is None or transfer.state in (
            TransferState.CONNECTED.value,
            TransferState.CANCELED.value,
        ):
            return
        transfer.state = TransferState.CANCELED.value
        transfer.ended_at = now
        call = session.get(Call, transfer.call_id)
        if call is not None:
            offers.call_event(
                session, call, "transfer_redirect_failed", now, transfer_id=transfer.id, reason=reason
            )
