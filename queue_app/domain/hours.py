"""Opening hours: rules, public holidays, custom days and temporary closures -> open or closed, why,
and until when.

Pure: no clock (the instant is always an argument), no I/O. Instants are aware UTC; rules are wall
times in the schedule's own zone (Europe/Stockholm by default).

A `Schedule` is evaluated one local day at a time. Precedence, strongest first:

1. an active temporary `Closure` (reason "closure", label = its reason or message);
2. a custom `DayException` for the local date: closed all day, or open only between `opens` and
   `closes` (outside that window the reason is "exception");
3. a public (or de-facto) holiday the `HolidayPolicy` closes on: the whole local day (reason
   "holiday", label = its name), unless a per-name override says open; a bank "half day" such as
   "Skärtorsdagen (från kl. 14.00)" closes from that time only;
4. `closed` rules (reason "outside_hours", label = the rule's label);
5. `open` rules (open, reason "open", label = the rule's label);
6. otherwise closed (reason "outside_hours", no label).

Rules are earlier-first within their effect, so the first matching rule's label wins.

Rules: `rrule` selects local dates (an RFC 5545 RRULE with FREQ DAILY/WEEKLY/MONTHLY/YEARLY and no
BYHOUR/BYMINUTE/BYSECOND); the rule is in force from `starts` to `ends` on each selected date. When
`ends <= starts` the window ends on the next day (`00:00`-`00:00` is a whole day). Its DTSTART (the
anchor that INTERVAL counts from and that fills parts the RRULE leaves out, as in RFC 5545) is
`valid_from`, else 2000-01-03 (a Monday). An occurrence belongs to the local day it starts on; a
holiday or exception decides only its own local day, so a night window that starts the evening before
a holiday is cut at midnight.

Daylight saving time, as RFC 5545 section 3.3.5 says for local times and as `zoneinfo` does with
`fold=0`: a wall time that does not exist (02:30 on 2026-03-29 in Stockholm) is read with the offset
before the gap, so it moves forward by the gap's length (to 03:30 CEST); a wall time that happens
twice (02:30 on 2026-10-25) means its first occurrence (02:30 CEST). A rule 08:00-17:00 is open from
08:00 to 17:00 local time on change days too (eight or ten hours of real time).

Performance: `status()` is on the path of every incoming call. The expanded RRULE dates are cached per
(rule, year), holidays per (country, year), and a local day's segments per (rules, policy, exception,
day), so a call costs a hash of the schedule value plus a few dictionary look-ups.

Holidays, checked with `holidays` 0.109 for Sweden (SE): `public` has the 13 official days
(Nyårsdagen, Trettondedag jul, Långfredagen 2026-04-03, Påskdagen, Annandag påsk 2026-04-06, Första
maj, Kristi himmelsfärdsdag, Pingstdagen, Nationaldagen, Midsommardagen 2026-06-20 / 2027-06-26, Alla
helgons dag, Juldagen, Annandag jul) and, since 0.108, no longer every Sunday (the weekly rules decide
Sundays); `de_facto` has Midsommarafton (2026-06-19, 2027-06-25), Julafton and Nyårsafton; `bank` has
those three and the half days "(från kl. 14.00)" such as Skärtorsdagen; `optional` has Påskafton,
Pingstafton, Klämdag and the half days. Without `language` the package picks names from the process
locale (English under LANG=C.UTF-8), so we always pass one: the country's own (Swedish for SE) unless
the policy says otherwise. A per-name override matches the local or the English name, case-folded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrulestr

Effect = Literal["open", "closed"]
Reason = Literal["open", "outside_hours", "holiday", "closure", "exception"]

DEFAULT_TIMEZONE = "Europe/Stockholm"
HORIZON = timedelta(days=400)
DEFAULT_ANCHOR = date(2000, 1, 3)  # a Monday
ALLOWED_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_CATEGORY_ORDER = ("public", "de_facto", "bank", "government", "optional")
_ONE_DAY = timedelta(days=1)
_MIDNIGHT = time(0)


class HoursError(ValueError):
    """A schedule cannot be evaluated as given; the message says which part and why."""


# --- Values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """In force from `starts` to `ends` (local) on every date the RRULE selects."""

    effect: Effect
    rrule: str
    starts: time
    ends: time
    valid_from: date | None = None
    valid_until: date | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.effect not in ("open", "closed"):
            raise HoursError(f"a rule's effect is 'open' or 'closed', not {self.effect!r}")
        parse_rrule(self.rrule)
        if self.starts.tzinfo is not None or self.ends.tzinfo is not None:
            raise HoursError("a rule's times are local wall times without a time zone")
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise HoursError(f"rule {self.rrule!r} ends ({self.valid_until}) before it starts")


@dataclass(frozen=True, slots=True)
class HolidayPolicy:
    """Which holidays close the queue: whole `categories`, corrected per holiday name.

    `overrides` pairs a holiday's name with True (closes) or False (stays open), and beats the
    categories, so `("Midsommarafton", True)` closes on Midsummer Eve without all of `de_facto`.
    """

    country: str | None = "SE"
    categories: tuple[str, ...] = ("public",)
    overrides: tuple[tuple[str, bool], ...] = ()
    subdivision: str | None = None
    language: str | None = None  # None: the country's own language

    def __post_init__(self) -> None:
        if self.country is not None:
            _holiday_languages(self.country, self.subdivision)  # raises for an unknown country


@dataclass(frozen=True, slots=True)
class DayException:
    """A custom date: closed all day (no times), or open only from `opens` to `closes`."""

    day: date
    opens: time | None = None
    closes: time | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if (self.opens is None) != (self.closes is None):
            raise HoursError(f"the exception on {self.day} needs both an opening and a closing time")
        if self.opens is not None and self.closes is not None and _MIDNIGHT != self.closes <= self.opens:
            raise HoursError(f"the exception on {self.day} closes before it opens")

    @property
    def closed_all_day(self) -> bool:
        return self.opens is None


@dataclass(frozen=True, slots=True)
class Closure:
    """A temporary closure; `ends_at` None means until someone ends it (`ended_early_at`)."""

    starts_at: datetime
    ends_at: datetime | None = None
    message: str | None = None
    reason: str | None = None
    ended_early_at: datetime | None = None
    closure_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("starts_at", "ends_at", "ended_early_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise HoursError(f"a closure's {name} must be an aware datetime")

    @property
    def effective_end(self) -> datetime | None:
        ends = [t for t in (self.ends_at, self.ended_early_at) if t is not None]
        return min(ends) if ends else None

    def active_at(self, at: datetime) -> bool:
        end = self.effective_end
        return self.starts_at <= at and (end is None or at < end)


@dataclass(frozen=True, slots=True)
class Schedule:
    timezone: str = DEFAULT_TIMEZONE
    rules: tuple[Rule, ...] = ()
    holidays: HolidayPolicy = field(default_factory=HolidayPolicy)
    exceptions: tuple[DayException, ...] = ()
    closures: tuple[Closure, ...] = ()

    def __post_init__(self) -> None:
        zone(self.timezone)


@dataclass(frozen=True, slots=True)
class HoursStatus:
    open: bool
    reason: Reason
    label: str | None
    until: datetime | None  # UTC: when this status next changes; None: not within the horizon
    closure_message: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """From `at` (UTC) the queue is open or closed (`opens`) for `reason`, labelled `label`.

    A transition is listed whenever (open, reason, label) changes, so the night before Good Friday
    has one at midnight from "outside_hours" to "holiday": the closing message differs. Code that
    only cares about opening and closing keeps the ones where `opens` changes.
    """

    at: datetime
    opens: bool
    reason: Reason
    label: str | None
    closure_message: str | None = None


@dataclass(frozen=True, slots=True)
class Holiday:
    day: date
    name: str
    english_name: str
    category: str
    from_time: time | None  # a half day: closes from this local time; None: the whole day


# --- Time zones and RRULEs -------------------------------------------------------------------------


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise HoursError(f"unknown time zone {name!r}") from error


def local_to_utc(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time; `fold=0`: gaps move forward, repeats take the first."""
    return datetime.combine(day, wall.replace(fold=0), tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RRuleSpec:
    text: str  # normalised for dateutil: UTC UNTIL turned into a date
    freq: str
    interval: int
    has_count: bool
    until: date | None


_FORBIDDEN_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND", "DTSTART")


@lru_cache(maxsize=1024)
def parse_rrule(text: str) -> RRuleSpec:
    """Checks and normalises a rule's RRULE; raises HoursError with the reason."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    parts: dict[str, str] = {}
    for chunk in body.split(";"):
        if not chunk:
            continue
        key, sep, value = chunk.partition("=")
        if not sep or not value:
            raise HoursError(f"RRULE {text!r}: {chunk!r} is not NAME=VALUE")
        key = key.strip().upper()
        if key in parts:
            raise HoursError(f"RRULE {text!r}: {key} is given twice")
        parts[key] = value.strip().upper()
    freq = parts.get("FREQ")
    if freq not in ALLOWED_FREQUENCIES:
        raise HoursError(f"RRULE {text!r}: FREQ must be one of {', '.join(ALLOWED_FREQUENCIES)}")
    for key in _FORBIDDEN_PARTS:
        if key in parts:
            raise HoursError(f"RRULE {text!r}: {key} is not allowed; the rule's times say when")
    if "COUNT" in parts and "UNTIL" in parts:
        raise HoursError(f"RRULE {text!r}: COUNT and UNTIL exclude each other")
    until: date | None = None
    if "UNTIL" in parts:
        match = re.fullmatch(r"(\d{8})(T\d{6}Z?)?", parts["UNTIL"])
        if not match:
            raise HoursError(f"RRULE {text!r}: UNTIL must look like 20261231 or 20261231T235959Z")
        try:
            until = datetime.strptime(match.group(1), "%Y%m%d").date()
        except ValueError as error:
            raise HoursError(f"RRULE {text!r}: UNTIL is not a date") from error
        parts["UNTIL"] = match.group(1)
    try:
        interval = int(parts.get("INTERVAL", "1"))
    except ValueError as error:
        raise HoursError(f"RRULE {text!r}: INTERVAL must be a whole number") from error
    if interval < 1:
        raise HoursError(f"RRULE {text!r}: INTERVAL must be at least 1")
    normalised = ";".join(f"{k}={v}" for k, v in parts.items())
    try:
        rrulestr(normalised, dtstart=datetime.combine(DEFAULT_ANCHOR, _MIDNIGHT))
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise HoursError(f"RRULE {text!r}: {error}") from error
    return RRuleSpec(normalised, freq, interval, "COUNT" in parts, until)


def _rebased_anchor(anchor: date, spec: RRuleSpec, target: date) -> date:
    """The latest date on or before `target` that is a whole number of INTERVALs after `anchor`.

    Starting the expansion there gives the same dates from `target` on (the periods are the same and
    so are the parts the RRULE takes from DTSTART: weekday, day of month, month), but costs one year
    of iterations instead of 26. A COUNT counts from the real anchor, so it is never rebased.
    """
    if spec.has_count or anchor >= target:
        return anchor
    if spec.freq in ("DAILY", "WEEKLY"):
        step = spec.interval * (7 if spec.freq == "WEEKLY" else 1)
        return anchor + timedelta(days=(target - anchor).days // step * step)
    if spec.freq == "MONTHLY":
        step = spec.interval
        k = ((target.year - anchor.year) * 12 + target.month - anchor.month) // step * step
        unit = "months"
    else:
        step = math.lcm(spec.interval, 4) if (anchor.month, anchor.day) == (2, 29) else spec.interval
        k = (target.year - anchor.year) // step * step
        unit = "years"
    while k > 0:
        candidate = anchor + relativedelta(**{unit: k})
        if candidate.day == anchor.day and candidate <= target:
            return candidate
        k -= step
    return anchor


@lru_cache(maxsize=4096)
def _rule_dates(spec_text: str, anchor: date, year: int) -> frozenset[date]:
    spec = parse_rrule(spec_text)
    start = _rebased_anchor(anchor, spec, date(year, 1, 1))
    recurrence = rrulestr(spec.text, dtstart=datetime.combine(start, _MIDNIGHT))
    first = datetime(year, 1, 1)
    last = datetime(year, 12, 31)
    return frozenset(d.date() for d in recurrence.between(first, last, inc=True))


def rule_anchor(rule: Rule) -> date:
    return rule.valid_from or DEFAULT_ANCHOR


def rule_occurs(rule: Rule, day: date) -> bool:
    if rule.valid_from and day < rule.valid_from:
        return False
    if rule.valid_until and day > rule.valid_until:
        return False
    return day in _rule_dates(rule.rrule, rule_anchor(rule), day.year)


def rule_occurrences(rule: Rule, first: date, last: date) -> list[date]:
    """The local dates in [first, last] on which `rule` starts an occurrence, in order."""
    found: list[date] = []
    for year in range(first.year, last.year + 1):
        dates = _rule_dates(rule.rrule, rule_anchor(rule), year)
        found.extend(d for d in sorted(dates) if first <= d <= last and rule_occurs(rule, d))
    return found


def rule_window(rule: Rule, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The UTC interval of the occurrence that starts on local `day`; None when DST makes it empty."""
    start = local_to_utc(day, rule.starts, tz)
    end_day = day if rule.ends > rule.starts else day + _ONE_DAY
    end = local_to_utc(end_day, rule.ends, tz)
    return (start, end) if end > start else None


# --- Holidays -----------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _holiday_languages(country: str, subdivision: str | None) -> tuple[str | None, tuple[str, ...]]:
    try:
        calendar = holidays_package.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as error:
        raise HoursError(f"the holidays package does not know the country {country!r}") from error
    return calendar.default_language, tuple(calendar.supported_languages)


def _english(languages: tuple[str, ...]) -> str | None:
    if "en_US" in languages:
        return "en_US"
    return next((lang for lang in languages if lang.startswith("en")), None)


_HALF_DAY_PATTERNS = (
    re.compile(r"\(from (\d{1,2})(?::(\d{2}))?\s*([ap]m)\)", re.IGNORECASE),
    re.compile(r"\(från kl\. ?(\d{1,2})[.:](\d{2})\)", re.IGNORECASE),
)


def _half_day_from(*names: str) -> time | None:
    for name in names:
        for pattern in _HALF_DAY_PATTERNS:
            match = pattern.search(name)
            if match:
                hour = int(match.group(1))
                minute = int(match.group(2) or 0)
                if len(match.groups()) == 3:
                    hour = hour % 12 + (12 if match.group(3).lower() == "pm" else 0)
                return time(hour, minute)
    return None


@lru_cache(maxsize=256)
def holidays_of_year(
    country: str, subdivision: str | None, language: str | None, year: int
) -> dict[date, tuple[Holiday, ...]]:
    """Every holiday the package knows for the year, in all categories, named in `language`."""
    default_language, languages = _holiday_languages(country, subdivision)
    local_language = language if language in languages else default_language
    english = _english(languages) or local_language
    probe = holidays_package.country_holidays(country, subdiv=subdivision)
    categories = sorted(
        probe.supported_categories,
        key=lambda c: _CATEGORY_ORDER.index(c) if c in _CATEGORY_ORDER else len(_CATEGORY_ORDER),
    )
    found: dict[date, list[Holiday]] = {}
    for category in categories:
        local = holidays_package.country_holidays(
            country, subdiv=subdivision, years=year, categories=(category,), language=local_language
        )
        in_english = holidays_package.country_holidays(
            country, subdiv=subdivision, years=year, categories=(category,), language=english
        )
        for day in sorted(local):
            names = local.get_list(day)
            english_names = in_english.get_list(day)
            if len(english_names) != len(names):
                english_names = names
            for name, english_name in zip(names, english_names, strict=True):
                holiday = Holiday(day, name, english_name, category, _half_day_from(english_name, name))
                found.setdefault(day, []).append(holiday)
    return {day: tuple(entries) for day, entries in found.items()}


@lru_cache(maxsize=256)
def _override_map(overrides: tuple[tuple[str, bool], ...]) -> dict[str, bool]:
    return {name.strip().casefold(): closes for name, closes in overrides}


def closing_holiday(policy: HolidayPolicy, day: date) -> Holiday | None:
    """The holiday that closes the queue on `day` (a whole-day one before a half day), if any."""
    if policy.country is None:
        return None
    entries = holidays_of_year(policy.country, policy.subdivision, policy.language, day.year).get(day, ())
    if not entries:
        return None
    overrides = _override_map(policy.overrides)
    closing: list[Holiday] = []
    for holiday in entries:
        decision = overrides.get(holiday.name.casefold())
        if decision is None:
            decision = overrides.get(holiday.english_name.casefold())
        if decision is None:
            decision = holiday.category in policy.categories
        if decision:
            closing.append(holiday)
    if not closing:
        return None
    whole_days = [h for h in closing if h.from_time is None]
    if whole_days:
        return whole_days[0]
    return min(closing, key=lambda h: h.from_time or _MIDNIGHT)


def closing_holidays(policy: HolidayPolicy, first: date, last: date) -> list[Holiday]:
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [h for h in (closing_holiday(policy, d) for d in days) if h is not None]


# --- One local day --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _State:
    open: bool
    reason: Reason
    label: str | None
    closure_message: str | None = None


_Segment = tuple[datetime, datetime, _State]
_OUTSIDE = _State(False, "outside_hours", None)


def _cut(start: datetime, end: datetime, points: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    inner = sorted({p for p in points if start < p < end})
    edges = [start, *inner, end]
    return list(pairwise(edges))


def _merge(segments: Iterable[_Segment]) -> Iterator[_Segment]:
    current: _Segment | None = None
    for segment in segments:
        if current is not None and current[2] == segment[2] and current[1] == segment[0]:
            current = (current[0], segment[1], current[2])
            continue
        if current is not None:
            yield current
        current = segment
    if current is not None:
        yield current


@lru_cache(maxsize=16384)
def _day_segments(
    timezone: str,
    rules: tuple[Rule, ...],
    policy: HolidayPolicy,
    exception: DayException | None,
    day: date,
) -> tuple[_Segment, ...]:
    """The local day as contiguous UTC segments of constant state, before closures."""
    tz = zone(timezone)
    start = local_to_utc(day, _MIDNIGHT, tz)
    end = local_to_utc(day + _ONE_DAY, _MIDNIGHT, tz)

    if exception is not None:
        closed = _State(False, "exception", exception.label)
        if exception.opens is None or exception.closes is None:
            return ((start, end, closed),)
        opens = local_to_utc(day, exception.opens, tz)
        closes_day = day + _ONE_DAY if exception.closes == _MIDNIGHT else day
        closes = max(opens, local_to_utc(closes_day, exception.closes, tz))
        opened = _State(True, "open", exception.label)
        pieces = ((start, opens, closed), (opens, closes, opened), (closes, end, closed))
        return tuple(_merge(p for p in pieces if p[0] < p[1]))

    holiday = closing_holiday(policy, day)
    holiday_from: datetime | None = None
    if holiday is not None:
        if holiday.from_time is None:
            return ((start, end, _State(False, "holiday", holiday.name)),)
        holiday_from = local_to_utc(day, holiday.from_time, tz)

    windows: list[tuple[datetime, datetime, Rule]] = []
    for rule in rules:
        for occurrence in (day - _ONE_DAY, day):
            if not rule_occurs(rule, occurrence):
                continue
            window = rule_window(rule, occurrence, tz)
            if window is None:
                continue
            s, e = max(window[0], start), min(window[1], end)
            if s < e:
                windows.append((s, e, rule))

    points = [p for s, e, _ in windows for p in (s, e)]
    if holiday_from is not None:
        points.append(holiday_from)
    segments: list[_Segment] = []
    for a, b in _cut(start, end, points):
        segments.append((a, b, _state_at(a, windows, holiday, holiday_from)))
    return tuple(_merge(segments))


def _state_at(
    at: datetime,
    windows: list[tuple[datetime, datetime, Rule]],
    holiday: Holiday | None,
    holiday_from: datetime | None,
) -> _State:
    if holiday is not None and holiday_from is not None and at >= holiday_from:
        return _State(False, "holiday", holiday.name)
    covering = [rule for s, e, rule in windows if s <= at < e]
    for rule in covering:
        if rule.effect == "closed":
            return _State(False, "outside_hours", rule.label)
    for rule in covering:
        return _State(True, "open", rule.label)
    return _OUTSIDE


@lru_cache(maxsize=256)
def _exceptions_by_day(exceptions: tuple[DayException, ...]) -> dict[date, DayException]:
    return {e.day: e for e in exceptions}


# --- The timeline ---------------------------------------------------------------------------------


def _base_segments(schedule: Schedule, first: date, last: date) -> Iterator[_Segment]:
    by_day = _exceptions_by_day(schedule.exceptions)
    day = first
    while day <= last:
        yield from _day_segments(schedule.timezone, schedule.rules, schedule.holidays, by_day.get(day), day)
        day += _ONE_DAY


def _active_closure(closures: tuple[Closure, ...], at: datetime) -> Closure | None:
    active = [c for c in closures if c.active_at(at)]
    return min(active, key=lambda c: c.starts_at) if active else None


def _closure_state(closure: Closure) -> _State:
    return _State(False, "closure", closure.reason or closure.message, closure.message)


def _with_closures(segments: Iterable[_Segment], closures: tuple[Closure, ...]) -> Iterator[_Segment]:
    if not closures:
        yield from segments
        return
    points = [p for c in closures for p in (c.starts_at, c.effective_end) if p is not None]
    for start, end, state in segments:
        for a, b in _cut(start, end, points):
            closure = _active_closure(closures, a)
            yield (a, b, _closure_state(closure) if closure else state)


def _timeline(schedule: Schedule, start: datetime, end: datetime) -> Iterator[_Segment]:
    """Merged segments covering [local midnight before start, local midnight after end)."""
    tz = zone(schedule.timezone)
    first = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    return _merge(_with_closures(_base_segments(schedule, first, last), schedule.closures))


def _aware(at: datetime, name: str = "at") -> datetime:
    if at.tzinfo is None:
        raise HoursError(f"{name} must be an aware datetime (UTC)")
    return at.astimezone(UTC)


def _status(state: _State, until: datetime | None) -> HoursStatus:
    return HoursStatus(state.open, state.reason, state.label, until, state.closure_message)


def status(schedule: Schedule, at: datetime, horizon: timedelta = HORIZON) -> HoursStatus:
    """Open or closed at `at`, why, and until when (None: no change within `horizon`)."""
    at = _aware(at)
    closure = _active_closure(schedule.closures, at)
    if closure is not None and closure.effective_end is None:
        # The earliest active open-ended closure stays the one in force: nothing changes.
        return _status(_closure_state(closure), None)
    limit = at + horizon
    if closure is None and _open_around_the_clock(schedule):
        # No rules to expand: only a closure can change anything, so skip the day-by-day timeline.
        starts = [c.starts_at for c in schedule.closures if at < c.starts_at <= limit]
        return _status(_State(True, "open", None), min(starts) if starts else None)
    for _start, end, state in _timeline(schedule, at, limit):
        if end <= at:
            continue
        return _status(state, end if end <= limit else None)
    raise AssertionError("the timeline covers every instant")  # pragma: no cover


def transitions(schedule: Schedule, start: datetime, end: datetime) -> list[Transition]:
    """Every change of (open, reason, label) at an instant in (start, end], in order."""
    start, end = _aware(start, "start"), _aware(end, "end")
    found: list[Transition] = []
    for seg_start, _seg_end, state in _timeline(schedule, start, end):
        if start < seg_start <= end:
            found.append(Transition(seg_start, state.open, state.reason, state.label, state.closure_message))
    return found


def next_transitions(
    schedule: Schedule, at: datetime, count: int = 10, horizon: timedelta = HORIZON
) -> list[Transition]:
    """The preview: the next `count` transitions after `at` within `horizon`."""
    at = _aware(at)
    found: list[Transition] = []
    for seg_start, _seg_end, state in _timeline(schedule, at, at + horizon):
        if at < seg_start <= at + horizon:
            found.append(Transition(seg_start, state.open, state.reason, state.label, state.closure_message))
            if len(found) >= count:
                break
    return found


def open_intervals(schedule: Schedule, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The maximal open UTC intervals within [start, end), whatever their labels."""
    start, end = _aware(start, "start"), _aware(end, "end")
    intervals: list[tuple[datetime, datetime]] = []
    for seg_start, seg_end, state in _timeline(schedule, start, end):
        a, b = max(seg_start, start), min(seg_end, end)
        if not state.open or a >= b:
            continue
        if intervals and intervals[-1][1] == a:
            intervals[-1] = (intervals[-1][0], b)
        else:
            intervals.append((a, b))
    return intervals


ALWAYS_OPEN = Schedule(
    timezone=DEFAULT_TIMEZONE,
    rules=(Rule("open", "FREQ=DAILY", _MIDNIGHT, _MIDNIGHT),),
    holidays=HolidayPolicy(country=None, categories=()),
)


def _open_around_the_clock(schedule: Schedule) -> bool:
    return (
        schedule.rules == ALWAYS_OPEN.rules
        and not schedule.exceptions
        and (schedule.holidays.country is None or not schedule.holidays.categories)
        and not schedule.holidays.overrides
    )
