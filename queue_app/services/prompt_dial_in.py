"""Recording a prompt by dialling in: a phone number and a one-time PIN instead of a call to the admin.

The admin presses "record by dialling in" (`start`): the page shows the organisation's recording
number (`PhoneNumber.records_prompts`) and a 6-digit PIN valid for PIN_VALID. Only a keyed hash of
the PIN is stored. The recording number's Voice webhook asks for the PIN with <Gather>
(web/prompt_dial_in.py); `enter_pin` finds the open session of that number's organisation whose PIN
it is, and the call continues in the call-me path's TwiML and states (services/prompts.py: record,
listen, 1 keep / 2 again; the worker fetches the kept take).

A PIN works once: the session leaves `dial_in`, and its hash is replaced by the CallSid that used it,
so a retried webhook of that same call is answered the same way and nobody else can use the PIN.
Every wrong PIN entered on the number counts against the organisation's open sessions; a session
that has seen MAX_WRONG_PINS is failed, so guessing a PIN over many calls does not pay. A caller
gets MAX_TRIES per call, then hears goodbye.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import Organisation, PhoneNumber, Recording
from .audit import Actor, ChangeRefused, record
from .prompts import ABANDONED, CALLING, DIAL_IN, FAILED, OPEN_STATES, PURPOSE, _target

log = logging.getLogger("koe.prompts")

PIN_VALID = timedelta(minutes=15)
PIN_DIGITS = 6
MAX_TRIES = 3  # per call
MAX_WRONG_PINS = 10  # per session, over all calls to the number
USED_BY = "call:"  # pin_hash once the PIN is used: the CallSid that used it


@dataclass(frozen=True, slots=True)
class DialIn:
    recording_id: int
    number: str
    pin: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Line:
    """The recording number as the call sees it: whose it is and what language to speak."""

    organisation_id: int
    language: str
    voice: str | None


def _pin_hash(organisation_id: int, pin: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, f"{organisation_id}:{pin}".encode(), hashlib.sha256).hexdigest()


def recording_number(session: Session, organisation_id: int) -> str | None:
    return session.scalar(
        select(PhoneNumber.number)
        .where(PhoneNumber.organisation_id == organisation_id, PhoneNumber.records_prompts.is_(True))
        .order_by(PhoneNumber.id)
        .limit(1)
    )


def start(
    session: Session, actor: Actor, queue_id: int | None, kind: str, language: str, now: datetime
) -> DialIn:
    """A new dial-in session for this prompt (older open sessions of it are abandoned)."""
    number = recording_number(session, actor.organisation_id)
    if number is None:
        raise ChangeRefused(
            None,
            _("Mark one of the organisation's numbers as the number that records prompts first."),
        )
    row = _target(session, actor, queue_id, kind, language)
    for other in session.scalars(
        select(Recording).where(
            Recording.prompt_id == row.id, Recording.purpose == PURPOSE, Recording.status.in_(OPEN_STATES)
        )
    ):
        other.status = ABANDONED  # the newest request wins
    pin = _unused_pin(session, actor.organisation_id)
    recording = Recording(
        organisation_id=actor.organisation_id,
        purpose=PURPOSE,
        status=DIAL_IN,
        prompt_id=row.id,
        user_id=actor.id,
        created_at=now,
        pin_hash=_pin_hash(actor.organisation_id, pin),
        pin_expires_at=now + PIN_VALID,
        pin_attempts=0,
    )
    session.add(recording)
    session.flush()
    record(
        session,
        actor,
        "prompt.record_by_dial_in",
        row,
        {"recording_number": [None, number], "recording_id": [None, recording.id]},
        at=now,
    )
    return DialIn(recording.id, number, pin, now + PIN_VALID)


def _unused_pin(session: Session, organisation_id: int) -> str:
    """A fresh PIN that no other waiting session of the organisation has (one caller, one session)."""
    taken = set(
        session.scalars(
            select(Recording.pin_hash).where(
                Recording.organisation_id == organisation_id, Recording.status == DIAL_IN
            )
        )
    )
    while True:
        pin = f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"
        if _pin_hash(organisation_id, pin) not in taken:
            return pin


def line(to_number: str) -> Line | None:
    """The organisation whose recording number was dialled, or None for any other number."""
    with db.transaction() as session:
        row = session.execute(
            select(Organisation)
            .join(PhoneNumber, PhoneNumber.organisation_id == Organisation.id)
            .where(PhoneNumber.number == to_number, PhoneNumber.records_prompts.is_(True))
        ).scalar_one_or_none()
        return Line(row.id, row.locale, row.default_voice) if row is not None else None


def enter_pin(to_number: str, call_sid: str, pin: str, now: datetime) -> int | None:
    """The recording session this PIN opens on this call (now `calling`), or None when it is wrong."""
    found = line(to_number)
    if found is None or not call_sid:
        return None
    with db.transaction() as session:
        # The same call asking again (a retried webhook): the session it already opened.
        again = session.scalar(
            select(Recording.id).where(
                Recording.organisation_id == found.organisation_id,
                Recording.purpose == PURPOSE,
                Recording.pin_hash == USED_BY + call_sid,
            )
        )
        if again is not None:
            return again
        wanted = _pin_hash(found.organisation_id, pin) if pin.isdigit() else ""
        opened = (
            session.execute(
                update(Recording)
                .where(
                    Recording.organisation_id == found.organisation_id,
                    Recording.purpose == PURPOSE,
                    Recording.status == DIAL_IN,
                    Recording.pin_hash == wanted,
                    Recording.pin_expires_at > now,
                )
                .values(status=CALLING, pin_hash=USED_BY + call_sid)
                .returning(Recording.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        if opened:
            log.info("dial-in PIN accepted: recording %s", opened[0])
            return opened[0]
        _count_wrong_pin(session, found.organisation_id, now)
        return None


def _count_wrong_pin(session: Session, organisation_id: int, now: datetime) -> None:
    open_now = (
        Recording.organisation_id == organisation_id,
        Recording.purpose == PURPOSE,
        Recording.status == DIAL_IN,
    )
    session.execute(
        update(Recording)
        .where(*open_now)
        .values(pin_attempts=Recording.pin_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    failed = session.execute(
        update(Recording)
        .where(*open_now, Recording.pin_attempts >= MAX_WRONG_PINS)
        .values(status=FAILED, pin_hash=None)
        .execution_options(synchronize_session=False)
    )
    if failed.rowcount:  # type: ignore[attr-defined]
        log.warning("dial-in sessions of organisation %s failed after wrong PINs", organisation_id)
