"""Opening hours editor (rules, holidays, custom dates, preview) and temporary closures."""

from __future__ import annotations

import re
from datetime import date, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import Closure, Queue, Schedule, ScheduleException, ScheduleRule
from tests.factories import Personas, make_queue
from tests.web.test_admin_support import as_user, audit_actions, field_error, html, last_audit, post


@pytest.fixture
def schedule_id(app: Flask, personas: Personas) -> int:
    with app.app_context(), db.transaction() as session:
        schedule = Schedule(
            organisation_id=personas.alice.organisation_id,
            name="Kontor",
            holiday_categories=["public", "de_facto"],
        )
        schedule.rules.append(
            ScheduleRule(rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", starts=time(8), ends=time(17))
        )
        session.add(schedule)
        session.flush()
        return schedule.id


def rules(app: Flask, schedule_id: int) -> list[tuple[str, str, time, time]]:
    with app.app_context(), db.transaction() as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None
        return [(r.effect, r.rrule, r.starts, r.ends) for r in schedule.rules]


RULE = {"effect": "open", "starts": "09:00", "ends": "12:00"}


def test_it_creates_opening_hours(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/schedules", {"name": "Helger", "timezone": ""})

    assert response.status_code == 302
    assert "Helger" in html(client.get(response.headers["Location"]))
    assert audit_actions(app, personas.alice.organisation_id) == ["schedule.create"]


@pytest.mark.parametrize(
    ("form", "field"),
    [({"name": ""}, "name"), ({"name": "X", "timezone": "Mars/Olympus"}, "timezone")],
)
def test_it_refuses_bad_opening_hours(
    app: Flask, client: FlaskClient, personas: Personas, form: dict[str, str], field: str
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/schedules", form)

    assert response.status_code == 422
    assert field_error(response, field)
    assert audit_actions(app, personas.alice.organisation_id) == []


@pytest.mark.parametrize(
    ("form", "rrule"),
    [
        ({"frequency": "weekly", "weekdays": ["SA", "MO"]}, "FREQ=WEEKLY;BYDAY=MO,SA"),
        ({"frequency": "daily"}, "FREQ=DAILY"),
        (
            {"frequency": "monthly_weekday", "month_ordinal": "1", "month_weekday": "MO"},
            "FREQ=MONTHLY;BYDAY=1MO",
        ),
        ({"frequency": "monthly_day", "month_day": "-1"}, "FREQ=MONTHLY;BYMONTHDAY=-1"),
        (
            {"frequency": "yearly", "year_day": "24", "year_month": "12"},
            "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
        ),
        (
            {"frequency": "custom", "custom": "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"},
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR",
        ),
    ],
)
def test_it_builds_the_rule_from_the_friendly_form(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, form: dict[str, object], rrule: str
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, f"/admin/schedules/{schedule_id}/rules", RULE | form)

    assert response.status_code == 302, html(response)
    assert rules(app, schedule_id)[-1] == ("open", rrule, time(9), time(12))
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.action == "schedule.rule.create"
    assert entry.changes["rrule"] == [None, rrule]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"frequency": "custom", "custom": "FREQ=SOMETIMES"}, "custom"),
        ({"frequency": "custom", "custom": "FREQ=HOURLY"}, "custom"),
        ({"frequency": "weekly"}, "weekdays"),
        ({"frequency": "yearly", "year_day": "31", "year_month": "2"}, "year_day"),
        ({"frequency": "daily", "starts": "17:00", "ends": "08:00"}, "ends"),
        ({"frequency": "daily", "starts": ""}, "starts"),
        ({"frequency": "daily", "valid_from": "2027-01-10", "valid_until": "2027-01-01"}, "valid_until"),
        ({"frequency": "monthly_day", "month_day": "32"}, "month_day"),
    ],
)
def test_it_refuses_a_bad_rule_on_its_field(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, form: dict[str, str], field: str
) -> None:
    as_user(client, personas.alice.email)
    before = rules(app, schedule_id)

    response = post(client, f"/admin/schedules/{schedule_id}/rules", RULE | form)

    assert response.status_code == 422
    assert field_error(response, field), html(response)
    assert rules(app, schedule_id) == before
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_it_shows_the_week_and_the_next_transitions_with_holidays(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, clock: ManualClock
) -> None:
    clock.set(utc("2026-12-22 09:00"))  # Tuesday before Christmas
    as_user(client, personas.alice.email)

    page = html(client.get(f"/admin/schedules/{schedule_id}"))

    assert "08:00–17:00" in page
    assert "Julafton" in page  # Christmas Eve (de facto) closes the Thursday
    assert "Juldagen" in page


def test_it_saves_holiday_categories_and_a_per_holiday_choice(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int
) -> None:
    as_user(client, personas.alice.email)
    page = html(client.get(f"/admin/schedules/{schedule_id}"))
    import re

    selects = dict(re.findall(r'<select name="(holiday_\d+)" aria-label="([^"]+)"', page))
    midsummer_eve = next(name for name, label in selects.items() if label == "Midsommarafton")

    response = post(
        client,
        f"/admin/schedules/{schedule_id}/settings",
        {"name": "Kontor", "timezone": "", "categories": ["public"], midsummer_eve: "closed"},
    )

    assert response.status_code == 302
    with app.app_context(), db.transaction() as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule.holiday_categories == ["public"]
        assert [(c.holiday_name, c.closed) for c in schedule.holiday_choices] == [("Midsommarafton", True)]
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.changes["holiday_categories"] == [["de_facto", "public"], ["public"]]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"day": "2026-12-30", "opens": "15:00", "closes": "09:00"}, "closes"),
        ({"day": "2026-12-30", "opens": "09:00"}, "closes"),
        ({"day": "", "closed": "y"}, "day"),
    ],
)
def test_it_refuses_a_bad_custom_date(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, form: dict[str, str], field: str
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, f"/admin/schedules/{schedule_id}/exceptions", form)

    assert response.status_code == 422
    assert field_error(response, field)
    with app.app_context(), db.transaction() as session:
        assert session.get_one(Schedule, schedule_id).exceptions == []
    assert audit_actions(app, personas.alice.organisation_id) == []


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "Helger"}, "name"),  # another schedule's name
        ({"name": "Kontor", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "Kontor", "categories": ["christmas"]}, "categories"),
    ],
)
def test_it_refuses_bad_schedule_settings_on_their_field_and_changes_nothing(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, form: dict[str, object], field: str
) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/schedules", {"name": "Helger"})

    response = post(
        client,
        f"/admin/schedules/{schedule_id}/settings",
        {"categories": ["public"], "holiday_0": "open"} | form,
    )

    assert response.status_code == 422
    assert field_error(response, field), html(response)
    with app.app_context(), db.transaction() as session:
        schedule = session.get_one(Schedule, schedule_id)
        assert (schedule.name, schedule.timezone, schedule.holiday_categories) == (
            "Kontor",
            None,
            ["public", "de_facto"],
        )
        assert schedule.holiday_choices == []
    assert audit_actions(app, personas.alice.organisation_id) == ["schedule.create"]


def test_it_adds_and_deletes_a_custom_date(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int
) -> None:
    as_user(client, personas.alice.email)

    response = post(
        client,
        f"/admin/schedules/{schedule_id}/exceptions",
        {"day": "2026-11-27", "opens": "10:00", "closes": "14:00", "label": "Personaldag"},
    )

    assert response.status_code == 302
    page = html(client.get(f"/admin/schedules/{schedule_id}"))
    assert "10:00–14:00" in page and "Personaldag" in page
    with app.app_context(), db.transaction() as session:
        exception_id = session.get(Schedule, schedule_id).exceptions[0].id
    post(client, f"/admin/schedules/{schedule_id}/exceptions/{exception_id}/delete")
    assert audit_actions(app, personas.alice.organisation_id) == [
        "schedule.exception.create",
        "schedule.exception.delete",
    ]


def test_it_refuses_to_delete_hours_a_queue_uses(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int
) -> None:
    with app.app_context(), db.transaction() as session:
        session.get(Queue, personas.alice.queue_id).schedule_id = schedule_id
    as_user(client, personas.alice.email)

    response = post(client, f"/admin/schedules/{schedule_id}/delete")

    assert response.status_code == 303
    assert "Växeln" in html(client.get(response.headers["Location"]))
    with app.app_context(), db.transaction() as session:
        assert session.get(Schedule, schedule_id) is not None


# --- Closures ---


def closures(app: Flask) -> list[Closure]:
    with app.app_context(), db.transaction() as session:
        rows = session.scalars(select(Closure).order_by(Closure.id)).all()
        for row in rows:
            _ = row.queues
        return list(rows)


def test_it_closes_several_queues_now_for_a_while(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    with app.app_context(), db.transaction() as session:
        from queue_app.models import Organisation

        other = make_queue(session, session.get(Organisation, personas.alice.organisation_id), name="Ekonomi")
        other_id = other.id
    as_user(client, personas.alice.email)

    response = post(
        client,
        "/admin/closures",
        {
            "queues": [str(personas.alice.queue_id), str(other_id)],
            "start": "now",
            "end": "duration",
            "duration_minutes": "90",
            "reason": "Personalmöte",
            "message": "Vi har möte till halv tolv.",
        },
    )

    assert response.status_code == 302
    [closure] = closures(app)
    assert closure.starts_at == clock.now()
    assert closure.ends_at == clock.now() + timedelta(minutes=90)
    assert sorted(q.id for q in closure.queues) == sorted([personas.alice.queue_id, other_id])
    assert not closure.all_queues
    page = html(client.get("/admin/closures"))
    assert "Personalmöte" in page and "Ekonomi" in page
    assert audit_actions(app, personas.alice.organisation_id) == ["closure.create"]


def test_it_closes_all_queues_from_a_time_until_a_time_and_ends_it_now(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    as_user(client, personas.alice.email)

    response = post(
        client,
        "/admin/closures",
        {
            "all_queues": "y",
            "start": "at",
            "starts_at": "2026-11-25T09:00",  # local, Stockholm = 08:00 UTC, before now
            "end": "at",
            "ends_at": "2026-11-25T15:00",
        },
    )

    assert response.status_code == 302
    [closure] = closures(app)
    assert closure.all_queues
    assert closure.starts_at == utc("2026-11-25 08:00")
    assert closure.ends_at == utc("2026-11-25 14:00")

    clock.advance(minutes=5)
    assert post(client, f"/admin/closures/{closure.id}/end").status_code == 302
    [closure] = closures(app)
    assert closure.ended_early_at == clock.now()
    assert audit_actions(app, personas.alice.organisation_id) == ["closure.create", "closure.end"]
    assert f"/admin/closures/{closure.id}/end" not in html(client.get("/admin/closures"))


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"queues": [], "start": "now", "end": "duration", "duration_minutes": "30"}, "queues"),
        (
            {"all_queues": "y", "start": "now", "end": "duration", "duration_minutes": "-30"},
            "duration_minutes",
        ),
        ({"all_queues": "y", "start": "now", "end": "duration", "duration_minutes": ""}, "duration_minutes"),
        (
            {
                "all_queues": "y",
                "start": "at",
                "starts_at": "2026-11-26T12:00",
                "end": "at",
                "ends_at": "2026-11-26T11:00",
            },
            "ends_at",
        ),
        ({"all_queues": "y", "start": "at", "starts_at": "", "end": "open"}, "starts_at"),
    ],
)
def test_it_refuses_a_bad_closure_on_its_field(
    app: Flask, client: FlaskClient, personas: Personas, form: dict[str, object], field: str
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/closures", form)

    assert response.status_code == 422
    assert field_error(response, field), html(response)
    assert closures(app) == []
    assert audit_actions(app, personas.alice.organisation_id) == []


@pytest.mark.parametrize("foreign", ["charlie", "999999", "x"])
def test_it_answers_another_organisations_queue_in_a_closure_with_404(
    app: Flask, client: FlaskClient, personas: Personas, foreign: str
) -> None:
    as_user(client, personas.alice.email)
    queue = str(personas.charlie.queue_id) if foreign == "charlie" else foreign

    response = post(
        client,
        "/admin/closures",
        {"queues": [str(personas.alice.queue_id), queue], "start": "now", "end": "open"},
    )

    assert response.status_code == 404
    assert closures(app) == []
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_the_week_view_uses_dates_in_the_organisations_zone(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, clock: ManualClock
) -> None:
    clock.set(utc("2026-11-28 23:30"))  # Sunday 00:30 in Stockholm
    as_user(client, personas.alice.email)

    page = html(client.get(f"/admin/schedules/{schedule_id}"))

    first_day = page.index('<th scope="row">')
    assert "29" in page[first_day : first_day + 60]
    assert date(2026, 11, 29).weekday() == 6


def test_the_next_changes_say_still_closed_and_leave_out_label_only_changes(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, clock: ManualClock
) -> None:
    clock.set(utc("2026-11-25 09:00"))  # Wednesday 10:00 in Stockholm
    with app.app_context(), db.transaction() as session:
        schedule = session.get(Schedule, schedule_id)
        schedule.rules.append(
            ScheduleRule(
                effect="closed", rrule="FREQ=WEEKLY;BYDAY=FR", starts=time(15), ends=time(17), label="Tidigt"
            )
        )
        schedule.exceptions.append(ScheduleException(day=date(2026, 11, 30), label="Personaldag"))
    as_user(client, personas.alice.email)

    page = html(client.get(f"/admin/schedules/{schedule_id}"))
    changes = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page[page.index('<ul class="transitions">') :]))

    assert "fredag 27 nov. 15:00 stänger – Tidigt" in changes
    assert "fredag 27 nov. 17:00" not in changes  # closed already: callers hear no difference
    assert "måndag 30 nov. 00:00 fortfarande stängt, nu för egen dag – Personaldag" in changes
    assert "tisdag 1 dec. 00:00 fortfarande stängt, nu utanför öppettiderna" in changes
    assert "tisdag 1 dec. 08:00 öppnar" in changes
