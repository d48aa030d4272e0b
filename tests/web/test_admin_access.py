"""Who may reach the admin pages: one walk over every admin route of the URL map.

An operator gets 403 everywhere; an admin of another organisation gets 404 for every route that
takes an id of organisation A, on GET and on POST (with a valid CSRF token), and nothing changes.
"""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import (
    AuditEntry,
    Closure,
    DirectoryEntry,
    MessageTemplate,
    PhoneNumber,
    Queue,
    Schedule,
    ScheduleException,
    ScheduleRule,
)
from tests.factories import Personas
from tests.web.test_admin_support import as_user, token


def org_a_ids(app: Flask, personas: Personas, clock: ManualClock) -> dict[str, int]:
    with app.app_context(), db.transaction() as session:
        org_id = personas.alice.organisation_id
        schedule = Schedule(organisation_id=org_id, name="Kontor")
        schedule.rules.append(ScheduleRule(rrule="FREQ=DAILY", starts=time(8), ends=time(17)))
        schedule.exceptions.append(ScheduleException(day=date(2026, 12, 28)))
        session.add(schedule)
        closure = Closure(
            organisation_id=org_id, starts_at=clock.now(), ends_at=clock.now() + timedelta(hours=1)
        )
        session.add(closure)
        entry = DirectoryEntry(organisation_id=org_id, name="Karin Ek", search_text="karin ek")
        template = MessageTemplate(organisation_id=org_id, name="Ring upp", body="Ring {caller}")
        session.add_all([entry, template])
        session.flush()
        number = session.scalars(select(PhoneNumber).where(PhoneNumber.organisation_id == org_id)).one()
        return {
            "queue_id": personas.alice.queue_id,
            "user_id": personas.bob.user_id,
            "schedule_id": schedule.id,
            "rule_id": schedule.rules[0].id,
            "exception_id": schedule.exceptions[0].id,
            "closure_id": closure.id,
            "number_id": number.id,
            "entry_id": entry.id,
            "template_id": template.id,
        }


def admin_routes(app: Flask) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(endpoint, rule, method, argument names) for every admin route and method."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, rule.rule, method, tuple(sorted(rule.arguments))))
    return routes


# Every page that shows or changes one row of an organisation names the row in its path, so the walk
# below reaches it; a `?id=` route would be skipped as if it were one of charlie's own pages.
ROW_ENDPOINTS = {
    "admin.edit_queue",
    "admin.delete_queue",
    "admin.members",
    "admin.edit_user",
    "admin.edit_schedule",
    "admin.delete_rule",
    "admin.delete_exception",
    "admin.end_closure",
    "admin.edit_number",
    "admin.edit_entry",
    "admin.delete_entry",
    "admin.edit_template",
    "admin.delete_template",
    "admin.edit_prompt_queue",
}


def url(rule: str, ids: dict[str, int]) -> str:
    for name, value in ids.items():
        rule = rule.replace(f"<int:{name}>", str(value))
    assert "<" not in rule, f"no id of organisation A for {rule}"
    return rule


def counts(app: Flask) -> dict[str, int]:
    with app.app_context(), db.transaction() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (
                Queue,
                Schedule,
                ScheduleRule,
                ScheduleException,
                Closure,
                PhoneNumber,
                DirectoryEntry,
                MessageTemplate,
                AuditEntry,
            )
        }


@pytest.mark.parametrize(("who", "expected"), [("bob", 403), ("charlie", 404)])
def test_it_keeps_every_admin_route_from_operators_and_other_organisations(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, who: str, expected: int
) -> None:
    ids = org_a_ids(app, personas, clock)
    as_user(client, getattr(personas, who).email)
    csrf = token(client)
    before = counts(app)
    routes = admin_routes(app)
    assert len(routes) > 25
    checked, wrong, reached = 0, [], set()
    for endpoint, rule, method, arguments in routes:
        if expected == 404 and not arguments:
            continue  # charlie's own pages: nothing of organisation A to find there
        target = url(rule, ids)
        reached.add(endpoint)
        if method == "GET":
            response = client.get(target)
        else:
            response = client.post(target, data={"csrf_token": csrf, "name": "x", "number": "+46812345678"})
        checked += 1
        if response.status_code != expected:
            wrong.append((method, target, response.status_code))

    assert wrong == []
    assert ROW_ENDPOINTS - reached == set()
    assert checked >= (30 if expected == 404 else 50)
    assert counts(app) == before


def test_it_sends_a_visitor_who_is_not_logged_in_to_the_login_page(
    client: FlaskClient, personas: Personas
) -> None:
    response = client.get("/admin/queues")

    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_it_refuses_a_change_without_a_csrf_token(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = client.post(f"/admin/queues/{personas.alice.queue_id}/delete")

    assert response.status_code == 400
    with app.app_context(), db.transaction() as session:
        assert session.get(Queue, personas.alice.queue_id) is not None
