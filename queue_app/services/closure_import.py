"""Temporary closures imported from an .ics file: a preview of every event, then all or nothing.

The preview stores nothing: it lists, per event of the file, the closures it would create or why it
cannot (the domain's per-event problems, said in the admin's language), and which are skipped: events
already over, already imported (a current closure with the same start, end and reason), cancelled, or
Kö's own opening hours. The import creates the closures through `admin_schedules.create_closure`
(each one audited) plus one `closure.import` entry for the file, and refuses the whole file while any
event has a problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..domain import ical_import
from ..domain.ical import IcsError
from ..models import Closure, Organisation
from . import admin_schedules
from .audit import Actor, ChangeRefused, record

MAX_ICS_BYTES = 256 * 1024  # the confirm form carries the text; Flask keeps form fields under 500 KB

# The domain's problem codes as the page says them; `%(...)s` are the problem's params.
PROBLEMS = {
    "not_an_event": _l("%(component)s is not an event (VEVENT); only events can be closures."),
    "no_start": _l("The event has no start (DTSTART)."),
    "no_end": _l("The event has no end (DTEND or DURATION), so the closure would never end."),
    "ends_before_start": _l("The event ends before it starts."),
    "bad_value": _l("%(property)s has a value that is not a date or time: %(value)s"),
    "unknown_zone": _l("%(property)s has an unknown time zone: %(zone)s"),
    "endless_rrule": _l(
        "The event repeats for ever (RRULE without COUNT or UNTIL); a closure must end. "
        "Use a rule in the opening hours for what repeats for ever."
    ),
    "unsupported_rrule": _l("The event's repetition (RRULE) cannot be read: %(why)s"),
    "rrule_frequency": _l(
        "Kö imports daily, weekly, monthly and yearly repetitions, not FREQ=%(frequency)s."
    ),
    "rrule_part": _l("Kö cannot import a repetition with %(part)s; make those events of their own."),
    "rrule_too_long": _l("The event repeats for more than ten years; a closure must end sooner."),
    "too_many": _l("The event repeats more than %(limit)s times; import fewer at a time."),
}


@dataclass(frozen=True, slots=True)
class PreviewRow:
    line: int
    summary: str | None
    closure: ical_import.ImportedClosure | None
    action: str  # "create", "skip" or "error"
    note: str

    @property
    def starts_at(self) -> datetime | None:
        return self.closure.starts_at if self.closure else None

    @property
    def ends_at(self) -> datetime | None:
        return self.closure.ends_at if self.closure else None


@dataclass(frozen=True, slots=True)
class Preview:
    rows: tuple[PreviewRow, ...]

    @property
    def errors(self) -> list[PreviewRow]:
        return [r for r in self.rows if r.action == "error"]

    @property
    def creates(self) -> list[PreviewRow]:
        return [r for r in self.rows if r.action == "create"]

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.creates)

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)


def problem_text(error: IcsError) -> str:
    template = PROBLEMS.get(error.code)
    if template is None:
        return error.message
    try:
        return str(template) % error.params
    except (KeyError, TypeError, ValueError):
        return error.message


def decode(data: bytes) -> str:
    """The file's text; refused (on the `file` field) when too large or not text."""
    if len(data) > MAX_ICS_BYTES:
        raise ChangeRefused("file", _("The file is too large; the limit is 256 KB."))
    if not data.strip():
        raise ChangeRefused("file", _("The file is empty."))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ChangeRefused("file", _("This is not an iCalendar (.ics) file: it is not text.")) from error


def _existing(session: Session, organisation_id: int, now: datetime) -> set[tuple[object, ...]]:
    return {
        (c.starts_at, c.ends_at, c.reason)
        for c in session.scalars(
            select(Closure).where(
                Closure.organisation_id == organisation_id,
                or_(Closure.ends_at.is_(None), Closure.ends_at > now),
                Closure.ended_early_at.is_(None),
            )
        )
    }


def _rows(
    reading: ical_import.EventReading, seen: set[tuple[object, ...]], now: datetime
) -> list[PreviewRow]:
    if reading.error is not None:
        return [PreviewRow(reading.line, reading.summary, None, "error", problem_text(reading.error))]
    if reading.skipped is not None:
        note = (
            _("Cancelled in the calendar.")
            if reading.skipped == "cancelled"
            else _("Opening hours, not a closure.")
        )
        return [PreviewRow(reading.line, reading.summary, None, "skip", note)]
    rows = []
    for closure in reading.closures:
        key = (closure.starts_at, closure.ends_at, closure.reason)
        if closure.ends_at <= now:
            action, note = "skip", _("Already over.")
        elif key in seen:
            action, note = "skip", _("Already imported.")
        else:
            seen.add(key)
            action = "create"
            note = _("Starts at once: it has begun.") if closure.starts_at <= now else ""
        rows.append(PreviewRow(reading.line, reading.summary, closure, action, note))
    if not rows:
        rows.append(PreviewRow(reading.line, reading.summary, None, "skip", _("No occurrences left.")))
    return rows


def preview(session: Session, organisation_id: int, data: bytes, now: datetime) -> Preview:
    """What importing `data` would do, event by event; stores nothing.

    A file that cannot be read at all raises `ChangeRefused` on the `file` field.
    """
    text = decode(data)
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    try:
        readings = ical_import.read_events(text, organisation.timezone)
    except IcsError as error:
        raise ChangeRefused(
            "file",
            _(
                "This is not an iCalendar (.ics) file we can read: line %(line)s: %(detail)s",
                line=error.line,
                detail=error.message,
            ),
        ) from error
    if not readings:
        raise ChangeRefused("file", _("The calendar has no events."))
    seen = _existing(session, organisation_id, now)
    rows: list[PreviewRow] = []
    for reading in readings:
        rows.extend(_rows(reading, seen, now))
    return Preview(tuple(rows))


def apply_import(
    session: Session,
    actor: Actor,
    data: bytes,
    *,
    queue_ids: Sequence[int] | None,
    filename: str | None,
    now: datetime,
) -> list[Closure]:
    """Create every closure the preview lists, or none: refused while any event has a problem."""
    checked = preview(session, actor.organisation_id, data, now)
    if checked.errors:
        raise ChangeRefused(None, _("Nothing was imported: correct the events with problems first."))
    if not checked.creates:
        raise ChangeRefused(None, _("Nothing to import: every event is skipped."))
    created = []
    for row in checked.creates:
        closure = row.closure
        assert closure is not None
        created.append(
            admin_schedules.create_closure(
                session,
                actor,
                queue_ids=queue_ids,
                starts_at=closure.starts_at,
                ends_at=closure.ends_at,
                reason=closure.reason,
                message=closure.message,
                now=now,
            )
        )
    changes = {
        "file": [None, filename],
        "closures": [None, [c.id for c in created]],
        "skipped": [None, checked.count("skip")],
    }
    record(session, actor, "closure.import", ("closure", None), changes, at=now)
    return created
