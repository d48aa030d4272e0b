"""Closures read from an .ics file (RFC 5545), one VEVENT at a time.

`read_events` reads every component of the calendar on its own, so a preview can show each event's
closures or the reason it cannot be one: not a VEVENT, no DTSTART, an unknown time zone, no end, an
RRULE that never ends or that we do not expand. `parse_closures` is the all-or-nothing form: the first
problem raises `IcsError`.

Times: a `Z` value is UTC, a `TZID` value is read in that zone (Olson names, Outlook's Windows names,
or the VTIMEZONE's X-LIC-LOCATION), a floating value and an all-day DATE in the organisation's zone.
A repeating event (RRULE with COUNT or UNTIL, DAILY to YEARLY, at most `MAX_OCCURRENCES` times within
`MAX_SPAN`) becomes one closure per occurrence, at the same wall-clock times in its zone, so a weekly
08:00 meeting stays at 08:00 across a DST change; EXDATEs and occurrences moved by a RECURRENCE-ID
event are left out. Cancelled events and the opening hours of Kö's own export are skipped.
Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from . import hours
from .ical import Component, IcsError, Property, parse_ics, unescape_text

MAX_OCCURRENCES = 100
MAX_SPAN = timedelta(days=3653)  # ten years
SUPPORTED_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_UNSUPPORTED_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND", "DTSTART")
_SKIPPED_KINDS = frozenset({"open", "closed-rule", "holiday", "exception"})

# Outlook writes Windows zone names as TZID; these are the ones a Swedish customer meets.
WINDOWS_ZONES = {
    "W. Europe Standard Time": "Europe/Stockholm",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "Romance Standard Time": "Europe/Paris",
    "FLE Standard Time": "Europe/Helsinki",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "UTC": "UTC",
}


@dataclass(frozen=True, slots=True)
class ImportedClosure:
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    message: str | None
    uid: str | None
    line: int


@dataclass(frozen=True, slots=True)
class EventReading:
    """One component of the calendar: the closures it gives, or why it gives none."""

    line: int
    component: str
    summary: str | None
    closures: tuple[ImportedClosure, ...] = ()
    error: IcsError | None = None
    skipped: str | None = None  # "cancelled" or "opening_hours"
    repeats: bool = False


@dataclass(frozen=True, slots=True)
class _When:
    """A DTSTART/DTEND value: its wall-clock time in `tz` and whether it is a whole day."""

    wall: datetime
    tz: ZoneInfo
    is_date: bool

    @property
    def instant(self) -> datetime:
        return hours.local_to_utc(self.wall.date(), self.wall.time(), self.tz)


def _resolve_zone(prop: Property, calendar: Component, default: ZoneInfo) -> ZoneInfo:
    tzid = prop.params.get("TZID")
    if tzid is None:
        return default
    names = [tzid.lstrip("/"), WINDOWS_ZONES.get(tzid, "")]
    for component in calendar.components:
        tz_prop = component.first("TZID")
        if component.name == "VTIMEZONE" and tz_prop and tz_prop.value == tzid:
            location = component.first("X-LIC-LOCATION")
            if location:
                names.append(location.value)
    for name in names:
        if not name:
            continue
        try:
            return hours.zone(name)
        except hours.HoursError:
            continue
    raise IcsError(
        prop.line,
        f"{prop.name} has the unknown time zone TZID={tzid!r}",
        "unknown_zone",
        {"property": prop.name, "zone": tzid},
    )


def _bad_value(prop: Property, value: str, example: str) -> IcsError:
    return IcsError(
        prop.line,
        f"{prop.name} {value!r} is not a {example}",
        "bad_value",
        {"property": prop.name, "value": value[:40]},
    )


def _parse_value(prop: Property, value: str, calendar: Component, default: ZoneInfo) -> _When:
    """One date or date-time value of `prop` (DTSTART, DTEND, EXDATE, RECURRENCE-ID)."""
    value = value.strip()
    if prop.params.get("VALUE", "").upper() == "DATE" or re.fullmatch(r"\d{8}", value):
        try:
            day = datetime.strptime(value, "%Y%m%d")
        except ValueError as error:
            raise _bad_value(prop, value, "date like 20260619") from error
        return _When(day, _resolve_zone(prop, calendar, default), True)
    match = re.fullmatch(r"(\d{8}T\d{6})(Z?)", value)
    if not match:
        raise _bad_value(prop, value, "date-time like 20260619T080000Z")
    try:
        naive = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S")
    except ValueError as error:
        raise _bad_value(prop, value, "valid date-time") from error
    tz = ZoneInfo("UTC") if match.group(2) else _resolve_zone(prop, calendar, default)
    return _When(naive, tz, False)


def _when(prop: Property, calendar: Component, default: ZoneInfo) -> _When:
    return _parse_value(prop, prop.value, calendar, default)


_DURATION = re.compile(r"([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def _parse_duration(prop: Property) -> timedelta:
    match = _DURATION.fullmatch(prop.value.strip())
    if not match or prop.value.strip() in ("P", "PT", "+P", "-P"):
        raise IcsError(
            prop.line,
            f"DURATION {prop.value!r} is not like PT2H or P1D",
            "bad_value",
            {"property": "DURATION", "value": prop.value.strip()[:40]},
        )
    sign, weeks, days, hours_, minutes, seconds = match.groups()
    length = timedelta(
        weeks=int(weeks or 0),
        days=int(days or 0),
        hours=int(hours_ or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds or 0),
    )
    return -length if sign == "-" else length


def _wall_length(event: Component, start: _When, calendar: Component, default: ZoneInfo) -> timedelta:
    """How long each occurrence lasts, in wall-clock time of the start's zone."""
    end_prop = event.first("DTEND")
    duration_prop = event.first("DURATION")
    if end_prop is not None:
        end = _when(end_prop, calendar, default)
        wall_end = end.instant.astimezone(start.tz).replace(tzinfo=None)
        length, line = wall_end - start.wall, end_prop.line
    elif duration_prop is not None:
        length, line = _parse_duration(duration_prop), duration_prop.line
    elif start.is_date:
        length, line = timedelta(days=1), event.line
    else:
        message = "this VEVENT has no DTEND or DURATION, so the closure never ends"
        raise IcsError(event.line, message, "no_end")
    if length <= timedelta(0):
        raise IcsError(line, "the event ends before it starts", "ends_before_start")
    return length


def _unsupported(prop: Property, why: str, code: str = "unsupported_rrule", **params: str) -> IcsError:
    return IcsError(
        prop.line,
        f"a recurring event ({prop.name}) cannot be imported as closures: {why}",
        code,
        {"rule": prop.value.strip()[:80], "why": why, **params},
    )


def _rrule_parts(prop: Property) -> dict[str, str]:
    parts: dict[str, str] = {}
    for chunk in prop.value.strip().split(";"):
        key, sep, value = chunk.partition("=")
        key = key.strip().upper()
        if not sep or not value or key in parts:
            raise _unsupported(prop, f"{chunk!r} is not NAME=VALUE")
        parts[key] = value.strip().upper()
    if parts.get("FREQ") not in SUPPORTED_FREQUENCIES:
        why = f"FREQ must be one of {', '.join(SUPPORTED_FREQUENCIES)}"
        raise _unsupported(prop, why, "rrule_frequency", frequency=parts.get("FREQ", "")[:20])
    for key in _UNSUPPORTED_PARTS:
        if key in parts:
            raise _unsupported(prop, f"{key} is not supported", "rrule_part", part=key)
    if "COUNT" in parts and "UNTIL" in parts:
        raise _unsupported(prop, "COUNT and UNTIL exclude each other")
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise IcsError(
            prop.line,
            "a recurring event (RRULE) without COUNT or UNTIL repeats for ever; a closure must end",
            "endless_rrule",
        )
    return parts


def _until_wall(prop: Property, value: str, tz: ZoneInfo) -> datetime:
    """The RRULE's UNTIL as wall-clock time in the event's zone (a DATE: the end of that day)."""
    match = re.fullmatch(r"(\d{8})(?:T(\d{6})(Z?))?", value)
    try:
        if not match:
            raise ValueError(value)
        if match.group(2) is None:
            return datetime.strptime(match.group(1), "%Y%m%d").replace(hour=23, minute=59, second=59)
        naive = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError as error:
        raise _unsupported(prop, "UNTIL is not a date like 20261231T235959Z") from error
    if match.group(3):
        return naive.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
    return naive


def _expand(prop: Property, start: _When) -> list[datetime]:
    """The wall-clock starts of an RRULE, from DTSTART, within `MAX_SPAN`."""
    parts = _rrule_parts(prop)
    count = int(parts.pop("COUNT")) if parts.get("COUNT", "").isdigit() else None
    if "COUNT" in parts:
        raise _unsupported(prop, "COUNT must be a whole number")
    limit = start.wall + MAX_SPAN
    if "UNTIL" in parts:
        until = _until_wall(prop, parts.pop("UNTIL"), start.tz)
        if until > limit:
            raise _unsupported(prop, "it goes on for more than ten years", "rrule_too_long")
        limit = until
    # dateutil counts COUNT from DTSTART too; bounding by UNTIL keeps an impossible rule from
    # iterating to the year 9999.
    text = ";".join(f"{k}={v}" for k, v in parts.items()) + f";UNTIL={limit:%Y%m%dT%H%M%S}"
    wanted = min(count, MAX_OCCURRENCES + 1) if count is not None else MAX_OCCURRENCES + 1
    try:
        walls = list(islice(rrulestr(text, dtstart=start.wall), wanted))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
        raise _unsupported(prop, str(error)) from error
    if len(walls) > MAX_OCCURRENCES:
        raise IcsError(
            prop.line,
            f"the event repeats more than {MAX_OCCURRENCES} times; import fewer at a time",
            "too_many",
            {"limit": str(MAX_OCCURRENCES)},
        )
    if count is not None and len(walls) < count:
        raise _unsupported(prop, "it goes on for more than ten years", "rrule_too_long")
    return walls


def _excluded(event: Component, calendar: Component, default: ZoneInfo) -> set[datetime | date]:
    """EXDATE values: UTC instants, or local dates for all-day values."""
    found: set[datetime | date] = set()
    for prop in event.all("EXDATE"):
        for value in prop.value.split(","):
            when = _parse_value(prop, value, calendar, default)
            found.add(when.wall.date() if when.is_date else when.instant)
    return found


def _moved(calendar: Component, default: ZoneInfo) -> dict[str, set[datetime]]:
    """UID -> the occurrences that a RECURRENCE-ID event of the same UID replaces."""
    moved: dict[str, set[datetime]] = {}
    for event in calendar.components:
        uid, recurrence = event.first("UID"), event.first("RECURRENCE-ID")
        if event.name != "VEVENT" or uid is None or recurrence is None:
            continue
        try:
            moved.setdefault(uid.value.strip(), set()).add(_when(recurrence, calendar, default).instant)
        except IcsError:
            continue  # the event's own reading reports it
    return moved


def _occurrences(
    event: Component, start: _When, calendar: Component, default: ZoneInfo, moved: set[datetime]
) -> list[datetime]:
    rdate = event.first("RDATE")
    if rdate is not None:
        raise _unsupported(rdate, "RDATE is not supported", "rrule_part", part="RDATE")
    rules = event.all("RRULE")
    if not rules or event.first("RECURRENCE-ID") is not None:
        return [start.wall]
    if len(rules) > 1:
        raise _unsupported(rules[1], "only one RRULE per event")
    excluded = _excluded(event, calendar, default) | moved
    kept = []
    for wall in _expand(rules[0], start):
        instant = hours.local_to_utc(wall.date(), wall.time(), start.tz)
        if instant not in excluded and wall.date() not in excluded:
            kept.append(wall)
    return kept


def _text(event: Component, name: str) -> str | None:
    prop = event.first(name)
    value = unescape_text(prop.value).strip() if prop else ""
    return value or None


def _closures(
    event: Component, calendar: Component, default: ZoneInfo, moved: dict[str, set[datetime]]
) -> tuple[ImportedClosure, ...]:
    start_prop = event.first("DTSTART")
    if start_prop is None:
        raise IcsError(event.line, "this VEVENT has no DTSTART", "no_start")
    start = _when(start_prop, calendar, default)
    length = _wall_length(event, start, calendar, default)
    uid = _text(event, "UID")
    reason = _text(event, "SUMMARY")
    message = _text(event, "DESCRIPTION") or reason
    found = []
    for wall in _occurrences(event, start, calendar, default, moved.get(uid or "", set())):
        end = wall + length
        found.append(
            ImportedClosure(
                starts_at=hours.local_to_utc(wall.date(), wall.time(), start.tz),
                ends_at=hours.local_to_utc(end.date(), end.time(), start.tz),
                reason=reason[:200] if reason else None,
                message=message,
                uid=uid,
                line=event.line,
            )
        )
    return tuple(found)


def _skip_reason(event: Component) -> str | None:
    status = event.first("STATUS")
    kind = event.first("X-KOE-KIND")
    if status and status.value.strip().upper() == "CANCELLED":
        return "cancelled"
    if kind and kind.value.strip().lower() in _SKIPPED_KINDS:
        return "opening_hours"
    return None


def _read(
    component: Component, calendar: Component, default: ZoneInfo, moved: dict[str, set[datetime]]
) -> EventReading:
    summary = _text(component, "SUMMARY")
    if component.name != "VEVENT":
        error = IcsError(
            component.line,
            f"BEGIN:{component.name} is not an event (VEVENT)",
            "not_an_event",
            {"component": component.name},
        )
        return EventReading(component.line, component.name, summary, error=error)
    skipped = _skip_reason(component)
    if skipped is not None:
        return EventReading(component.line, component.name, summary, skipped=skipped)
    try:
        closures = _closures(component, calendar, default, moved)
    except IcsError as error:
        return EventReading(component.line, component.name, summary, error=error)
    repeats = component.first("RRULE") is not None and component.first("RECURRENCE-ID") is None
    return EventReading(component.line, component.name, summary, closures, repeats=repeats)


def read_events(text: str, default_timezone: str = hours.DEFAULT_TIMEZONE) -> list[EventReading]:
    """Every component of the calendar but its VTIMEZONEs, read on its own, in file order.

    A file that is not iCalendar at all (no VCALENDAR, a broken line, an unclosed component) raises
    `IcsError` naming the line.
    """
    calendar = parse_ics(text)
    default = hours.zone(default_timezone)
    moved = _moved(calendar, default)
    return [_read(c, calendar, default, moved) for c in calendar.components if c.name != "VTIMEZONE"]


def parse_closures(text: str, default_timezone: str = hours.DEFAULT_TIMEZONE) -> list[ImportedClosure]:
    """Every VEVENT of an .ics as closures; all or nothing: the first problem raises `IcsError`."""
    closures: list[ImportedClosure] = []
    for reading in read_events(text, default_timezone):
        if reading.error is not None and reading.component == "VEVENT":
            raise reading.error
        closures.extend(reading.closures)
    return closures
