"""Organisation settings, phone numbers, the licence page and its CSV, and the audit log page."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Organisation, PhoneNumber
from tests.factories import Personas
from tests.web.test_admin_support import as_user, audit_actions, field_error, html, last_audit, post

ORG = {
    "name": "Acme AB",
    "timezone": "Europe/Stockholm",
    "locale": "sv",
    "holiday_country": "SE",
    "default_voice": "",
}


def organisation(app: Flask, org_id: int) -> dict[str, object]:
    with app.app_context(), db.transaction() as session:
        org = session.get(Organisation, org_id)
        return {
            k: getattr(org, k) for k in ("name", "timezone", "locale", "holiday_country", "default_voice")
        }


def test_it_saves_the_organisation_settings(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)

    response = post(
        client,
        "/admin/organisation",
        ORG
        | {
            "name": "Acme Group",
            "timezone": "Europe/Oslo",
            "holiday_country": "no",
            "default_voice": "Polly.Liv",
        },
    )

    assert response.status_code == 302
    assert organisation(app, personas.alice.organisation_id) == {
        "name": "Acme Group",
        "timezone": "Europe/Oslo",
        "locale": "sv",
        "holiday_country": "NO",
        "default_voice": "Polly.Liv",
    }
    assert "Acme Group" in html(client.get("/admin/organisation"))
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.changes["timezone"] == ["Europe/Stockholm", "Europe/Oslo"]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"holiday_country": "XX"}, "holiday_country"),
        ({"name": ""}, "name"),
        ({"locale": "fi"}, "locale"),
    ],
)
def test_it_refuses_bad_organisation_settings(
    app: Flask, client: FlaskClient, personas: Personas, form: dict[str, str], field: str
) -> None:
    as_user(client, personas.alice.email)
    before = organisation(app, personas.alice.organisation_id)

    response = post(client, "/admin/organisation", ORG | form)

    assert response.status_code == 422
    assert field_error(response, field)
    assert organisation(app, personas.alice.organisation_id) == before
    assert audit_actions(app, personas.alice.organisation_id) == []


def numbers(app: Flask, org_id: int) -> dict[str, int | None]:
    with app.app_context(), db.transaction() as session:
        rows = session.scalars(select(PhoneNumber).where(PhoneNumber.organisation_id == org_id))
        return {n.number: n.queue_id for n in rows}


def test_it_adds_a_number_that_reaches_a_queue_then_moves_and_removes_it(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    org_id = personas.alice.organisation_id

    response = post(
        client,
        "/admin/numbers",
        {"number": "+46812345678", "label": "Växel", "queue_id": str(personas.alice.queue_id)},
    )

    assert response.status_code == 302
    assert numbers(app, org_id)["+46812345678"] == personas.alice.queue_id
    assert "+46812345678" in html(client.get("/admin/organisation"))
    with app.app_context(), db.transaction() as session:
        number_id = session.scalars(select(PhoneNumber.id).where(PhoneNumber.number == "+46812345678")).one()
    assert post(client, f"/admin/numbers/{number_id}", {"label": "", "queue_id": "None"}).status_code == 302
    assert numbers(app, org_id)["+46812345678"] is None
    assert post(client, f"/admin/numbers/{number_id}/delete").status_code == 302
    assert "+46812345678" not in numbers(app, org_id)
    assert audit_actions(app, org_id) == ["number.create", "number.update", "number.delete"]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"number": "08-123 456 78"}, "number"),
        ({"number": "+46855500002"}, "number"),  # organisation B's number
        ({"number": "+46812345678", "queue_id": "999999"}, "queue_id"),
    ],
)
def test_it_refuses_a_bad_number(
    app: Flask, client: FlaskClient, personas: Personas, form: dict[str, str], field: str
) -> None:
    as_user(client, personas.alice.email)
    before = numbers(app, personas.alice.organisation_id)

    response = post(client, "/admin/numbers", {"label": "", "queue_id": "None"} | form)

    assert response.status_code == 422
    assert field_error(response, field)
    assert numbers(app, personas.alice.organisation_id) == before


def test_it_refuses_to_point_a_number_at_another_organisations_queue(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    with app.app_context(), db.transaction() as session:
        number_id = session.scalars(
            select(PhoneNumber.id).where(PhoneNumber.number == personas.alice.number)
        ).one()

    response = post(
        client, f"/admin/numbers/{number_id}", {"label": "", "queue_id": str(personas.charlie.queue_id)}
    )

    assert response.status_code == 422
    assert field_error(response, "queue_id")
    assert numbers(app, personas.alice.organisation_id)[personas.alice.number] == personas.alice.queue_id


def test_the_licence_page_counts_this_months_users_and_exports_csv(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    post(client, f"/admin/queues/{queue_id}/members", {f"may_log_in_{personas.bob.user_id}": "y"})
    clock.advance(hours=2)
    post(client, f"/admin/queues/{queue_id}/members", {f"may_see_{personas.bob.user_id}": "y"})

    page = html(client.get("/admin/licences"))

    assert '<span id="licence-count">1</span>' in page
    assert "Bob" in page
    response = client.get("/admin/licences.csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["email"], r["licensed_now"]) for r in rows] == [("bob@acme.test", "no")]
    assert rows[0]["licensed_since"].startswith("2026-11-25T10:00:00+01:00")


def test_the_audit_log_page_filters_by_user_action_and_date(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/skills", {"name": "Engelska"})
    clock.advance(days=2)
    post(client, "/admin/schedules", {"name": "Kontor"})

    everything = html(client.get("/admin/audit"))
    assert "<code>skill.create" in everything and "<code>schedule.create" in everything

    only_skills = html(client.get("/admin/audit?action=skill"))
    assert "<code>skill.create" in only_skills and "<code>schedule.create" not in only_skills

    by_date = html(client.get("/admin/audit?since=2026-11-26"))
    assert "<code>schedule.create" in by_date and "<code>skill.create" not in by_date

    by_user = html(client.get(f"/admin/audit?user={personas.bob.user_id}"))
    assert "<code>skill.create" not in by_user

    bad_date = client.get("/admin/audit?since=yesterday")
    assert bad_date.status_code == 422
    assert field_error(bad_date, "since")
