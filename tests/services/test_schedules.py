"""Opening hours from real rows, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, time

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from queue_app.clock import utc
from queue_app.domain import ical
from queue_app.extensions import db
from queue_app.models import (
    Closure,
    ClosureQueue,
    HolidayChoice,
    Organisation,
    Queue,
    Schedule,
    ScheduleException,
    ScheduleRule,
)
from queue_app.services import schedules

from ..factories import make_org, make_queue

ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example//EN\r
BEGIN:VEVENT\r
UID:one@example\r
DTSTART;TZID=Europe/Stockholm:20260619T000000\r
DTEND;TZID=Europe/Stockholm:20260620T000000\r
SUMMARY:Midsommar\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:two@example\r
DTSTART:20260701T060000Z\r
DTEND:20260701T080000Z\r
SUMMARY:Brandövning\r
DESCRIPTION:Vi övar utrymning.\r
END:VEVENT\r
END:VCALENDAR\r
"""


def make_office_schedule(session: Session, org: Organisation, **overrides: object) -> Schedule:
    values: dict[str, object] = {
        "organisation_id": org.id,
        "name": "Kontorstid",
        "holiday_categories": ["public"],
    }
    schedule = Schedule(**(values | overrides))
    schedule.rules = [
        ScheduleRule(
            position=0, effect="open", rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH", starts=time(8), ends=time(17)
        ),
        ScheduleRule(
            position=1,
            effect="open",
            rrule="FREQ=WEEKLY;BYDAY=FR",
            starts=time(8),
            ends=time(15),
            label="Fredag",
        ),
        ScheduleRule(
            position=2,
            effect="closed",
            rrule="FREQ=MONTHLY;BYDAY=1MO",
            starts=time(8),
            ends=time(10),
            label="Personalmöte",
        ),
    ]
    session.add(schedule)
    session.flush()
    return schedule


def office_queue(session: Session) -> tuple[Organisation, Queue]:
    org = make_org(session)
    schedule = make_office_schedule(session, org)
    return org, make_queue(session, org, schedule_id=schedule.id)


def test_it_answers_the_status_from_the_rows(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        _, queue = office_queue(session)
        closed = schedules.queue_hours_status(session, queue.id, utc("2026-03-30 05:59"))
        assert (closed.open, closed.reason, closed.until) == (False, "outside_hours", utc("2026-03-30 06:00"))
        assert schedules.queue_hours_status(session, queue.id, utc("2026-03-30 08:30")).open
        meeting = schedules.queue_hours_status(session, queue.id, utc("2026-05-04 07:00"))
        assert (meeting.open, meeting.label) == (False, "Personalmöte")


def test_it_closes_on_holidays_of_the_schedules_categories_and_choices(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        _, queue = office_queue(session)
        assert queue.schedule is not None
        queue.schedule.holiday_choices = [
            HolidayChoice(holiday_name="Annandag påsk", closed=False),
            HolidayChoice(holiday_name="Midsommarafton", closed=True),
        ]
        session.flush()
        good_friday = schedules.queue_hours_status(session, queue.id, utc("2026-04-03 08:00"))
        assert (good_friday.open, good_friday.reason, good_friday.label) == (False, "holiday", "Långfredagen")
        assert schedules.queue_hours_status(session, queue.id, utc("2026-04-06 08:00")).open
        midsummer_eve = schedules.queue_hours_status(session, queue.id, utc("2027-06-25 08:00"))
        assert midsummer_eve.label == "Midsommarafton"


def test_it_uses_the_schedules_time_zone_before_the_organisations(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        org = make_org(session, timezone="Europe/London", holiday_country="GB")
        schedule = make_office_schedule(session, org, holiday_categories=[])
        queue = make_queue(session, org, schedule_id=schedule.id)
        # 08:30 in London is 07:30 UTC in March before the UK change (2026-03-29).
        assert schedules.queue_hours_status(session, queue.id, utc("2026-03-23 08:30")).open
        schedule.timezone = "Europe/Stockholm"
        session.flush()
        assert schedules.queue_hours_status(session, queue.id, utc("2026-03-23 07:30")).open
        assert not schedules.queue_hours_status(session, queue.id, utc("2026-03-23 06:30")).open


def test_it_applies_an_exception_day(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        _, queue = office_queue(session)
        assert queue.schedule_id is not None
        session.add(
            ScheduleException(
                schedule_id=queue.schedule_id,
                day=date(2026, 4, 8),
                opens=time(9),
                closes=time(12),
                label="Inventering",
            )
        )
        session.flush()
        early = schedules.queue_hours_status(session, queue.id, utc("2026-04-08 06:30"))
        assert (early.open, early.reason, early.label) == (False, "exception", "Inventering")
        assert schedules.queue_hours_status(session, queue.id, utc("2026-04-08 08:00")).open


def test_it_closes_for_closures_of_this_queue_or_all_queues_only(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        org, queue = office_queue(session)
        other = make_queue(session, org, schedule_id=queue.schedule_id)
        elsewhere = make_org(session)
        session.add(Closure(organisation_id=elsewhere.id, all_queues=True, starts_at=utc("2026-03-30 06:00")))
        mine = Closure(
            organisation_id=org.id,
            starts_at=utc("2026-03-30 07:00"),
            ends_at=utc("2026-03-30 09:00"),
            reason="Möte",
            message="Åter 11",
        )
        session.add(mine)
        session.flush()
        session.add(ClosureQueue(closure_id=mine.id, queue_id=queue.id))
        session.flush()
        during = schedules.queue_hours_status(session, queue.id, utc("2026-03-30 08:00"))
        assert (during.open, during.reason, during.label, during.closure_message) == (
            False,
            "closure",
            "Möte",
            "Åter 11",
        )
        assert during.until == utc("2026-03-30 09:00")
        assert schedules.queue_hours_status(session, other.id, utc("2026-03-30 08:00")).open

        everywhere = Closure(
            organisation_id=org.id, all_queues=True, starts_at=utc("2026-03-31 07:00"), reason="Strömavbrott"
        )
        session.add(everywhere)
        session.flush()
        for queue_id in (queue.id, other.id):
            result = schedules.queue_hours_status(session, queue_id, utc("2026-04-01 08:00"))
            assert (result.reason, result.until) == ("closure", None)
        everywhere.ended_early_at = utc("2026-04-01 09:00")
        session.flush()
        assert schedules.queue_hours_status(session, other.id, utc("2026-04-01 09:00")).open


def test_it_keeps_a_queue_without_schedule_open_except_for_closures(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        org = make_org(session)
        queue = make_queue(session, org)
        result = schedules.queue_hours_status(session, queue.id, utc("2026-04-03 02:00"))
        assert (result.open, result.until) == (True, None)
        session.add(Closure(organisation_id=org.id, all_queues=True, starts_at=utc("2026-04-03 03:00")))
        session.flush()
        assert (
            schedules.next_transitions(session, queue.id, utc("2026-04-03 02:00"), 5)[0].reason == "closure"
        )


def test_it_previews_the_next_transitions(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        _, queue = office_queue(session)
        found = schedules.next_transitions(session, queue.id, utc("2026-04-02 08:00"), 3)
        assert [(t.at, t.opens, t.reason, t.label) for t in found] == [
            (utc("2026-04-02 15:00"), False, "outside_hours", None),
            (utc("2026-04-02 22:00"), False, "holiday", "Långfredagen"),
            (utc("2026-04-03 22:00"), False, "outside_hours", None),
        ]


def test_it_refuses_an_unknown_queue(app: Flask) -> None:
    with app.app_context(), db.transaction() as session, pytest.raises(schedules.UnknownQueue):
        schedules.queue_hours_status(session, 424242, utc("2026-04-02 08:00"))


def test_it_reports_a_broken_rule_by_its_schedules_name(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        _, queue = office_queue(session)
        assert queue.schedule is not None
        queue.schedule.rules[0].rrule = "FREQ=HOURLY"
        session.flush()
        with pytest.raises(schedules.ScheduleError, match=r"Kontorstid.*FREQ"):
            schedules.queue_hours_status(session, queue.id, utc("2026-04-02 08:00"))


def test_it_serves_the_queues_calendar(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        org, queue = office_queue(session)
        closure = Closure(
            organisation_id=org.id,
            all_queues=True,
            starts_at=utc("2026-04-20 06:00"),
            ends_at=utc("2026-04-20 10:00"),
            reason="Utbildning",
        )
        session.add(closure)
        session.flush()
        text = schedules.queue_ics(session, queue.id, utc("2026-03-25 09:00"))
    calendar = ical.parse_ics(text)
    found = [c for c in calendar.components if c.name == "VEVENT"]
    rrules = {p.value for e in found for p in e.all("RRULE")}
    assert rrules == {"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH", "FREQ=WEEKLY;BYDAY=FR", "FREQ=MONTHLY;BYDAY=1MO"}
    closures = [
        e
        for e in found
        if e.first("UID") and e.first("UID").value == f"closure-{closure.id}@queue-{queue.id}.{org.slug}.koe"
    ]  # type: ignore[union-attr]
    assert len(closures) == 1
    assert calendar.first("X-WR-CALNAME").value == queue.name  # type: ignore[union-attr]


def _closures(session: Session, org_id: int) -> list[Closure]:
    return list(
        session.scalars(select(Closure).where(Closure.organisation_id == org_id).order_by(Closure.starts_at))
    )


def test_it_imports_two_closures_for_the_chosen_queues(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        org, queue = office_queue(session)
        result = schedules.import_closures_ics(session, org.id, ICS, [queue.id], utc("2026-06-01 00:00"))
        assert (len(result.created_ids), result.skipped_past, result.skipped_duplicates) == (2, 0, 0)
        first, second = _closures(session, org.id)
        assert (first.starts_at, first.ends_at, first.reason, first.all_queues) == (
            utc("2026-06-18 22:00"),
            utc("2026-06-19 22:00"),
            "Midsommar",
            False,
        )
        assert second.message == "Vi övar utrymning."
        assert [q.id for q in first.queues] == [queue.id]
        during = schedules.queue_hours_status(session, queue.id, utc("2026-07-01 07:00"))
        assert (during.reason, during.label, during.closure_message) == (
            "closure",
            "Brandövning",
            "Vi övar utrymning.",
        )


def test_it_imports_for_all_queues_and_skips_past_and_duplicate_events(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        org, _ = office_queue(session)
        first = schedules.import_closures_ics(session, org.id, ICS, None, utc("2026-06-25 00:00"))
        assert (len(first.created_ids), first.skipped_past) == (1, 1)
        again = schedules.import_closures_ics(session, org.id, ICS, None, utc("2026-06-25 00:00"))
        assert (again.created_ids, again.skipped_duplicates) == ([], 1)
        (closure,) = _closures(session, org.id)
        assert closure.all_queues


def test_it_changes_nothing_when_the_file_is_malformed(app: Flask) -> None:
    broken = ICS.replace("DTEND:20260701T080000Z", "DTEND:20260701T08")
    with app.app_context(), db.transaction() as session:
        org, queue = office_queue(session)
        with pytest.raises(ical.IcsError, match="line 13") as raised:
            schedules.import_closures_ics(session, org.id, broken, [queue.id], utc("2026-06-01 00:00"))
        assert raised.value.line == 13
        assert session.scalar(select(func.count()).select_from(Closure)) == 0


def test_it_refuses_queues_of_another_organisation(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        org, _ = office_queue(session)
        _, foreign = office_queue(session)
        with pytest.raises(schedules.ScheduleError, match=str(foreign.id)):
            schedules.import_closures_ics(session, org.id, ICS, [foreign.id], utc("2026-06-01 00:00"))
        assert session.scalar(select(func.count()).select_from(Closure)) == 0
