"""iCalendar export of opening hours and closures, and import of closures."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rruleset, rrulestr

from queue_app.clock import utc
from queue_app.domain import hours, ical, ical_import
from queue_app.domain.hours import Closure, DayException, HolidayPolicy, Rule, Schedule
from queue_app.domain.ical import IcsError

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = utc("2026-03-25 09:00")


def office(**kwargs: object) -> Schedule:
    rules = (
        Rule("open", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH", time(8), time(17)),
        Rule("open", "FREQ=WEEKLY;BYDAY=FR", time(8), time(15), label="Fredag"),
        Rule("closed", "FREQ=MONTHLY;BYDAY=1MO", time(8), time(10), label="Personalmöte"),
    )
    return Schedule(rules=rules, holidays=HolidayPolicy("SE", ("public", "de_facto")), **kwargs)  # type: ignore[arg-type]


def events(text: str) -> list[ical.Component]:
    return [c for c in ical.parse_ics(text).components if c.name == "VEVENT"]


def value(event: ical.Component, name: str) -> str:
    prop = event.first(name)
    assert prop is not None, name
    return prop.value


def kind(event: ical.Component) -> str:
    return value(event, "X-KOE-KIND")


# --- Writing rules ------------------------------------------------------------------------------


def test_it_escapes_commas_semicolons_backslashes_and_newlines() -> None:
    assert ical.escape_text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    assert ical.unescape_text(ical.escape_text("a,b;c\\d\r\ne")) == "a,b;c\\d\ne"


def test_it_folds_at_75_octets_without_splitting_a_character() -> None:
    line = "SUMMARY:" + "ö" * 100
    folded = ical.fold(line)
    physical = folded.split("\r\n")
    assert len(physical) > 1
    assert all(len(p.encode("utf-8")) <= 75 for p in physical)
    assert all(p.startswith(" ") for p in physical[1:])
    assert "".join([physical[0], *(p[1:] for p in physical[1:])]) == line


def test_it_writes_crlf_lines_of_at_most_75_octets() -> None:
    closure = Closure(utc("2026-04-20 06:00"), utc("2026-04-20 12:00"), "Ett långt meddelande, " * 10, "Möte")
    text = ical.export_schedule(office(closures=(closure,)), NOW, calendar_name="Växeln")
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert all(len(line.encode("utf-8")) <= 75 for line in text.split("\r\n"))
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:")


# --- The export ---------------------------------------------------------------------------------


def test_it_exports_each_rule_with_its_rrule_and_a_tzid_start() -> None:
    found = events(ical.export_schedule(office(), NOW, calendar_name="Växeln"))
    recurring = {value(e, "RRULE"): e for e in found if e.first("RRULE")}
    assert set(recurring) == {
        "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH",
        "FREQ=WEEKLY;BYDAY=FR",
        "FREQ=MONTHLY;BYDAY=1MO",
    }
    weekdays = recurring["FREQ=WEEKLY;BYDAY=MO,TU,WE,TH"]
    start = weekdays.first("DTSTART")
    assert start is not None and start.params == {"TZID": "Europe/Stockholm"}
    assert start.value == "20260325T080000"  # the first occurrence on or after now: a Wednesday
    assert value(weekdays, "DTEND") == "20260325T170000"
    assert kind(weekdays) == "open"
    assert kind(recurring["FREQ=MONTHLY;BYDAY=1MO"]) == "closed-rule"
    assert value(recurring["FREQ=MONTHLY;BYDAY=1MO"], "SUMMARY") == "Stängt: Personalmöte"


def test_it_excludes_holidays_from_the_recurring_opening_hours() -> None:
    found = events(ical.export_schedule(office(), NOW, calendar_name="Växeln"))
    fridays = next(e for e in found if e.first("RRULE") and value(e, "RRULE") == "FREQ=WEEKLY;BYDAY=FR")
    exdates = ",".join(p.value for p in fridays.all("EXDATE"))
    assert "20260403T080000" in exdates  # Långfredagen
    assert "20260619T080000" in exdates  # Midsommarafton
    assert "20260327T080000" not in exdates
    weekdays = next(e for e in found if e.first("RRULE") and value(e, "RRULE").endswith("TH"))
    assert "20260406T080000" in ",".join(p.value for p in weekdays.all("EXDATE"))  # Annandag påsk
    holidays = {(value(e, "SUMMARY"), value(e, "DTSTART")) for e in found if kind(e) == "holiday"}
    assert ("Stängt: Långfredagen", "20260403") in holidays
    assert ("Stängt: Långfredagen", "20270326") in holidays  # the window is 400 days
    assert ("Stängt: Midsommarafton", "20260619") in holidays


def test_it_has_a_vtimezone_for_its_tzid() -> None:
    calendar = ical.parse_ics(ical.export_schedule(office(), NOW, calendar_name="Växeln"))
    zones = [c for c in calendar.components if c.name == "VTIMEZONE"]
    assert len(zones) == 1 and value(zones[0], "TZID") == "Europe/Stockholm"
    observances = {(c.name, value(c, "DTSTART"), value(c, "TZOFFSETTO")) for c in zones[0].components}
    assert ("DAYLIGHT", "20260329T020000", "+0200") in observances
    assert ("STANDARD", "20261025T030000", "+0100") in observances


def test_it_turns_valid_until_into_a_utc_until() -> None:
    rule = Rule("open", "FREQ=DAILY", time(8), time(17), valid_until=date(2026, 6, 30))
    found = events(ical.export_schedule(Schedule(rules=(rule,)), NOW, calendar_name="Q"))
    daily = next(e for e in found if e.first("RRULE"))
    assert value(daily, "RRULE") == "FREQ=DAILY;UNTIL=20260630T060000Z"


def test_it_exports_closures_with_their_message() -> None:
    closures = (
        Closure(
            utc("2026-04-20 06:00"),
            utc("2026-04-20 12:00"),
            "Åter kl. 14, välkommen",
            "Utbildning",
            closure_id=3,
        ),
        Closure(utc("2026-05-04 06:00"), None, "Stängt tills vidare", None, closure_id=4),
        Closure(utc("2026-03-01 06:00"), utc("2026-03-02 06:00"), "Förbi", closure_id=5),
    )
    found = [
        e
        for e in events(ical.export_schedule(office(closures=closures), NOW, calendar_name="Q"))
        if kind(e) == "closure"
    ]
    assert [value(e, "UID") for e in found] == ["closure-3@koe", "closure-4@koe"]
    first, second = found
    assert (value(first, "DTSTART"), value(first, "DTEND")) == ("20260420T060000Z", "20260420T120000Z")
    assert ical.unescape_text(value(first, "DESCRIPTION")) == "Åter kl. 14, välkommen"
    assert value(first, "SUMMARY") == "Stängt: Utbildning"
    assert value(second, "X-KOE-OPEN-ENDED") == "TRUE"


def _local_naive(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%S")


def _to_utc(naive: datetime) -> datetime:
    return naive.replace(tzinfo=STOCKHOLM).astimezone(UTC)


def _expand_open_events(text: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """What a calendar client shows as open in [start, end): RRULE - EXDATE, plus single events."""
    intervals: list[tuple[datetime, datetime]] = []
    for event in events(text):
        if kind(event) != "open":
            continue
        dtstart, dtend = value(event, "DTSTART"), value(event, "DTEND")
        if dtstart.endswith("Z"):
            intervals.append(
                (
                    datetime.strptime(dtstart, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
                    datetime.strptime(dtend, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
                )
            )
            continue
        first, last = _local_naive(dtstart), _local_naive(dtend)
        recurrence = rruleset()
        recurrence.rrule(rrulestr(value(event, "RRULE").replace("Z", ""), dtstart=first, ignoretz=True))
        for exdate in event.all("EXDATE"):
            for item in exdate.value.split(","):
                recurrence.exdate(_local_naive(item))
        local_start = start.astimezone(STOCKHOLM).replace(tzinfo=None) - timedelta(days=1)
        local_end = end.astimezone(STOCKHOLM).replace(tzinfo=None)
        for occurrence in recurrence.between(local_start, local_end, inc=True):
            intervals.append((_to_utc(occurrence), _to_utc(occurrence + (last - first))))
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    merged: list[tuple[datetime, datetime]] = []
    for a, b in clipped:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def test_it_round_trips_to_exactly_the_open_hours_within_the_window() -> None:
    schedule = office(
        exceptions=(
            DayException(date(2026, 4, 8), time(9), time(12), "Inventering"),
            DayException(date(2026, 4, 11), time(10), time(13)),
        ),
        closures=(Closure(utc("2026-04-14 12:00"), utc("2026-04-15 09:00"), "Möte"),),
    )
    horizon = timedelta(days=120)
    text = ical.export_schedule(schedule, NOW, calendar_name="Växeln", horizon=horizon)
    window_start = hours.local_to_utc(date(2026, 3, 25), time(0), STOCKHOLM)
    window_end = NOW + horizon
    assert _expand_open_events(text, window_start, window_end) == hours.open_intervals(
        schedule, window_start, window_end
    )


def test_it_exports_a_queue_open_around_the_clock() -> None:
    text = ical.export_schedule(hours.ALWAYS_OPEN, NOW, calendar_name="Dygnet runt", language="en")
    found = events(text)
    assert [value(e, "RRULE") for e in found] == ["FREQ=DAILY"]
    assert value(found[0], "SUMMARY") == "Open"


# --- The import ---------------------------------------------------------------------------------

TWO_EVENTS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example//EN\r
BEGIN:VEVENT\r
UID:one@example\r
DTSTART;TZID=Europe/Stockholm:20260619T000000\r
DTEND;TZID=Europe/Stockholm:20260620T000000\r
SUMMARY:Midsommar\\, hela kontoret\r
DESCRIPTION:Vi har stängt i dag.\\nVälkommen åter\r
  på måndag.\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:two@example\r
DTSTART:20260701T060000Z\r
DURATION:PT2H30M\r
SUMMARY:Brandövning\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_it_imports_two_events_as_two_closures() -> None:
    first, second = ical_import.parse_closures(TWO_EVENTS, "Europe/Stockholm")
    assert (first.starts_at, first.ends_at) == (utc("2026-06-18 22:00"), utc("2026-06-19 22:00"))
    assert first.reason == "Midsommar, hela kontoret"
    assert first.message == "Vi har stängt i dag.\nVälkommen åter på måndag."
    assert first.uid == "one@example"
    assert (second.starts_at, second.ends_at) == (utc("2026-07-01 06:00"), utc("2026-07-01 08:30"))
    assert second.message == "Brandövning"  # no DESCRIPTION: the summary is said


def test_it_imports_all_day_events_in_the_default_zone_with_lf_endings() -> None:
    text = (
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261224\nSUMMARY:Jul\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    (closure,) = ical_import.parse_closures(text, "Europe/Stockholm")
    assert (closure.starts_at, closure.ends_at) == (utc("2026-12-23 23:00"), utc("2026-12-24 23:00"))


def test_it_reads_outlook_windows_zone_names() -> None:
    text = (
        'BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;TZID="W. Europe Standard Time":20260801T080000\r\n'
        'DTEND;TZID="W. Europe Standard Time":20260801T120000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n'
    )
    (closure,) = ical_import.parse_closures(text)
    assert (closure.starts_at, closure.ends_at) == (utc("2026-08-01 06:00"), utc("2026-08-01 10:00"))


def test_it_skips_cancelled_events_and_its_own_opening_hours() -> None:
    closure = Closure(utc("2026-04-20 06:00"), utc("2026-04-20 12:00"), "Möte")
    exported = ical.export_schedule(office(closures=(closure,)), NOW, calendar_name="Q")
    imported = ical_import.parse_closures(exported)
    assert [(c.starts_at, c.ends_at, c.message) for c in imported] == [
        (closure.starts_at, closure.ends_at, "Möte")
    ]
    cancelled = TWO_EVENTS.replace("UID:two@example", "UID:two@example\r\nSTATUS:CANCELLED")
    assert len(ical_import.parse_closures(cancelled)) == 1


def _with_line(text: str, line_number: int, replacement: str) -> str:
    lines = text.split("\r\n")
    lines[line_number - 1] = replacement
    return "\r\n".join(lines)


@pytest.mark.parametrize(
    ("line", "replacement", "error_line", "message"),
    [
        (6, "DTSTART;TZID=Europe/Stockholm 20260619T000000", 6, "expected ':'"),
        (6, "DTSTART;TZID=Europe/Stockholm:2026-06-19", 6, "not a date-time"),
        (6, "DTSTART;TZID=Mars/Olympus:20260619T000000", 6, "unknown time zone"),
        (6, "DTSTART;TZID=Europe/Stockholm:20261319T000000", 6, "not a valid date-time"),
        (7, "DTEND;TZID=Europe/Stockholm:20260618T000000", 7, "ends before it starts"),
        (11, "END:VTODO", 11, "does not close BEGIN:VEVENT of line 4"),
        (13, "RRULE:FREQ=YEARLY", 13, "recurring"),
        (15, "DURATION:2 hours", 15, "DURATION"),
        (15, ":PT2H", 15, "expected NAME:VALUE"),
        (1, "BEGIN:VEVENT", 1, "expected BEGIN:VCALENDAR"),
        (18, "", 17, "BEGIN:VCALENDAR of line 1 is never closed"),
    ],
)
def test_it_names_the_line_of_a_malformed_file(
    line: int, replacement: str, error_line: int, message: str
) -> None:
    with pytest.raises(IcsError, match=message) as raised:
        ical_import.parse_closures(_with_line(TWO_EVENTS, line, replacement))
    assert raised.value.line == error_line
    assert str(raised.value).startswith(f"line {error_line}: ")


def test_it_refuses_an_event_without_an_end() -> None:
    text = TWO_EVENTS.replace("DURATION:PT2H30M\r\n", "")
    with pytest.raises(IcsError, match="no DTEND or DURATION") as raised:
        ical_import.parse_closures(text)
    assert raised.value.line == 12


def test_it_refuses_an_empty_file() -> None:
    with pytest.raises(IcsError, match="empty"):
        ical_import.parse_closures("  \r\n")
