"""The audit log: who changed what, when, with each field's value before and after.

Every admin change calls `record` in the same transaction as the change itself, so a change that is
rolled back leaves no entry, and an entry never describes a change that did not happen. A change the
rules refuse raises `ChangeRefused`, naming the form field to show the message on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import Enum
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import utcnow
from ..models import AuditEntry, User


class Actor(Protocol):
    id: int
    organisation_id: int


class ChangeRefused(ValueError):
    """An admin change the rules do not allow; `field` is the form field the message belongs to."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def plain(value: Any) -> Any:
    """A JSON-safe form of a column value (times and dates as ISO text)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def snapshot(row: Any, fields: Iterable[str]) -> dict[str, Any]:
    return {name: plain(getattr(row, name)) for name in fields}


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """`{field: [before, after]}` for every field whose value changed."""
    changes: dict[str, list[Any]] = {}
    for name in sorted(set(before) | set(after)):
        old, new = plain(before.get(name)), plain(after.get(name))
        if old != new:
            changes[name] = [old, new]
    return changes


def created(values: Mapping[str, Any]) -> dict[str, list[Any]]:
    return {name: [None, plain(value)] for name, value in sorted(values.items()) if value is not None}


def deleted(values: Mapping[str, Any]) -> dict[str, list[Any]]:
    return {name: [plain(value), None] for name, value in sorted(values.items()) if value is not None}


def _target(target: Any) -> tuple[str, str | None]:
    if isinstance(target, tuple):
        kind, ident = target
        return str(kind), None if ident is None else str(ident)
    table = getattr(target, "__tablename__", type(target).__name__)
    ident = getattr(target, "id", None)
    return str(table), None if ident is None else str(ident)


def record(
    session: Session,
    user: Actor,
    action: str,
    target: Any,
    changes: Mapping[str, Any],
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """Write one entry: `target` is a row (its table and id) or a `(type, id)` pair."""
    target_type, target_id = _target(target)
    entry = AuditEntry(
        organisation_id=user.organisation_id,
        user_id=user.id,
        at=at or utcnow(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        changes=plain(dict(changes)),
    )
    session.add(entry)
    return entry


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: datetime
    user_id: int | None
    user_name: str | None
    action: str
    target_type: str
    target_id: str | None
    changes: dict[str, Any]


def entries(
    session: Session,
    organisation_id: int,
    *,
    user_id: int | None = None,
    action: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
    limit: int = 200,
) -> list[Entry]:
    """The organisation's entries, newest first, filtered by user, action (or its prefix) and time."""
    statement = (
        select(AuditEntry, User.name)
        .outerjoin(User, User.id == AuditEntry.user_id)
        .where(AuditEntry.organisation_id == organisation_id)
    )
    if user_id is not None:
        statement = statement.where(AuditEntry.user_id == user_id)
    if action:
        statement = statement.where(
            (AuditEntry.action == action) | AuditEntry.action.startswith(action + ".", autoescape=True)
        )
    if since is not None:
        statement = statement.where(AuditEntry.at >= since)
    if before is not None:
        statement = statement.where(AuditEntry.at < before)
    rows = session.execute(statement.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
    return [
        Entry(e.id, e.at, e.user_id, name, e.action, e.target_type, e.target_id, dict(e.changes or {}))
        for e, name in rows
    ]


def actions(session: Session, organisation_id: int) -> list[str]:
    return list(
        session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.organisation_id == organisation_id)
            .distinct()
            .order_by(AuditEntry.action)
        )
    )
