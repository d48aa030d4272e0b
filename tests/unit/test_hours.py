"""Opening hours at fixed instants: Stockholm's DST days, Easter and Midsummer, monthly and yearly
rules, exceptions, temporary closures; and properties that status() agrees with transitions()."""

from __future__ import annotations

import dataclasses
import functools
import time as clock_time
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_app.clock import utc
from queue_app.domain import hours
from queue_app.domain.hours import (
    Closure,
    DayException,
    HolidayPolicy,
    HoursError,
    Rule,
    Schedule,
    next_transitions,
    status,
    transitions,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
WEEKDAYS_MO_TH = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH"
NO_HOLIDAYS = HolidayPolicy(country=None, categories=())


def local(text: str) -> datetime:
    """`local("2026-03-30 08:00")`: a Stockholm wall time as an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM).astimezone(UTC)


def office(*extra: Rule, holidays: HolidayPolicy | None = None, **kwargs: object) -> Schedule:
    """Monday to Thursday 08-17, Friday 08-15, public holidays and the de-facto ones closed."""
    rules = (
        Rule("open", WEEKDAYS_MO_TH, time(8), time(17)),
        Rule("open", "FREQ=WEEKLY;BYDAY=FR", time(8), time(15), label="Fredag"),
        *extra,
    )
    policy = holidays or HolidayPolicy("SE", ("public", "de_facto"))
    return Schedule(rules=rules, holidays=policy, **kwargs)  # type: ignore[arg-type]


def daily(starts: time, ends: time, **kwargs: object) -> Schedule:
    return Schedule(rules=(Rule("open", "FREQ=DAILY", starts, ends),), holidays=NO_HOLIDAYS, **kwargs)  # type: ignore[arg-type]


# --- Weekly rules and the examples of the style guide ---------------------------------------------


def test_it_is_closed_a_minute_before_monday_opens() -> None:
    result = status(office(), utc("2026-03-30 05:59"))  # 07:59 in Stockholm
    assert (result.open, result.reason, result.label) == (False, "outside_hours", None)
    assert result.until == utc("2026-03-30 06:00")


def test_it_is_open_on_monday_morning_until_five() -> None:
    result = status(office(), utc("2026-03-30 06:00"))
    assert (result.open, result.reason) == (True, "open")
    assert result.until == local("2026-03-30 17:00")


def test_it_closes_fridays_at_three() -> None:
    schedule = office()
    before = status(schedule, local("2026-03-27 14:59"))
    assert (before.open, before.label, before.until) == (True, "Fredag", local("2026-03-27 15:00"))
    after = status(schedule, local("2026-03-27 15:00"))
    assert (after.open, after.reason) == (False, "outside_hours")
    assert after.until == local("2026-03-30 08:00")


def test_it_stays_closed_over_the_weekend() -> None:
    result = status(office(), local("2026-03-28 12:00"))
    assert not result.open
    assert result.until == local("2026-03-30 08:00")


def test_it_opens_over_midnight_with_a_night_rule() -> None:
    schedule = Schedule(
        rules=(Rule("open", "FREQ=WEEKLY;BYDAY=FR", time(22), time(6)),), holidays=NO_HOLIDAYS
    )
    assert status(schedule, local("2026-03-27 21:59")).open is False
    assert status(schedule, local("2026-03-28 05:59")).open is True
    assert status(schedule, local("2026-03-27 22:00")).until == local("2026-03-28 06:00")


def test_it_opens_all_day_from_midnight_to_midnight() -> None:
    schedule = daily(time(0), time(0))
    result = status(schedule, local("2026-05-05 12:00"))
    assert result.open and result.until is None


def test_it_is_closed_with_no_rules() -> None:
    result = status(Schedule(holidays=NO_HOLIDAYS), utc("2026-03-30 10:00"))
    assert (result.open, result.reason, result.until) == (False, "outside_hours", None)


def test_it_respects_valid_from_and_valid_until() -> None:
    rule = Rule(
        "open", "FREQ=DAILY", time(8), time(17), valid_from=date(2026, 4, 1), valid_until=date(2026, 4, 2)
    )
    schedule = Schedule(rules=(rule,), holidays=NO_HOLIDAYS)
    assert not status(schedule, local("2026-03-31 10:00")).open
    assert status(schedule, local("2026-04-01 10:00")).open
    assert status(schedule, local("2026-04-02 10:00")).open
    assert not status(schedule, local("2026-04-03 10:00")).open


def test_it_counts_every_other_week_from_valid_from() -> None:
    rule = Rule("open", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", time(8), time(17), valid_from=date(2026, 1, 5))
    schedule = Schedule(rules=(rule,), holidays=NO_HOLIDAYS)
    assert status(schedule, local("2026-03-30 10:00")).open  # 12 weeks after 5 January
    assert not status(schedule, local("2026-04-06 10:00")).open
    assert status(schedule, local("2026-04-13 10:00")).open


@pytest.mark.parametrize(
    "rrule",
    [
        "FREQ=DAILY;INTERVAL=3",
        "FREQ=DAILY;INTERVAL=7",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,TH",
        "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=10,31",
        "FREQ=YEARLY;INTERVAL=3",
    ],
)
def test_it_counts_intervals_from_the_default_anchor_of_2000(rrule: str) -> None:
    # DTSTART is 2000-01-03 (a Monday); the expansion starts near the year asked for, so check it
    # against dateutil expanding from the real anchor.
    schedule = Schedule(rules=(Rule("open", rrule, time(8), time(17)),), holidays=NO_HOLIDAYS)
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(730)]
    expected = {
        d.date()
        for d in rrulestr(rrule, dtstart=datetime(2000, 1, 3)).between(
            datetime(2026, 1, 1), datetime(2027, 12, 31), inc=True
        )
    }
    assert expected
    assert {d for d in days if status(schedule, local(f"{d} 12:00")).open} == expected


# --- Monthly and yearly rules ---------------------------------------------------------------------


def test_it_closes_the_first_monday_of_the_month_for_the_meeting() -> None:
    meeting = Rule("closed", "FREQ=MONTHLY;BYDAY=1MO", time(8), time(10), label="Personalmöte")
    schedule = office(meeting)
    during = status(schedule, local("2026-05-04 09:00"))  # the first Monday of May 2026
    assert (during.open, during.reason, during.label) == (False, "outside_hours", "Personalmöte")
    assert during.until == local("2026-05-04 10:00")
    assert status(schedule, local("2026-05-04 10:00")).open
    assert status(schedule, local("2026-05-11 09:00")).open  # the second Monday


def test_it_closes_every_24_december_with_a_yearly_rule() -> None:
    christmas_eve = Rule("closed", "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24", time(0), time(0), label="Julafton")
    schedule = office(christmas_eve, holidays=NO_HOLIDAYS)
    for day in ("2026-12-24", "2027-12-24"):  # a Thursday and a Friday
        result = status(schedule, local(f"{day} 10:00"))
        assert (result.open, result.reason, result.label) == (False, "outside_hours", "Julafton")
    assert status(schedule, local("2026-12-23 10:00")).open


# --- Daylight saving time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "opens_utc", "closes_utc"),
    [
        ("2026-03-28", "2026-03-28 07:00", "2026-03-28 16:00"),  # CET
        ("2026-03-29", "2026-03-29 06:00", "2026-03-29 15:00"),  # the change day: CEST from 03:00
        ("2026-10-25", "2026-10-25 07:00", "2026-10-25 16:00"),  # the change day: CET from 03:00
        ("2026-10-24", "2026-10-24 06:00", "2026-10-24 15:00"),  # CEST
        ("2027-03-27", "2027-03-27 07:00", "2027-03-27 16:00"),  # CET
        ("2027-03-28", "2027-03-28 06:00", "2027-03-28 15:00"),  # the change day, Easter Sunday too
        ("2027-10-30", "2027-10-30 06:00", "2027-10-30 15:00"),  # CEST
        ("2027-10-31", "2027-10-31 07:00", "2027-10-31 16:00"),  # the change day: CET from 03:00
    ],
)
def test_it_opens_eight_to_five_local_on_dst_change_days(day: str, opens_utc: str, closes_utc: str) -> None:
    schedule = daily(time(8), time(17))
    assert not status(schedule, utc(opens_utc) - timedelta(seconds=1)).open
    opened = status(schedule, utc(opens_utc))
    assert opened.open and opened.until == utc(closes_utc)
    assert not status(schedule, utc(closes_utc)).open


def test_it_moves_a_start_in_the_skipped_hour_forward_by_the_gap() -> None:
    # 02:30 does not exist on 2026-03-29; it is read as 02:30+01:00, which is 03:30 CEST.
    schedule = daily(time(2, 30), time(4))
    assert not status(schedule, utc("2026-03-29 01:29")).open
    opened = status(schedule, utc("2026-03-29 01:30"))
    assert opened.open and opened.until == utc("2026-03-29 02:00")  # 04:00 CEST


def test_it_drops_a_window_that_lies_wholly_in_the_skipped_hour() -> None:
    # 02:30-03:00 becomes 03:30-03:00 CEST: empty, so closed all night.
    schedule = daily(time(2, 30), time(3))
    night = transitions(schedule, utc("2026-03-28 22:00"), utc("2026-03-29 22:00"))
    assert night == []
    assert not status(schedule, utc("2026-03-29 01:45")).open


def test_it_takes_the_first_of_a_repeated_hour() -> None:
    # 02:30 happens twice on 2026-10-25; the window starts at the first (CEST, 00:30 UTC) and
    # ends at 03:30 CET (02:30 UTC): two hours of real time.
    schedule = daily(time(2, 30), time(3, 30))
    assert not status(schedule, utc("2026-10-25 00:29")).open
    opened = status(schedule, utc("2026-10-25 00:30"))
    assert opened.open and opened.until == utc("2026-10-25 02:30")


def test_it_is_open_for_25_hours_over_the_autumn_change_with_a_whole_day_rule() -> None:
    schedule = Schedule(
        rules=(Rule("open", "FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=25", time(0), time(0)),), holidays=NO_HOLIDAYS
    )
    opened = status(schedule, local("2026-10-25 00:00"))
    assert opened.until is not None
    assert opened.until - local("2026-10-25 00:00") == timedelta(hours=25)


# --- Holidays -------------------------------------------------------------------------------------


def test_it_uses_the_holiday_dates_we_rely_on() -> None:
    in_2026 = hours.holidays_of_year("SE", None, None, 2026)
    in_2027 = hours.holidays_of_year("SE", None, None, 2027)
    names = {d: {h.name for h in entries} for d, entries in (in_2026 | in_2027).items()}
    assert "Långfredagen" in names[date(2026, 4, 3)]
    assert "Annandag påsk" in names[date(2026, 4, 6)]
    assert "Midsommarafton" in names[date(2026, 6, 19)]
    assert "Långfredagen" in names[date(2027, 3, 26)]
    assert "Annandag påsk" in names[date(2027, 3, 29)]
    assert "Midsommarafton" in names[date(2027, 6, 25)]
    # Sundays are not holidays: the weekly rules decide them.
    assert date(2026, 3, 29) not in in_2026


@pytest.mark.parametrize(
    ("day", "name"),
    [
        ("2026-04-03", "Långfredagen"),
        ("2026-04-06", "Annandag påsk"),
        ("2026-06-19", "Midsommarafton"),
        ("2027-03-26", "Långfredagen"),
        ("2027-03-29", "Annandag påsk"),
        ("2027-06-25", "Midsommarafton"),
        ("2027-05-06", "Kristi himmelsfärdsdag"),
        ("2026-04-05", "Påskdagen"),
        ("2027-03-28", "Påskdagen"),  # the spring DST change day as well
        ("2026-06-20", "Midsommardagen"),
        ("2027-06-26", "Midsommardagen"),
    ],
)
def test_it_closes_on_easter_and_midsummer(day: str, name: str) -> None:
    result = status(office(), local(f"{day} 10:00"))
    assert (result.open, result.reason, result.label) == (False, "holiday", name)
    # Closed at least to the next local midnight (23 hours after this one on 2027-03-28).
    next_midnight = local(f"{date.fromisoformat(day) + timedelta(days=1)} 00:00")
    assert result.until is not None and result.until >= next_midnight


def test_it_stays_open_on_midsummer_eve_when_de_facto_holidays_are_not_chosen() -> None:
    result = status(office(holidays=HolidayPolicy("SE", ("public",))), local("2026-06-19 10:00"))
    assert (result.open, result.label) == (True, "Fredag")


def test_it_is_open_on_sundays_with_a_daily_rule_and_public_holidays() -> None:
    schedule = Schedule(
        rules=(Rule("open", "FREQ=DAILY", time(8), time(17)),), holidays=HolidayPolicy("SE", ("public",))
    )
    assert status(schedule, local("2026-03-29 10:00")).open  # an ordinary Sunday


def test_it_keeps_the_queue_open_on_a_holiday_a_per_name_override_opens() -> None:
    policy = HolidayPolicy("SE", ("public", "de_facto"), overrides=(("Annandag påsk", False),))
    result = status(office(holidays=policy), local("2026-04-06 10:00"))
    assert (result.open, result.reason) == (True, "open")
    assert not status(office(holidays=policy), local("2026-04-03 10:00")).open


def test_it_matches_an_override_by_its_english_name_too() -> None:
    policy = HolidayPolicy("SE", ("public",), overrides=(("easter monday", False),))
    assert status(office(holidays=policy), local("2027-03-29 10:00")).open


def test_it_closes_one_de_facto_holiday_chosen_by_name() -> None:
    policy = HolidayPolicy("SE", ("public",), overrides=(("Julafton", True),))
    result = status(office(holidays=policy), local("2026-12-24 10:00"))
    assert (result.open, result.label) == (False, "Julafton")
    assert status(office(holidays=policy), local("2026-12-31 10:00")).open  # Nyårsafton stays open


def test_it_closes_from_two_on_a_bank_half_day() -> None:
    schedule = office(holidays=HolidayPolicy("SE", ("public", "bank")))
    assert status(schedule, local("2026-04-02 13:59")).open  # Skärtorsdagen
    result = status(schedule, local("2026-04-02 14:00"))
    assert (result.open, result.reason) == (False, "holiday")
    assert result.label == "Skärtorsdagen (från kl. 14.00)"


def test_it_names_holidays_in_english_when_asked() -> None:
    result = status(
        office(holidays=HolidayPolicy("SE", ("public",), language="en_US")), local("2026-04-03 10:00")
    )
    assert result.label == "Good Friday"


def test_it_refuses_an_unknown_country() -> None:
    with pytest.raises(HoursError, match="country"):
        HolidayPolicy("XX")


# --- Exceptions -----------------------------------------------------------------------------------


def test_it_opens_only_the_short_hours_of_an_exception_day() -> None:
    schedule = office(exceptions=(DayException(date(2026, 4, 8), time(9), time(12), "Inventering"),))
    early = status(schedule, local("2026-04-08 08:30"))
    assert (early.open, early.reason, early.label, early.until) == (
        False,
        "exception",
        "Inventering",
        local("2026-04-08 09:00"),
    )
    during = status(schedule, local("2026-04-08 10:00"))
    assert (during.open, during.label, during.until) == (True, "Inventering", local("2026-04-08 12:00"))
    late = status(schedule, local("2026-04-08 12:00"))
    assert (late.open, late.reason) == (False, "exception")
    assert late.until == local("2026-04-09 00:00")  # from midnight the reason is outside_hours


def test_it_lets_an_exception_beat_a_holiday() -> None:
    schedule = office(exceptions=(DayException(date(2026, 4, 3), time(10), time(14), "Jour"),))
    assert status(schedule, local("2026-04-03 11:00")).open


def test_it_closes_an_exception_day_all_day() -> None:
    schedule = office(exceptions=(DayException(date(2026, 4, 8), label="Flytt"),))
    result = status(schedule, local("2026-04-08 10:00"))
    assert (result.open, result.reason, result.label) == (False, "exception", "Flytt")


def test_it_refuses_an_exception_that_closes_before_it_opens() -> None:
    with pytest.raises(HoursError, match="closes before it opens"):
        DayException(date(2026, 4, 8), time(12), time(9))


# --- Temporary closures ---------------------------------------------------------------------------


def test_it_closes_for_an_active_closure_with_its_message() -> None:
    closure = Closure(utc("2026-03-30 07:00"), utc("2026-03-30 09:00"), "Vi är på utbildning.", "Utbildning")
    result = status(office(closures=(closure,)), utc("2026-03-30 08:00"))
    assert (result.open, result.reason, result.label) == (False, "closure", "Utbildning")
    assert result.closure_message == "Vi är på utbildning."
    assert result.until == utc("2026-03-30 09:00")
    assert status(office(closures=(closure,)), utc("2026-03-30 09:00")).open


def test_it_reopens_when_a_closure_is_ended_early() -> None:
    closure = Closure(
        utc("2026-03-30 07:00"), utc("2026-03-30 12:00"), ended_early_at=utc("2026-03-30 08:30")
    )
    schedule = office(closures=(closure,))
    assert status(schedule, utc("2026-03-30 08:00")).until == utc("2026-03-30 08:30")
    assert status(schedule, utc("2026-03-30 08:45")).open


def test_it_stays_closed_until_an_open_ended_closure_is_ended() -> None:
    closure = Closure(utc("2026-03-30 07:00"), None, "Stängt tills vidare")
    schedule = office(closures=(closure,))
    result = status(schedule, utc("2026-04-20 10:00"))
    assert (result.open, result.reason, result.until) == (False, "closure", None)
    assert next_transitions(schedule, utc("2026-03-30 07:30")) == []


def test_it_lets_a_closure_beat_an_exception_and_a_holiday() -> None:
    closure = Closure(local("2026-04-03 00:00"), local("2026-04-09 00:00"), reason="Renovering")
    schedule = office(closures=(closure,), exceptions=(DayException(date(2026, 4, 8), time(9), time(12)),))
    assert status(schedule, local("2026-04-03 10:00")).reason == "closure"
    assert status(schedule, local("2026-04-08 10:00")).reason == "closure"


def test_it_does_not_close_before_a_closure_starts() -> None:
    closure = Closure(utc("2026-03-30 12:00"), utc("2026-03-30 13:00"))
    result = status(office(closures=(closure,)), utc("2026-03-30 10:00"))
    assert result.open and result.until == utc("2026-03-30 12:00")


# --- The preview ----------------------------------------------------------------------------------


def _preview(schedule: Schedule, at: datetime, count: int) -> list[tuple[str, bool, str, str | None]]:
    return [
        (t.at.astimezone(STOCKHOLM).strftime("%a %Y-%m-%d %H:%M"), t.opens, t.reason, t.label)
        for t in next_transitions(schedule, at, count)
    ]


def test_it_previews_easter_with_the_holiday_names() -> None:
    assert _preview(office(), local("2026-04-02 10:00"), 7) == [
        ("Thu 2026-04-02 17:00", False, "outside_hours", None),
        ("Fri 2026-04-03 00:00", False, "holiday", "Långfredagen"),
        ("Sat 2026-04-04 00:00", False, "outside_hours", None),
        ("Sun 2026-04-05 00:00", False, "holiday", "Påskdagen"),
        ("Mon 2026-04-06 00:00", False, "holiday", "Annandag påsk"),
        ("Tue 2026-04-07 00:00", False, "outside_hours", None),
        ("Tue 2026-04-07 08:00", True, "open", None),
    ]


def test_it_previews_easter_2027_across_the_spring_dst_change() -> None:
    # Easter Sunday 2027 is the day the clocks go forward: nothing changes at 02:00, and the
    # Tuesday opens at 08:00 CEST (06:00 UTC) where the Thursday closed at 17:00 CET (16:00 UTC).
    assert _preview(office(), local("2027-03-25 10:00"), 7) == [
        ("Thu 2027-03-25 17:00", False, "outside_hours", None),
        ("Fri 2027-03-26 00:00", False, "holiday", "Långfredagen"),
        ("Sat 2027-03-27 00:00", False, "outside_hours", None),
        ("Sun 2027-03-28 00:00", False, "holiday", "Påskdagen"),
        ("Mon 2027-03-29 00:00", False, "holiday", "Annandag påsk"),
        ("Tue 2027-03-30 00:00", False, "outside_hours", None),
        ("Tue 2027-03-30 08:00", True, "open", None),
    ]
    found = next_transitions(office(), local("2027-03-25 10:00"), 7)
    assert (found[0].at, found[-1].at) == (utc("2027-03-25 16:00"), utc("2027-03-30 06:00"))
    assert found[4].at - found[3].at == timedelta(hours=23)  # the short Sunday


@pytest.mark.parametrize(
    ("thursday", "eve", "day", "sunday", "monday"),
    [
        ("2026-06-18", "2026-06-19", "2026-06-20", "2026-06-21", "2026-06-22"),
        ("2027-06-24", "2027-06-25", "2027-06-26", "2027-06-27", "2027-06-28"),
    ],
)
def test_it_previews_midsummer_with_its_reasons(
    thursday: str, eve: str, day: str, sunday: str, monday: str
) -> None:
    def on(d: str, hm: str) -> str:
        return local(f"{d} {hm}").astimezone(STOCKHOLM).strftime("%a %Y-%m-%d %H:%M")

    assert _preview(office(), local(f"{thursday} 10:00"), 5) == [
        (on(thursday, "17:00"), False, "outside_hours", None),
        (on(eve, "00:00"), False, "holiday", "Midsommarafton"),
        (on(day, "00:00"), False, "holiday", "Midsommardagen"),
        (on(sunday, "00:00"), False, "outside_hours", None),
        (on(monday, "08:00"), True, "open", None),
    ]


def test_it_previews_the_first_monday_meeting_and_a_yearly_closed_day() -> None:
    meeting = Rule("closed", "FREQ=MONTHLY;BYDAY=1MO", time(8), time(10), label="Personalmöte")
    assert _preview(office(meeting), local("2027-01-29 10:00"), 3) == [
        ("Fri 2027-01-29 15:00", False, "outside_hours", None),
        ("Mon 2027-02-01 08:00", False, "outside_hours", "Personalmöte"),  # first Monday of February
        ("Mon 2027-02-01 10:00", True, "open", None),
    ]
    stocktaking = Rule(
        "closed", "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=23", time(0), time(0), label="Inventering"
    )
    assert _preview(office(stocktaking, holidays=NO_HOLIDAYS), local("2027-12-22 10:00"), 3) == [
        ("Wed 2027-12-22 17:00", False, "outside_hours", None),
        ("Thu 2027-12-23 00:00", False, "outside_hours", "Inventering"),
        ("Fri 2027-12-24 00:00", False, "outside_hours", None),
    ]


def test_it_previews_a_friday_closing_at_three() -> None:
    assert _preview(office(), local("2026-03-27 10:00"), 2) == [
        ("Fri 2026-03-27 15:00", False, "outside_hours", None),
        ("Mon 2026-03-30 08:00", True, "open", None),
    ]


def test_it_previews_a_closure_and_its_end() -> None:
    closure = Closure(local("2026-03-30 12:00"), local("2026-03-30 14:00"), "Åter 14", "Lunchmöte")
    assert _preview(office(closures=(closure,)), local("2026-03-30 10:00"), 3) == [
        ("Mon 2026-03-30 12:00", False, "closure", "Lunchmöte"),
        ("Mon 2026-03-30 14:00", True, "open", None),
        ("Mon 2026-03-30 17:00", False, "outside_hours", None),
    ]


def test_it_lists_transitions_in_a_range_excluding_its_start() -> None:
    schedule = office()
    found = transitions(schedule, local("2026-03-30 08:00"), local("2026-03-31 08:00"))
    assert [t.at for t in found] == [local("2026-03-30 17:00"), local("2026-03-31 08:00")]


# --- Errors and speed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rrule", "message"),
    [
        ("FREQ=HOURLY", "FREQ must be"),
        ("FREQ=DAILY;BYHOUR=8", "BYHOUR is not allowed"),
        ("FREQ=WEEKLY;BYDAY=XX", "RRULE"),
        ("BYDAY=MO", "FREQ must be"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
        ("FREQ=DAILY;UNTIL=2026", "UNTIL"),
        ("FREQ=DAILY;;COUNT", "NAME=VALUE"),
    ],
)
def test_it_refuses_a_bad_rrule(rrule: str, message: str) -> None:
    with pytest.raises(HoursError, match=message):
        Rule("open", rrule, time(8), time(17))


def test_it_accepts_an_rrule_prefix_and_a_utc_until() -> None:
    rule = Rule("open", "RRULE:FREQ=DAILY;UNTIL=20260401T215959Z", time(8), time(17))
    schedule = Schedule(rules=(rule,), holidays=NO_HOLIDAYS)
    assert status(schedule, local("2026-04-01 10:00")).open
    assert not status(schedule, local("2026-04-02 10:00")).open


def test_it_refuses_a_naive_instant() -> None:
    with pytest.raises(HoursError, match="aware"):
        status(office(), datetime(2026, 3, 30, 8, 0))


def test_it_refuses_an_unknown_time_zone() -> None:
    with pytest.raises(HoursError, match="time zone"):
        Schedule(timezone="Europe/Atlantis")


def test_it_answers_a_status_in_well_under_a_millisecond_once_warm() -> None:
    meeting = Rule("closed", "FREQ=MONTHLY;BYDAY=1MO", time(8), time(10), label="Personalmöte")
    schedule = office(meeting, closures=(Closure(utc("2026-05-01 00:00"), utc("2026-05-02 00:00")),))
    at = local("2026-04-09 10:00")
    status(schedule, at)
    began = clock_time.perf_counter()
    for _ in range(1000):
        status(schedule, at)
    assert clock_time.perf_counter() - began < 1.0  # about 20 ms on the dev box


# --- Properties -----------------------------------------------------------------------------------

RRULES = [
    "FREQ=DAILY",
    "FREQ=DAILY;INTERVAL=3",
    "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "FREQ=WEEKLY;BYDAY=FR",
    "FREQ=WEEKLY;BYDAY=SA,SU",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU",
    "FREQ=MONTHLY;BYDAY=1MO",
    "FREQ=MONTHLY;BYMONTHDAY=15,-1",
    "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
    "FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU",  # the DST Sundays
    "FREQ=DAILY;INTERVAL=7",
    "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=10,20",
]
WINDOWS = [
    (datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 12, tzinfo=UTC)),
    (datetime(2026, 6, 15, tzinfo=UTC), datetime(2026, 6, 28, tzinfo=UTC)),
    (datetime(2026, 10, 18, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)),
    (datetime(2026, 12, 20, tzinfo=UTC), datetime(2027, 1, 8, tzinfo=UTC)),
    # 2027: Easter on the spring DST change day, Midsummer, the autumn change.
    (datetime(2027, 3, 20, tzinfo=UTC), datetime(2027, 4, 3, tzinfo=UTC)),
    (datetime(2027, 6, 20, tzinfo=UTC), datetime(2027, 6, 30, tzinfo=UTC)),
    (datetime(2027, 10, 24, tzinfo=UTC), datetime(2027, 11, 4, tzinfo=UTC)),
]

wall_times = st.one_of(
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    st.sampled_from([time(0), time(2), time(2, 30), time(3), time(8), time(17)]),
)
rules = st.builds(
    Rule,
    effect=st.sampled_from(["open", "open", "closed"]),
    rrule=st.sampled_from(RRULES),
    starts=wall_times,
    ends=wall_times,
    valid_from=st.one_of(st.none(), st.dates(date(2025, 6, 1), date(2026, 12, 1))),
    label=st.sampled_from([None, "A", "B"]),
)
policies = st.one_of(
    st.just(NO_HOLIDAYS),
    st.builds(
        HolidayPolicy,
        country=st.just("SE"),
        categories=st.sampled_from([(), ("public",), ("public", "de_facto"), ("public", "bank")]),
        overrides=st.sampled_from([(), (("Annandag påsk", False),), (("Julafton", True),)]),
    ),
)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    start, end = draw(st.sampled_from(WINDOWS))
    minutes = draw(st.integers(0, int((end - start).total_seconds() // 60)))
    return start + timedelta(minutes=minutes)


@st.composite
def exceptions(draw: st.DrawFn) -> DayException:
    at = draw(instants())
    day = at.astimezone(STOCKHOLM).date()
    if draw(st.booleans()):
        return DayException(day, label=draw(st.sampled_from([None, "X"])))
    opens = draw(st.builds(time, st.integers(0, 22), st.sampled_from([0, 30])))
    closes = draw(st.builds(time, st.integers(opens.hour + 1, 23)))
    return DayException(day, opens, closes, draw(st.sampled_from([None, "X"])))


@st.composite
def closures(draw: st.DrawFn) -> Closure:
    starts = draw(instants())
    length = draw(st.one_of(st.none(), st.integers(1, 72 * 60)))
    ends = None if length is None else starts + timedelta(minutes=length)
    early = draw(st.one_of(st.none(), st.integers(0, 48 * 60)))
    return Closure(
        starts,
        ends,
        message=draw(st.sampled_from([None, "M"])),
        reason=draw(st.sampled_from([None, "R1", "R2"])),
        ended_early_at=None if early is None else starts + timedelta(minutes=early),
    )


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    drawn_exceptions = draw(st.lists(exceptions(), max_size=2, unique_by=lambda e: e.day))
    return Schedule(
        rules=tuple(draw(st.lists(rules, max_size=4))),
        holidays=draw(policies),
        exceptions=tuple(drawn_exceptions),
        closures=tuple(draw(st.lists(closures(), max_size=2))),
    )


def _state(s: hours.HoursStatus) -> tuple[bool, str, str | None, str | None]:
    return (s.open, s.reason, s.label, s.closure_message)


def _tstate(t: hours.Transition) -> tuple[bool, str, str | None, str | None]:
    return (t.opens, t.reason, t.label, t.closure_message)


PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(schedules(), instants(), st.integers(1, 72))
def test_it_agrees_with_its_transitions(schedule: Schedule, start: datetime, hours_ahead: int) -> None:
    end = start + timedelta(hours=hours_ahead)
    found = transitions(schedule, start, end)
    assert [t.at for t in found] == sorted({t.at for t in found})
    before = status(schedule, start)
    previous = _state(before)
    previous_at = start
    for t in found:
        assert start < t.at <= end
        assert _tstate(t) != previous, "a transition changes something"
        # Constant up to the transition, and the transition's state from it on.
        middle = previous_at + (t.at - previous_at) / 2
        assert _state(status(schedule, middle)) == previous
        assert _state(status(schedule, t.at - timedelta(microseconds=1))) == previous
        assert _state(status(schedule, t.at)) == _tstate(t)
        previous, previous_at = _tstate(t), t.at
    if found:
        assert before.until == found[0].at
    else:
        assert before.until is None or before.until > end


@PROPERTY_SETTINGS
@given(schedules(), instants())
def test_it_agrees_with_a_plain_reading_of_the_rules(schedule: Schedule, at: datetime) -> None:
    assert status(schedule, at).open == _oracle_open(schedule, at)


@functools.lru_cache(maxsize=4096)
def _oracle_occurs(rrule: str, anchor: date, day: date) -> bool:
    recurrence = rrulestr(hours.parse_rrule(rrule).text, dtstart=datetime.combine(anchor, time(0)))
    midnight = datetime.combine(day, time(0))
    return bool(recurrence.between(midnight, midnight, inc=True))


def _oracle_open(schedule: Schedule, at: datetime) -> bool:
    """The precedence read literally, expanding each RRULE from its real anchor with dateutil."""
    if any(
        c.starts_at <= at and (c.effective_end is None or at < c.effective_end) for c in schedule.closures
    ):
        return False
    tz = ZoneInfo(schedule.timezone)
    day = at.astimezone(tz).date()
    exception = {e.day: e for e in schedule.exceptions}.get(day)
    if exception is not None:
        if exception.opens is None or exception.closes is None:
            return False
        opens = datetime.combine(day, exception.opens, tzinfo=tz)
        closes = datetime.combine(day, exception.closes, tzinfo=tz)
        return opens.astimezone(UTC) <= at < closes.astimezone(UTC)
    holiday = hours.closing_holiday(schedule.holidays, day)
    if holiday is not None:
        if holiday.from_time is None:
            return False
        if at >= datetime.combine(day, holiday.from_time, tzinfo=tz).astimezone(UTC):
            return False
    midnight = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    effects = set()
    for rule in schedule.rules:
        for occurrence in (day - timedelta(days=1), day):
            if not _oracle_occurs(rule.rrule, rule.valid_from or date(2000, 1, 3), occurrence):
                continue
            if rule.valid_until and occurrence > rule.valid_until:
                continue
            starts = datetime.combine(occurrence, rule.starts, tzinfo=tz).astimezone(UTC)
            end_day = occurrence if rule.ends > rule.starts else occurrence + timedelta(days=1)
            ends = datetime.combine(end_day, rule.ends, tzinfo=tz).astimezone(UTC)
            if max(starts, midnight) <= at < ends:
                effects.add(rule.effect)
    return "closed" not in effects and "open" in effects


def test_it_keeps_an_always_open_queue_open_until_its_next_closure_quickly() -> None:
    """A queue without a schedule is open around the clock; only closures change that."""
    closure = Closure(utc("2026-12-18 11:00"), utc("2026-12-18 15:00"), "Julbord", "Julbord")
    schedule = dataclasses.replace(hours.ALWAYS_OPEN, closures=(closure,))
    at = utc("2026-12-01 09:00")
    found = hours.status(schedule, at)
    assert (found.open, found.reason, found.until) == (True, "open", closure.starts_at)
    # The fast path says what the full timeline says.
    first = hours.transitions(schedule, at, at + timedelta(days=30))[0]
    assert (first.at, first.opens, first.reason) == (closure.starts_at, False, "closure")
    during = hours.status(schedule, utc("2026-12-18 12:00"))
    assert (during.open, during.reason, during.until) == (False, "closure", closure.effective_end)
    after = hours.status(schedule, utc("2026-12-18 15:00"))
    assert (after.open, after.until) == (True, None)
