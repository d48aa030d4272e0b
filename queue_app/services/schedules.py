"""Opening hours of a queue: load its rows into `domain.hours` values and answer from them.

Each function takes the caller's session (the caller owns the transaction) and the time `now`, read
once per use case. A queue without a schedule is open around the clock; temporary closures still
close it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session, selectinload

from ..domain import hours, ical, ical_import
from ..models import Closure, ClosureQueue, Organisation, Queue, ScheduleException
from ..models import Schedule as ScheduleRow


class ScheduleError(ValueError):
    """A schedule use case was refused; the message says why."""


class UnknownQueue(ScheduleError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ClosureImport:
    created_ids: list[int]
    skipped_past: int  # events that had already ended at `now`
    skipped_duplicates: int  # a closure with the same start, end and reason already existed


def _closures_for(session: Session, queue: Queue, now: datetime) -> tuple[hours.Closure, ...]:
    linked = exists().where(ClosureQueue.closure_id == Closure.id, ClosureQueue.queue_id == queue.id)
    rows = session.scalars(
        select(Closure)
        .where(
            Closure.organisation_id == queue.organisation_id,
            or_(Closure.all_queues.is_(True), linked),
            or_(Closure.ends_at.is_(None), Closure.ends_at > now),
            or_(Closure.ended_early_at.is_(None), Closure.ended_early_at > now),
        )
        .order_by(Closure.starts_at, Closure.id)
    ).all()
    return tuple(
        hours.Closure(
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            message=row.message,
            reason=row.reason,
            ended_early_at=row.ended_early_at,
            closure_id=row.id,
        )
        for row in rows
    )


def _queue(session: Session, queue_id: int) -> Queue:
    queue = session.get(Queue, queue_id)
    if queue is None:
        raise UnknownQueue(f"no queue {queue_id}")
    return queue


def load_schedule(session: Session, queue_id: int, now: datetime) -> hours.Schedule:
    """The queue's opening hours as a domain value, with the closures that still matter at `now`."""
    queue = _queue(session, queue_id)
    organisation = session.get(Organisation, queue.organisation_id)
    assert organisation is not None
    closures = _closures_for(session, queue, now)
    if queue.schedule_id is None:
        return hours.Schedule(
            timezone=organisation.timezone,
            rules=hours.ALWAYS_OPEN.rules,
            holidays=hours.ALWAYS_OPEN.holidays,
            closures=closures,
        )
    row = session.scalars(
        select(ScheduleRow)
        .where(ScheduleRow.id == queue.schedule_id)
        .options(selectinload(ScheduleRow.rules), selectinload(ScheduleRow.holiday_choices))
    ).one()
    timezone = row.timezone or organisation.timezone
    tz = hours.zone(timezone)
    # Exceptions that are over cannot change anything from now on.
    exceptions = session.scalars(
        select(ScheduleException)
        .where(
            ScheduleException.schedule_id == row.id,
            ScheduleException.day >= now.astimezone(tz).date() - timedelta(days=1),
        )
        .order_by(ScheduleException.day)
    ).all()
    try:
        return hours.Schedule(
            timezone=timezone,
            rules=tuple(
                hours.Rule(
                    effect="open" if rule.effect == "open" else "closed",
                    rrule=rule.rrule,
                    starts=rule.starts,
                    ends=rule.ends,
                    valid_from=rule.valid_from,
                    valid_until=rule.valid_until,
                    label=rule.label,
                )
                for rule in row.rules
            ),
            holidays=hours.HolidayPolicy(
                country=organisation.holiday_country or None,
                categories=tuple(row.holiday_categories or ()),
                overrides=tuple(sorted((c.holiday_name, c.closed) for c in row.holiday_choices)),
            ),
            exceptions=tuple(
                hours.DayException(day=e.day, opens=e.opens, closes=e.closes, label=e.label)
                for e in exceptions
            ),
            closures=closures,
        )
    except hours.HoursError as error:
        raise ScheduleError(f"schedule {row.name!r}: {error}") from error


def queue_hours_status(session: Session, queue_id: int, now: datetime) -> hours.HoursStatus:
    """Open or closed now, why, and until when: what the voice webhook asks on every call."""
    return hours.status(load_schedule(session, queue_id, now), now)


def next_transitions(
    session: Session, queue_id: int, now: datetime, count: int = 10
) -> list[hours.Transition]:
    """The preview: the queue's next `count` changes after `now` and why."""
    return hours.next_transitions(load_schedule(session, queue_id, now), now, count)


def queue_ics(session: Session, queue_id: int, now: datetime) -> str:
    """The queue's opening hours and closures as an iCalendar feed."""
    queue = _queue(session, queue_id)
    organisation = session.get(Organisation, queue.organisation_id)
    assert organisation is not None
    schedule = load_schedule(session, queue_id, now)
    return ical.export_schedule(
        schedule,
        now,
        calendar_name=queue.name,
        uid_domain=f"queue-{queue.id}.{organisation.slug}.koe",
        language="en" if organisation.locale == "en" else "sv",
    )


def import_closures_ics(
    session: Session,
    organisation_id: int,
    text: str,
    queue_ids: Sequence[int] | None,
    now: datetime,
) -> ClosureImport:
    """One closure per VEVENT, for the given queues (None: all the organisation's queues).

    All or nothing: a malformed file raises `ical.IcsError` (naming the line) and a queue of another
    organisation raises `ScheduleError`, before any row is added. Events that already ended are
    skipped, and so is an event whose closure (same start, end and reason) already exists.
    """
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise ScheduleError(f"no organisation {organisation_id}")
    imported = ical_import.parse_closures(text, organisation.timezone)
    wanted = sorted(set(queue_ids)) if queue_ids is not None else None
    if wanted is not None:
        if not wanted:
            raise ScheduleError("choose at least one queue, or all queues")
        found = set(
            session.scalars(
                select(Queue.id).where(Queue.organisation_id == organisation_id, Queue.id.in_(wanted))
            )
        )
        missing = [q for q in wanted if q not in found]
        if missing:
            raise ScheduleError(f"no such queue in this organisation: {', '.join(map(str, missing))}")
    existing = {
        (c.starts_at, c.ends_at, c.reason)
        for c in session.scalars(
            select(Closure).where(
                Closure.organisation_id == organisation_id,
                or_(Closure.ends_at.is_(None), Closure.ends_at > now),
            )
        )
    }
    created: list[Closure] = []
    skipped_past = skipped_duplicates = 0
    for event in imported:
        if event.ends_at <= now:
            skipped_past += 1
            continue
        key = (event.starts_at, event.ends_at, event.reason)
        if key in existing:
            skipped_duplicates += 1
            continue
        existing.add(key)
        closure = Closure(
            organisation_id=organisation_id,
            all_queues=wanted is None,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            reason=event.reason,
            message=event.message,
        )
        session.add(closure)
        created.append(closure)
    session.flush()
    for closure in created:
        for queue_id in wanted or ():
            session.add(ClosureQueue(closure_id=closure.id, queue_id=queue_id))
    session.flush()
    return ClosureImport([c.id for c in created], skipped_past, skipped_duplicates)
