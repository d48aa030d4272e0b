"""The organisation's own settings and the phone numbers it owns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Organisation, PhoneNumber, Queue
from .audit import Actor, ChangeRefused, created, deleted, diff, record, snapshot

ORGANISATION_FIELDS = ("name", "timezone", "locale", "holiday_country", "default_voice")
NUMBER_FIELDS = ("number", "label", "queue_id", "records_prompts")


def update_organisation(
    session: Session, actor: Actor, organisation: Organisation, values: Mapping[str, Any], now: datetime
) -> dict[str, list[Any]]:
    before = snapshot(organisation, ORGANISATION_FIELDS)
    for name, value in values.items():
        setattr(organisation, name, value)
    session.flush()
    changes = diff(before, snapshot(organisation, ORGANISATION_FIELDS))
    if changes:
        record(session, actor, "organisation.update", organisation, changes, at=now)
    return changes


def _check_queue(session: Session, actor: Actor, queue_id: int | None) -> None:
    if queue_id is None:
        return
    found = session.scalar(
        select(Queue.id).where(Queue.id == queue_id, Queue.organisation_id == actor.organisation_id)
    )
    if found is None:
        raise ChangeRefused("queue_id", _("Choose one of your queues."))


def _check_recording(records_prompts: bool, queue_id: int | None) -> None:
    if records_prompts and queue_id is not None:
        raise ChangeRefused(
            "records_prompts",
            _("A number that records prompts cannot also reach a queue; choose No queue, or another number."),
        )


def _only_recording_number(session: Session, actor: Actor, row: PhoneNumber, now: datetime) -> None:
    """One recording number per organisation: marking one unmarks the others."""
    for other in session.scalars(
        select(PhoneNumber).where(
            PhoneNumber.organisation_id == actor.organisation_id,
            PhoneNumber.records_prompts.is_(True),
            PhoneNumber.id != row.id,
        )
    ):
        other.records_prompts = False
        record(session, actor, "number.update", other, {"records_prompts": [True, False]}, at=now)


def add_number(
    session: Session,
    actor: Actor,
    number: str,
    label: str | None,
    queue_id: int | None,
    now: datetime,
    records_prompts: bool = False,
) -> PhoneNumber:
    _check_queue(session, actor, queue_id)
    _check_recording(records_prompts, queue_id)
    if session.scalar(select(PhoneNumber.id).where(PhoneNumber.number == number)) is not None:
        # Numbers are unique across organisations; say no more than that it is taken.
        raise ChangeRefused("number", _("This number is already in use."))
    row = PhoneNumber(
        organisation_id=actor.organisation_id,
        number=number,
        label=label,
        queue_id=queue_id,
        records_prompts=records_prompts,
    )
    session.add(row)
    session.flush()
    if records_prompts:
        _only_recording_number(session, actor, row, now)
    record(session, actor, "number.create", row, created(snapshot(row, NUMBER_FIELDS)), at=now)
    return row


def update_number(
    session: Session,
    actor: Actor,
    row: PhoneNumber,
    label: str | None,
    queue_id: int | None,
    now: datetime,
    records_prompts: bool | None = None,
) -> dict[str, list[Any]]:
    """Change label and queue, and whether it records prompts unless `records_prompts` is None."""
    records = row.records_prompts if records_prompts is None else records_prompts
    _check_queue(session, actor, queue_id)
    _check_recording(records, queue_id)
    before = snapshot(row, NUMBER_FIELDS)
    row.label, row.queue_id, row.records_prompts = label, queue_id, records
    if records:
        _only_recording_number(session, actor, row, now)
    session.flush()
    changes = diff(before, snapshot(row, NUMBER_FIELDS))
    if changes:
        record(session, actor, "number.update", row, changes, at=now)
    return changes


def delete_number(session: Session, actor: Actor, row: PhoneNumber, now: datetime) -> None:
    record(
        session,
        actor,
        "number.delete",
        ("phone_numbers", row.id),
        deleted(snapshot(row, NUMBER_FIELDS)),
        at=now,
    )
    session.delete(row)
    session.flush()
