"""Licences: one per user who may log in to at least one queue, however many queues.

A user holds a licence while they are active, on a plan that includes taking calls, and a member
with "may log in" of at least one queue. `sync` compares that with the last `LicenceEvent` of each
user and writes an event for every change, so the change log is what invoicing reads. Every admin
change that can move a licence (memberships, plan, deactivation, deleting a queue) calls it in the
same transaction.

"This month's licensed users" are those who held a licence at any moment of the calendar month in
the organisation's time zone: licensed when it began, or licensed since.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import PLANS_THAT_MAY_LOG_IN, LicenceEvent, Organisation, QueueMembership, User


def licensed_user_ids(session: Session, organisation_id: int) -> set[int]:
    return set(
        session.scalars(
            select(User.id)
            .join(QueueMembership, QueueMembership.user_id == User.id)
            .where(
                User.organisation_id == organisation_id,
                User.is_active.is_(True),
                User.plan.in_([p.value for p in PLANS_THAT_MAY_LOG_IN]),
                QueueMembership.may_log_in.is_(True),
            )
            .distinct()
        )
    )


def _last_states(session: Session, organisation_id: int, before: datetime | None = None) -> dict[int, bool]:
    """Each user's state after their last event (before `before`, if given)."""
    latest = select(LicenceEvent.user_id, func.max(LicenceEvent.id).label("last_id")).where(
        LicenceEvent.organisation_id == organisation_id
    )
    if before is not None:
        latest = latest.where(LicenceEvent.at < before)
    last = latest.group_by(LicenceEvent.user_id).subquery()
    rows = session.execute(
        select(LicenceEvent.user_id, LicenceEvent.licensed).join(last, last.c.last_id == LicenceEvent.id)
    )
    return {user_id: licensed for user_id, licensed in rows}


def sync(
    session: Session, organisation_id: int, changed_by_id: int | None, now: datetime
) -> list[LicenceEvent]:
    """Write a `LicenceEvent` for every user whose licence changed since their last event."""
    session.flush()
    current = licensed_user_ids(session, organisation_id)
    recorded = _last_states(session, organisation_id)
    events = []
    for user_id in sorted(current | {u for u, licensed in recorded.items() if licensed}):
        licensed = user_id in current
        if recorded.get(user_id, False) != licensed:
            event = LicenceEvent(
                organisation_id=organisation_id,
                user_id=user_id,
                at=now,
                licensed=licensed,
                changed_by_id=changed_by_id,
            )
            session.add(event)
            events.append(event)
    session.flush()
    return events


def month_start(now: datetime, timezone: str) -> datetime:
    local = now.astimezone(ZoneInfo(timezone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class LicensedUser:
    user_id: int
    name: str
    email: str
    plan: str
    licensed_now: bool
    licensed_since: datetime | None  # the last time they became licensed


@dataclass(frozen=True, slots=True)
class Change:
    at: datetime
    user_id: int
    user_name: str
    licensed: bool
    changed_by: str | None


def this_month(session: Session, organisation_id: int, now: datetime) -> list[LicensedUser]:
    """Everyone who held a licence at some moment of this calendar month, by name."""
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    start = month_start(now, organisation.timezone)
    at_start = {u for u, licensed in _last_states(session, organisation_id, before=start).items() if licensed}
    became = set(
        session.scalars(
            select(LicenceEvent.user_id).where(
                LicenceEvent.organisation_id == organisation_id,
                LicenceEvent.licensed.is_(True),
                LicenceEvent.at >= start,
                LicenceEvent.at <= now,
            )
        )
    )
    current = licensed_user_ids(session, organisation_id)
    ids = at_start | became | current
    if not ids:
        return []
    since = dict(
        session.execute(
            select(LicenceEvent.user_id, func.max(LicenceEvent.at))
            .where(LicenceEvent.user_id.in_(ids), LicenceEvent.licensed.is_(True))
            .group_by(LicenceEvent.user_id)
        ).all()
    )
    users = session.scalars(select(User).where(User.id.in_(ids)).order_by(User.name, User.id))
    return [LicensedUser(u.id, u.name, u.email, u.plan, u.id in current, since.get(u.id)) for u in users]


def changes(session: Session, organisation_id: int, limit: int = 500) -> list[Change]:
    """The change log, newest first: who became (or stopped being) licensed, when, and by whom."""
    changer = select(User.id, User.name).subquery()
    rows = session.execute(
        select(LicenceEvent, User.name, changer.c.name)
        .join(User, User.id == LicenceEvent.user_id)
        .outerjoin(changer, changer.c.id == LicenceEvent.changed_by_id)
        .where(LicenceEvent.organisation_id == organisation_id)
        .order_by(LicenceEvent.at.desc(), LicenceEvent.id.desc())
        .limit(limit)
    )
    return [Change(e.at, e.user_id, name, e.licensed, by) for e, name, by in rows]


CSV_HEADER = ("user_id", "name", "email", "plan", "licensed_now", "licensed_since")


def month_csv(rows: list[LicensedUser], timezone: str) -> str:
    """This month's licensed users for invoicing: one row per user, times in the organisation's zone."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    zone = ZoneInfo(timezone)
    for row in rows:
        since = (
            row.licensed_since.astimezone(zone).isoformat(timespec="seconds") if row.licensed_since else ""
        )
        writer.writerow(
            (row.user_id, _safe(row.name), row.email, row.plan, "yes" if row.licensed_now else "no", since)
        )
    return out.getvalue()


def _safe(value: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula; quote it as text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
