"""Message templates, as the admin keeps them: add, edit, remove.

A template's subject and body may use only the fields in `domain.message_templates.TEMPLATE_FIELDS`
({caller}, {number}, {time}, {topic}, …); one that uses any other is refused with that field's
name, so a typo such as {topik} is caught when the template is saved, not when a colleague receives
it. The same rule as the configuration file (`config_schema.template_fields`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.message_templates import (
    MAX_SMS_LENGTH,
    TEMPLATE_FIELDS,
    MalformedTemplate,
    UnknownField,
    fields_used,
)
from ..models import MessageTemplate, TemplateChannel
from .audit import Actor, ChangeRefused, created, deleted, diff, record, snapshot

FIELDS = ("name", "channel", "subject", "body")
LIMITS = {"name": 100, "subject": 200, "body": 5000}


def check(values: Mapping[str, Any]) -> dict[str, str]:
    """{field: error message} for a template's values (empty when it may be saved)."""
    errors: dict[str, str] = {}
    name = (values.get("name") or "").strip()
    if not name:
        errors["name"] = _("A name is required.")
    if values.get("channel") not in {c.value for c in TemplateChannel}:
        errors["channel"] = _("Choose SMS, e-mail or both.")
    if not (values.get("body") or "").strip():
        errors["body"] = _("The message is empty.")
    for field, limit in LIMITS.items():
        if len(values.get(field) or "") > limit:
            errors.setdefault(field, _("Too long."))
    for field in ("subject", "body"):
        if field in errors:
            continue
        try:
            fields_used(values.get(field))
        except UnknownField as exc:
            errors[field] = _(
                "Unknown field {%(field)s}; the fields are %(fields)s.",
                field=exc.field,
                fields=", ".join("{" + f + "}" for f in TEMPLATE_FIELDS),
            )
        except MalformedTemplate:
            errors[field] = _("A brace that is not part of a field; write a literal brace as {{ or }}.")
    if (
        "body" not in errors
        and values.get("channel") == TemplateChannel.SMS.value
        and len(values.get("body") or "") > MAX_SMS_LENGTH
    ):
        errors["body"] = _("An SMS is at most %(n)s characters.", n=MAX_SMS_LENGTH)
    return errors


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    subject = (values.get("subject") or "").strip() or None
    return {
        "name": (values.get("name") or "").strip(),
        "channel": values.get("channel"),
        "subject": None if values.get("channel") == TemplateChannel.SMS.value else subject,
        "body": (values.get("body") or "").strip(),
    }


def _refuse(errors: dict[str, str]) -> None:
    if errors:
        field, message = next(iter(errors.items()))
        raise ChangeRefused(field, message)


def _check_name(session: Session, actor: Actor, name: str, except_id: int | None) -> None:
    taken = session.scalar(
        select(MessageTemplate.id).where(
            MessageTemplate.organisation_id == actor.organisation_id, MessageTemplate.name == name
        )
    )
    if taken is not None and taken != except_id:
        raise ChangeRefused("name", _("There is already a template with this name."))


def add_template(session: Session, actor: Actor, values: Mapping[str, Any], now: datetime) -> MessageTemplate:
    _refuse(check(values))
    cleaned = _clean(values)
    _check_name(session, actor, cleaned["name"], None)
    row = MessageTemplate(organisation_id=actor.organisation_id, **cleaned)
    session.add(row)
    session.flush()
    record(session, actor, "template.create", row, created(snapshot(row, FIELDS)), at=now)
    return row


def update_template(
    session: Session, actor: Actor, row: MessageTemplate, values: Mapping[str, Any], now: datetime
) -> dict[str, list[Any]]:
    _refuse(check(values))
    cleaned = _clean(values)
    _check_name(session, actor, cleaned["name"], row.id)
    before = snapshot(row, FIELDS)
    for name, value in cleaned.items():
        setattr(row, name, value)
    session.flush()
    changes = diff(before, snapshot(row, FIELDS))
    if changes:
        record(session, actor, "template.update", row, changes, at=now)
    return changes


def delete_template(session: Session, actor: Actor, row: MessageTemplate, now: datetime) -> None:
    """Messages already sent keep their text; they only lose the link to the template."""
    record(
        session,
        actor,
        "template.delete",
        ("message_templates", row.id),
        deleted(snapshot(row, FIELDS)),
        at=now,
    )
    session.delete(row)
    session.flush()
