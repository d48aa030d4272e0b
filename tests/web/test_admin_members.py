"""Users, skills and queue members (may see / may log in), with licences following."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.extensions import db
from queue_app.models import LicenceEvent, Organisation, QueueMembership, Skill, User
from tests.factories import Personas, login, make_user
from tests.web.test_admin_support import (
    as_user,
    audit_actions,
    field_error,
    form_error,
    html,
    last_audit,
    post,
)


def membership(app: Flask, queue_id: int, user_id: int) -> tuple[bool, bool] | None:
    with app.app_context(), db.transaction() as session:
        row = session.scalars(
            select(QueueMembership).where(
                QueueMembership.queue_id == queue_id, QueueMembership.user_id == user_id
            )
        ).first()
        return (row.may_see, row.may_log_in) if row else None


def licence_events(app: Flask) -> list[tuple[int, bool]]:
    with app.app_context(), db.transaction() as session:
        return [
            (e.user_id, e.licensed) for e in session.scalars(select(LicenceEvent).order_by(LicenceEvent.id))
        ]


def add_user(app: Flask, personas: Personas, **overrides: object) -> int:
    with app.app_context(), db.transaction() as session:
        org = session.get(Organisation, personas.alice.organisation_id)
        return make_user(session, org, **overrides).id


def email_of(app: Flask, user_id: int) -> str:
    with app.app_context(), db.transaction() as session:
        return session.get(User, user_id).email


def test_it_gives_a_user_may_log_in_and_a_licence(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    carol = add_user(app, personas, name="Carol", plan="business")
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    page = html(client.get(f"/admin/queues/{queue_id}/members"))
    assert "Carol" in page

    response = post(
        client,
        f"/admin/queues/{queue_id}/members",
        {
            f"may_log_in_{personas.bob.user_id}": "y",
            f"may_see_{personas.alice.user_id}": "y",
            f"may_log_in_{carol}": "y",
        },
    )

    assert response.status_code == 302
    assert membership(app, queue_id, carol) == (True, True)  # may log in implies may see
    assert (carol, True) in licence_events(app)
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.action == "membership.update"
    assert entry.changes[email_of(app, carol)] == [
        {"may_log_in": False, "may_see": False},
        {"may_log_in": True, "may_see": True},
    ]
    shown = html(client.get(f"/admin/queues/{queue_id}/members"))
    assert re.search(rf'<input type="checkbox" name="may_log_in_{carol}"[^>]*checked', shown)


def test_it_removes_may_log_in_and_the_licence_ends(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    post(
        client, f"/admin/queues/{queue_id}/members", {f"may_log_in_{personas.bob.user_id}": "y"}
    )  # licence recorded

    post(client, f"/admin/queues/{queue_id}/members", {f"may_see_{personas.bob.user_id}": "y"})

    assert membership(app, queue_id, personas.bob.user_id) == (True, False)
    assert licence_events(app)[-1] == (personas.bob.user_id, False)


def test_it_refuses_may_log_in_for_a_basic_plan_user_and_changes_nothing(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    dan = add_user(app, personas, name="Dan", plan="basic")
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id

    response = post(
        client,
        f"/admin/queues/{queue_id}/members",
        {f"may_log_in_{dan}": "y", f"may_see_{personas.bob.user_id}": "y"},
    )

    assert response.status_code == 422
    message = field_error(response, f"may_log_in_{dan}")
    assert message and "Dan" in message and "Basic" in message
    assert membership(app, queue_id, dan) is None
    assert membership(app, queue_id, personas.bob.user_id) == (True, True)
    assert licence_events(app) == []
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_it_creates_a_user_with_a_temporary_password_shown_once(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(
        client,
        "/admin/users/new",
        {
            "email": "Erik@Acme.test",
            "name": "Erik",
            "role": "operator",
            "plan": "pro",
            "locale": "",
            "set_password": "y",
        },
    )

    assert response.status_code == 200
    password = re.search(r'<code id="temporary-password">([^<]+)</code>', html(response)).group(1)
    with app.app_context(), db.transaction() as session:
        erik = session.scalars(select(User).where(User.email == "erik@acme.test")).one()
        assert erik.organisation_id == personas.alice.organisation_id
    assert password not in html(client.get("/admin/users"))
    assert audit_actions(app, personas.alice.organisation_id) == ["user.create"]
    entry = last_audit(app, personas.alice.organisation_id)
    assert password not in str(entry.changes)
    assert login(app.test_client(), "erik@acme.test", password).status_code == 302


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "bob@acme.test"}, "email"),
        ({"phone_number": "0701234567"}, "phone_number"),
        ({"client_identity": "has space"}, "client_identity"),
        ({"client_identity": "op_bob"}, "client_identity"),
        ({"name": ""}, "name"),
    ],
)
def test_it_refuses_a_bad_new_user_on_its_field(
    app: Flask, client: FlaskClient, personas: Personas, form: dict[str, str], field: str
) -> None:
    as_user(client, personas.alice.email)
    data = {"email": "new@acme.test", "name": "New", "role": "operator", "plan": "pro", "locale": ""} | form

    response = post(client, "/admin/users/new", data)

    assert response.status_code == 422
    assert field_error(response, field), html(response)
    with app.app_context(), db.transaction() as session:
        assert session.scalars(select(User).where(User.email == "new@acme.test")).first() is None
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_it_edits_a_user_with_device_and_skills(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)
    assert post(client, "/admin/skills", {"name": "Engelska"}).status_code == 302
    with app.app_context(), db.transaction() as session:
        skill_id = session.scalars(select(Skill.id)).one()

    response = post(
        client,
        f"/admin/users/{personas.bob.user_id}",
        {
            "name": "Bob B",
            "role": "operator",
            "plan": "enterprise",
            "locale": "en",
            "phone_number": "+46701234567",
            "client_identity": "op_bob",
            "is_active": "y",
            f"skill_{skill_id}": "7",
        },
    )

    assert response.status_code == 302
    page = html(client.get("/admin/users"))
    assert "Bob B" in page and "+46701234567" in page and "Engelska 7" in page
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.action == "user.update"
    assert entry.changes["skills"] == [{}, {"Engelska": 7}]
    assert entry.changes["plan"] == ["pro", "enterprise"]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"plan": "basic"}, "plan"),  # bob may log in to Växeln
        ({"phone_number": "+46 70"}, "phone_number"),
        ({"role": "nobody"}, "role"),
    ],
)
def test_it_refuses_a_bad_user_change(
    app: Flask, client: FlaskClient, personas: Personas, form: dict[str, str], field: str
) -> None:
    as_user(client, personas.alice.email)
    data = {
        "name": "Bob",
        "role": "operator",
        "plan": "pro",
        "locale": "",
        "client_identity": "op_bob",
        "is_active": "y",
    }

    response = post(client, f"/admin/users/{personas.bob.user_id}", data | form)

    assert response.status_code == 422
    assert field_error(response, field), html(response)
    with app.app_context(), db.transaction() as session:
        assert session.get(User, personas.bob.user_id).plan == "pro"
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_an_admin_cannot_demote_themself(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)
    data = {"name": "Alice", "role": "operator", "plan": "pro", "locale": "", "is_active": "y"}

    response = post(client, f"/admin/users/{personas.alice.user_id}", data)

    assert response.status_code == 422
    assert field_error(response, "role")


def test_it_refuses_a_duplicate_skill(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/skills", {"name": "Engelska"})

    response = post(client, "/admin/skills", {"name": "engelska"})

    assert response.status_code == 422
    assert field_error(response, "name")
    assert form_error(response) is None


def test_it_refuses_a_skill_without_a_name(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/skills", {"name": "  "})

    assert response.status_code == 422
    assert field_error(response, "name")
    with app.app_context(), db.transaction() as session:
        assert session.scalars(select(Skill)).all() == []


@pytest.mark.parametrize("level", ["0", "11", "expert"])
def test_it_refuses_a_skill_level_outside_one_to_ten_and_changes_nothing(
    app: Flask, client: FlaskClient, personas: Personas, level: str
) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/skills", {"name": "Engelska"})
    with app.app_context(), db.transaction() as session:
        skill_id = session.scalars(select(Skill.id)).one()
    data = {
        "name": "Bob Renamed",
        "role": "operator",
        "plan": "pro",
        "locale": "",
        "client_identity": "op_bob",
        "is_active": "y",
        f"skill_{skill_id}": level,
    }

    response = post(client, f"/admin/users/{personas.bob.user_id}", data)

    assert response.status_code == 422
    assert form_error(response)
    with app.app_context(), db.transaction() as session:
        bob = session.get_one(User, personas.bob.user_id)
        assert (bob.name, list(bob.skills)) == ("Bob", [])
    assert audit_actions(app, personas.alice.organisation_id) == ["skill.create"]
