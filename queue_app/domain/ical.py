"""iCalendar (RFC 5545): a schedule's opening hours and closures out, closures in.

Written by hand rather than with the `icalendar` package: we emit a small, fixed subset (VCALENDAR,
VTIMEZONE, VEVENT with DTSTART/DTEND, RRULE, EXDATE, SUMMARY, DESCRIPTION, CATEGORIES) and read back
only what a closure needs, and doing it here keeps the exact rules visible and tested (CRLF, folding
at 75 octets without splitting a UTF-8 character, TEXT escaping of backslash, semicolon, comma and
newline) without another dependency. Pure: the time is an argument, no I/O.

The export, for the window [local midnight of `now`, `now` + horizon):
- each `open` rule is one recurring VEVENT (`X-KOE-KIND:open`) whose DTSTART (with TZID) is its first
  occurrence in the window and whose RRULE is the rule's (plus UNTIL from `valid_until`);
  occurrences that a holiday, an exception, a closed rule or a closure changes are removed with
  EXDATE and what is really open of them is added as single events in UTC, so within the window the
  open events are exactly the schedule's open time; beyond it the calendar shows the plain rules;
- `closed` rules are recurring VEVENTs (`X-KOE-KIND:closed-rule`), closing holidays and closed days
  all-day VEVENTs (`holiday`, `exception`), closures VEVENTs in UTC (`closure`);
- one VTIMEZONE, built from `zoneinfo`'s transitions over the window, because RFC 5545 requires one
  for every TZID used.

Reading: `parse_ics` turns the text into a tree of components, or raises `IcsError` naming the line;
`ical_import` reads closures from that tree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from . import hours

CRLF = "\r\n"
MAX_OCTETS = 75
EXPORT_HORIZON = timedelta(days=400)
PRODID = "-//Koe//Opening hours//EN"

_TEXTS = {
    "sv": {"open": "Öppet", "closed": "Stängt"},
    "en": {"open": "Open", "closed": "Closed"},
}


class IcsError(ValueError):
    """The .ics text cannot be read; `line` is the 1-based physical line where the problem is.

    `code` names the kind of problem and `params` its values, so a page can say it in its own
    language; the English message is for logs and the command line.
    """

    def __init__(
        self, line: int, message: str, code: str = "malformed", params: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message
        self.code = code
        self.params = params or {}


# --- Writing ----------------------------------------------------------------------------------------


def escape_text(value: str) -> str:
    """RFC 5545 3.3.11: backslash, semicolon, comma and newlines are escaped in TEXT values."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def fold(line: str) -> str:
    """RFC 5545 3.1: lines of at most 75 octets, continued after CRLF + one space; never inside a
    UTF-8 sequence."""
    pieces: list[str] = []
    current = ""
    size = 0
    limit = MAX_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            pieces.append(current)
            current, size, limit = " ", 1, MAX_OCTETS
        current += char
        size += width
    pieces.append(current)
    return CRLF.join(pieces)


def _utc_stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _local_stamp(day: date, wall: time) -> str:
    return datetime.combine(day, wall).strftime("%Y%m%dT%H%M%S")


def _uid(kind: str, uid_domain: str, *parts: object) -> str:
    digest = hashlib.sha1(repr(parts).encode("utf-8")).hexdigest()[:16]
    return f"{kind}-{digest}@{uid_domain}"


def _offset_text(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    sign = "+" if seconds >= 0 else "-"
    seconds = abs(seconds)
    text = f"{sign}{seconds // 3600:02d}{seconds % 3600 // 60:02d}"
    return text + (f"{seconds % 60:02d}" if seconds % 60 else "")


def _zone_transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The UTC instants in (start, end] where the zone's offset changes (to the second)."""
    found: list[datetime] = []
    step = timedelta(hours=6)
    at = start
    while at < end:
        following = min(at + step, end)
        if at.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            low, high = at, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    break
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        at = following
    return found


def vtimezone_lines(name: str, start: datetime, end: datetime) -> list[str]:
    """A VTIMEZONE whose observances cover [start, end]; each offset change is its own observance.

    An observance's DTSTART is the local time of the change in the offset in force before it
    (02:00 for the spring change in Stockholm, 03:00 for the autumn one), as RFC 5545 3.6.5 says.
    """
    tz = hours.zone(name)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{name}"]

    def observance(
        local_start: datetime, before: timedelta, after: timedelta, daylight: bool, abbr: str | None
    ) -> None:
        kind = "DAYLIGHT" if daylight else "STANDARD"
        lines.append(f"BEGIN:{kind}")
        lines.append(f"DTSTART:{local_start.strftime('%Y%m%dT%H%M%S')}")
        lines.append(f"TZOFFSETFROM:{_offset_text(before)}")
        lines.append(f"TZOFFSETTO:{_offset_text(after)}")
        if abbr:
            lines.append(f"TZNAME:{escape_text(abbr)}")
        lines.append(f"END:{kind}")

    first = start.astimezone(tz).replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    offset = first.utcoffset() or timedelta(0)
    observance(first.replace(tzinfo=None), offset, offset, bool(first.dst()), first.tzname())
    for instant in _zone_transitions(tz, first.astimezone(UTC), end.astimezone(UTC)):
        before = (instant - timedelta(seconds=1)).astimezone(tz).utcoffset() or timedelta(0)
        local = instant.astimezone(tz)
        after = local.utcoffset() or timedelta(0)
        wall_before = (instant + before).replace(tzinfo=None)
        observance(wall_before, before, after, bool(local.dst()), local.tzname())
    lines.append("END:VTIMEZONE")
    return lines


def export_rrule(rule: hours.Rule, tz: ZoneInfo) -> str:
    """The rule's RRULE for a VEVENT whose DTSTART has a TZID: UNTIL in UTC, as RFC 5545 requires."""
    spec = hours.parse_rrule(rule.rrule)
    parts = [p for p in spec.text.split(";") if not p.startswith("UNTIL=")]
    untils = [d for d in (spec.until, rule.valid_until) if d is not None]
    if untils and not spec.has_count:
        last = min(untils)
        until = hours.local_to_utc(last, rule.starts, tz)
        parts.append(f"UNTIL={_utc_stamp(until)}")
    return ";".join(parts)


def _contains(intervals: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(a <= start and end <= b for a, b in intervals)


def _subtract(
    intervals: list[tuple[datetime, datetime]], holes: list[tuple[datetime, datetime]]
) -> Iterator[tuple[datetime, datetime]]:
    holes = sorted(holes)
    for a, b in intervals:
        cursor = a
        for h0, h1 in holes:
            if h1 <= cursor or h0 >= b:
                continue
            if h0 > cursor:
                yield (cursor, h0)
            cursor = max(cursor, h1)
            if cursor >= b:
                break
        if cursor < b:
            yield (cursor, b)


def export_schedule(
    schedule: hours.Schedule,
    now: datetime,
    *,
    calendar_name: str,
    uid_domain: str = "koe",
    language: str = "sv",
    horizon: timedelta = EXPORT_HORIZON,
) -> str:
    """The schedule's opening hours and closures as an iCalendar text (CRLF, folded)."""
    texts = _TEXTS.get(language, _TEXTS["en"])
    tz = hours.zone(schedule.timezone)
    now = now.astimezone(UTC)
    first_day = now.astimezone(tz).date()
    window_start = hours.local_to_utc(first_day, time(0), tz)
    window_end = now + horizon
    last_day = window_end.astimezone(tz).date()
    stamp = _utc_stamp(now)
    open_now = hours.open_intervals(schedule, window_start, window_end)
    tzid = f"TZID={schedule.timezone}"

    events: list[list[str]] = []
    kept: list[tuple[datetime, datetime]] = []

    for position, rule in enumerate(schedule.rules):
        days = hours.rule_occurrences(rule, first_day, last_day)
        if not days:
            continue
        kind = "open" if rule.effect == "open" else "closed-rule"
        word = texts["open"] if rule.effect == "open" else texts["closed"]
        summary = f"{word}: {rule.label}" if rule.label else word
        end_day = days[0] if rule.ends > rule.starts else days[0] + timedelta(days=1)
        lines = [
            "BEGIN:VEVENT",
            f"UID:{_uid(kind, uid_domain, schedule.timezone, position, rule)}",
            f"DTSTAMP:{stamp}",
            f"DTSTART;{tzid}:{_local_stamp(days[0], rule.starts)}",
            f"DTEND;{tzid}:{_local_stamp(end_day, rule.ends)}",
            f"RRULE:{export_rrule(rule, tz)}",
        ]
        if rule.effect == "open":
            excluded: list[str] = []
            for day in days:
                window = hours.rule_window(rule, day, tz)
                if window is None:
                    excluded.append(_local_stamp(day, rule.starts))
                    continue
                start, end = window[0], min(window[1], window_end)
                if start >= end or _contains(open_now, start, end):
                    kept.append((start, end))
                else:
                    excluded.append(_local_stamp(day, rule.starts))
            if excluded:
                lines.append(f"EXDATE;{tzid}:{','.join(excluded)}")
        lines += [
            f"SUMMARY:{escape_text(summary)}",
            f"CATEGORIES:{'OPEN' if rule.effect == 'open' else 'CLOSED'}",
            "TRANSP:TRANSPARENT",
            f"X-KOE-KIND:{kind}",
            "END:VEVENT",
        ]
        events.append(lines)

    # What is open but not covered by a kept occurrence: exception days, shortened occurrences.
    for start, end in _subtract(open_now, kept):
        state = hours.status(schedule, start)
        summary = f"{texts['open']}: {state.label}" if state.label else texts["open"]
        events.append(
            [
                "BEGIN:VEVENT",
                f"UID:{_uid('open', uid_domain, schedule.timezone, start, end)}",
                f"DTSTAMP:{stamp}",
                f"DTSTART:{_utc_stamp(start)}",
                f"DTEND:{_utc_stamp(end)}",
                f"SUMMARY:{escape_text(summary)}",
                "CATEGORIES:OPEN",
                "TRANSP:TRANSPARENT",
                "X-KOE-KIND:open",
                "END:VEVENT",
            ]
        )

    exceptions = {e.day: e for e in schedule.exceptions}
    for holiday in hours.closing_holidays(schedule.holidays, first_day, last_day):
        if holiday.day in exceptions:
            continue
        if holiday.from_time is None:
            start_line = f"DTSTART;VALUE=DATE:{holiday.day:%Y%m%d}"
        else:
            start_line = f"DTSTART;{tzid}:{_local_stamp(holiday.day, holiday.from_time)}"
        end_line = f"DTEND;VALUE=DATE:{holiday.day + timedelta(days=1):%Y%m%d}"
        if holiday.from_time is not None:
            end_line = f"DTEND;{tzid}:{_local_stamp(holiday.day + timedelta(days=1), time(0))}"
        events.append(
            [
                "BEGIN:VEVENT",
                f"UID:{_uid('holiday', uid_domain, schedule.timezone, holiday.day, holiday.name)}",
                f"DTSTAMP:{stamp}",
                start_line,
                end_line,
                f"SUMMARY:{escape_text(texts['closed'] + ': ' + holiday.name)}",
                "CATEGORIES:HOLIDAY",
                "TRANSP:TRANSPARENT",
                "X-KOE-KIND:holiday",
                "END:VEVENT",
            ]
        )

    for exception in sorted(schedule.exceptions, key=lambda e: e.day):
        if not exception.closed_all_day or not first_day <= exception.day <= last_day:
            continue
        summary = f"{texts['closed']}: {exception.label}" if exception.label else texts["closed"]
        events.append(
            [
                "BEGIN:VEVENT",
                f"UID:{_uid('exception', uid_domain, schedule.timezone, exception)}",
                f"DTSTAMP:{stamp}",
                f"DTSTART;VALUE=DATE:{exception.day:%Y%m%d}",
                f"DTEND;VALUE=DATE:{exception.day + timedelta(days=1):%Y%m%d}",
                f"SUMMARY:{escape_text(summary)}",
                "CATEGORIES:CLOSED",
                "TRANSP:TRANSPARENT",
                "X-KOE-KIND:exception",
                "END:VEVENT",
            ]
        )

    for closure in sorted(schedule.closures, key=lambda c: c.starts_at):
        end = closure.effective_end
        if (end is not None and end <= window_start) or closure.starts_at >= window_end:
            continue
        title = closure.reason or closure.message
        summary = f"{texts['closed']}: {title}" if title else texts["closed"]
        uid = (
            f"closure-{closure.closure_id}@{uid_domain}"
            if closure.closure_id is not None
            else _uid("closure", uid_domain, closure.starts_at, closure.ends_at, closure.message)
        )
        lines = [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{_utc_stamp(closure.starts_at)}",
            f"DTEND:{_utc_stamp(end if end is not None else window_end)}",
            f"SUMMARY:{escape_text(summary)}",
        ]
        if closure.message:
            lines.append(f"DESCRIPTION:{escape_text(closure.message)}")
        if end is None:
            lines.append("X-KOE-OPEN-ENDED:TRUE")
        lines += ["CATEGORIES:CLOSURE", "TRANSP:OPAQUE", "X-KOE-KIND:closure", "END:VEVENT"]
        events.append(lines)

    calendar = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(calendar_name)}",
        f"X-WR-TIMEZONE:{schedule.timezone}",
        *vtimezone_lines(schedule.timezone, window_start - timedelta(days=1), window_end),
    ]
    for event in events:
        calendar.extend(event)
    calendar.append("END:VCALENDAR")
    return "".join(fold(line) + CRLF for line in calendar)


# --- Reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Property:
    name: str
    params: dict[str, str]
    value: str
    line: int


@dataclass(slots=True)
class Component:
    name: str
    line: int
    properties: list[Property] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)

    def first(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)

    def all(self, name: str) -> list[Property]:
        return [p for p in self.properties if p.name == name]


_NAME = re.compile(r"[A-Za-z0-9-]+")


def _unfold(text: str) -> list[tuple[int, str]]:
    """Logical lines with the physical line number each starts on."""
    if text.startswith("\ufeff"):
        text = text[1:]
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(re.split(r"\r\n|\n|\r", text), start=1):
        if raw[:1] in (" ", "\t") and logical:
            logical[-1] = (logical[-1][0], logical[-1][1] + raw[1:])
        elif raw.strip():
            logical.append((number, raw))
    return logical


def _parse_line(number: int, line: str) -> Property:
    match = _NAME.match(line)
    if not match:
        raise IcsError(number, f"expected NAME:VALUE, got {line[:40]!r}")
    name = match.group(0).upper()
    index = match.end()
    params: dict[str, str] = {}
    while index < len(line) and line[index] == ";":
        index += 1
        param = _NAME.match(line, index)
        if not param or param.end() >= len(line) or line[param.end()] != "=":
            raise IcsError(number, f"a parameter of {name} is not NAME=VALUE")
        index = param.end() + 1
        if index < len(line) and line[index] == '"':
            closing = line.find('"', index + 1)
            if closing < 0:
                raise IcsError(number, f"a quoted parameter of {name} is not closed")
            value = line[index + 1 : closing]
            index = closing + 1
        else:
            stop = index
            while stop < len(line) and line[stop] not in ";:":
                stop += 1
            value = line[index:stop]
            index = stop
        params[param.group(0).upper()] = value
    if index >= len(line) or line[index] != ":":
        raise IcsError(number, f"expected ':' after {name}, got {line[:40]!r}")
    return Property(name, params, line[index + 1 :], number)


def parse_ics(text: str) -> Component:
    """The VCALENDAR as a tree of components; `IcsError` names the line of the first problem."""
    lines = _unfold(text)
    if not lines:
        raise IcsError(1, "the file is empty; expected BEGIN:VCALENDAR")
    stack: list[Component] = []
    root: Component | None = None
    for number, line in lines:
        prop = _parse_line(number, line)
        if root is not None and not stack:
            raise IcsError(number, "content after END:VCALENDAR")
        if prop.name == "BEGIN":
            kind = prop.value.strip().upper()
            if not _NAME.fullmatch(kind):
                raise IcsError(number, f"BEGIN needs a component name, got {prop.value!r}")
            if not stack and kind != "VCALENDAR":
                raise IcsError(number, f"expected BEGIN:VCALENDAR, got BEGIN:{kind}")
            component = Component(kind, number)
            if stack:
                stack[-1].components.append(component)
            else:
                root = component
            stack.append(component)
        elif prop.name == "END":
            kind = prop.value.strip().upper()
            if not stack:
                raise IcsError(number, f"END:{kind} without BEGIN")
            if stack[-1].name != kind:
                raise IcsError(
                    number, f"END:{kind} does not close BEGIN:{stack[-1].name} of line {stack[-1].line}"
                )
            stack.pop()
        elif not stack:
            raise IcsError(number, f"expected BEGIN:VCALENDAR, got {prop.name}")
        else:
            stack[-1].properties.append(prop)
    if stack:
        raise IcsError(lines[-1][0], f"BEGIN:{stack[-1].name} of line {stack[-1].line} is never closed")
    assert root is not None
    return root


def unescape_text(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")
        out.append("\n" if following in ("n", "N") else following)
    return "".join(out)
