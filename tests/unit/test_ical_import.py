"""Closures read from an .ics file one event at a time: repeating events, time zones, per-event problems."""

from __future__ import annotations

import pytest

from queue_app.domain import ical_import
from queue_app.domain.ical import IcsError
from queue_app.domain.ical_import import EventReading


def calendar(*events: str) -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n{body}END:VCALENDAR\r\n"


def spans(reading: EventReading) -> list[tuple[str, str]]:
    return [
        (c.starts_at.strftime("%Y-%m-%d %H:%M"), c.ends_at.strftime("%Y-%m-%d %H:%M"))
        for c in reading.closures
    ]


def only(text: str) -> EventReading:
    (reading,) = ical_import.read_events(text, "Europe/Stockholm")
    return reading


def test_it_keeps_a_weekly_meeting_at_eight_oclock_across_the_spring_dst_change() -> None:
    reading = only(
        calendar(
            "UID:meeting@example\r\nSUMMARY:Personalmöte\r\n"
            "DTSTART;TZID=Europe/Stockholm:20260316T080000\r\n"
            "DTEND;TZID=Europe/Stockholm:20260316T100000\r\nRRULE:FREQ=WEEKLY;COUNT=4"
        )
    )

    assert reading.repeats and reading.error is None
    assert spans(reading) == [
        ("2026-03-16 07:00", "2026-03-16 09:00"),
        ("2026-03-23 07:00", "2026-03-23 09:00"),
        ("2026-03-30 06:00", "2026-03-30 08:00"),  # summer time: still 08:00 in Stockholm
        ("2026-04-06 06:00", "2026-04-06 08:00"),
    ]
    assert {c.reason for c in reading.closures} == {"Personalmöte"}


def test_it_expands_a_first_monday_rule_until_a_utc_instant() -> None:
    reading = only(
        calendar(
            "DTSTART;TZID=Europe/Stockholm:20260907T080000\r\nDURATION:PT2H\r\n"
            "RRULE:FREQ=MONTHLY;BYDAY=1MO;UNTIL=20261102T070000Z"
        )
    )

    assert spans(reading) == [
        ("2026-09-07 06:00", "2026-09-07 08:00"),
        ("2026-10-05 06:00", "2026-10-05 08:00"),
        ("2026-11-02 07:00", "2026-11-02 09:00"),  # winter time; UNTIL is that very start
    ]


def test_it_expands_an_all_day_yearly_event_in_the_organisations_zone() -> None:
    reading = only(calendar("DTSTART;VALUE=DATE:20261224\r\nSUMMARY:Julafton\r\nRRULE:FREQ=YEARLY;COUNT=2"))

    assert spans(reading) == [
        ("2026-12-23 23:00", "2026-12-24 23:00"),
        ("2027-12-23 23:00", "2027-12-24 23:00"),
    ]


def test_it_leaves_out_exdates_and_occurrences_moved_by_a_recurrence_id() -> None:
    text = calendar(
        "UID:weekly@example\r\nDTSTART:20260601T060000Z\r\nDTEND:20260601T070000Z\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE:20260608T060000Z",
        "UID:weekly@example\r\nRECURRENCE-ID:20260615T060000Z\r\n"
        "DTSTART:20260616T120000Z\r\nDTEND:20260616T130000Z",
    )

    master, moved = ical_import.read_events(text, "Europe/Stockholm")

    assert spans(master) == [
        ("2026-06-01 06:00", "2026-06-01 07:00"),
        ("2026-06-22 06:00", "2026-06-22 07:00"),
    ]
    assert spans(moved) == [("2026-06-16 12:00", "2026-06-16 13:00")]
    assert not moved.repeats


def test_it_reads_utc_and_stockholm_times_of_one_instant_alike() -> None:
    text = calendar(
        "DTSTART:20260701T060000Z\r\nDTEND:20260701T080000Z",
        "DTSTART;TZID=Europe/Stockholm:20260701T080000\r\nDTEND;TZID=Europe/Stockholm:20260701T100000",
        "DTSTART:20260701T080000\r\nDTEND:20260701T100000",  # floating: the organisation's zone
    )

    readings = ical_import.read_events(text, "Europe/Stockholm")

    assert [spans(r) for r in readings] == [[("2026-07-01 06:00", "2026-07-01 08:00")]] * 3


@pytest.mark.parametrize(
    ("event", "code", "line"),
    [
        ("SUMMARY:x", "no_start", 4),
        ("DTSTART:20260701T060000Z", "no_end", 4),
        ("DTSTART:20260701T060000Z\r\nDTEND:20260701T050000Z", "ends_before_start", 6),
        ("DTSTART:2026-07-01\r\nDURATION:PT1H", "bad_value", 5),
        ("DTSTART;TZID=Mars/Olympus:20260701T060000\r\nDURATION:PT1H", "unknown_zone", 5),
        ("DTSTART:20260701T060000Z\r\nDURATION:two hours", "bad_value", 6),
        ("DTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=YEARLY", "endless_rrule", 7),
        ("DTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=HOURLY;COUNT=3", "rrule_frequency", 7),
        (
            "DTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;BYHOUR=9;COUNT=3",
            "rrule_part",
            7,
        ),
        ("DTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=500", "too_many", 7),
        ("DTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=YEARLY;COUNT=20", "rrule_too_long", 7),
        (
            "DTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;UNTIL=21000101",
            "rrule_too_long",
            7,
        ),
        ("DTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=x", "unsupported_rrule", 7),
        ("DTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRDATE:20260801T060000Z", "rrule_part", 7),
    ],
)
def test_it_names_each_events_problem_and_its_line(event: str, code: str, line: int) -> None:
    reading = only(calendar(event))

    assert reading.closures == ()
    assert reading.error is not None
    assert (reading.error.code, reading.error.line) == (code, line)


def test_it_reads_the_other_events_of_a_file_with_a_bad_one() -> None:
    text = calendar("SUMMARY:Utan start", "SUMMARY:Bra\r\nDTSTART:20260701T060000Z\r\nDURATION:PT1H").replace(
        "END:VCALENDAR", "BEGIN:VTODO\r\nSUMMARY:Att göra\r\nEND:VTODO\r\nEND:VCALENDAR"
    )

    bad, good, todo = ical_import.read_events(text, "Europe/Stockholm")

    assert bad.error is not None and bad.error.code == "no_start" and bad.summary == "Utan start"
    assert spans(good) == [("2026-07-01 06:00", "2026-07-01 07:00")]
    assert todo.error is not None and todo.error.code == "not_an_event"
    assert todo.error.params == {"component": "VTODO"}


def test_it_skips_cancelled_events_without_calling_them_errors() -> None:
    reading = only(calendar("STATUS:CANCELLED\r\nDTSTART:20260701T060000Z"))

    assert (reading.skipped, reading.error, reading.closures) == ("cancelled", None, ())


def test_all_or_nothing_parsing_raises_an_events_problem_but_ignores_other_components() -> None:
    good = calendar("DTSTART:20260701T060000Z\r\nDURATION:PT1H")
    with_todo = good.replace("END:VCALENDAR", "BEGIN:VTODO\r\nEND:VTODO\r\nEND:VCALENDAR")

    assert len(ical_import.parse_closures(with_todo)) == 1
    with pytest.raises(IcsError, match="line 4: this VEVENT has no DTSTART"):
        ical_import.parse_closures(calendar("SUMMARY:x"))


def test_it_refuses_a_file_that_is_not_icalendar_as_a_whole() -> None:
    with pytest.raises(IcsError) as raised:
        ical_import.read_events("id,name\r\n1,Karin\r\n")

    assert raised.value.line == 1
    assert raised.value.code == "malformed"
