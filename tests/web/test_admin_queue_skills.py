"""Required skills on the queue form: chosen among the organisation's skills, each at a level."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.extensions import db
from queue_app.models import QueueSkill, Skill, User
from queue_app.services.config_io import export_config
from tests.factories import Personas
from tests.web.test_admin_queues import settings
from tests.web.test_admin_support import as_user, audit_actions, field_error, html, last_audit, post


def add_skills(app: Flask, organisation_id: int, *names: str) -> dict[str, int]:
    with app.app_context(), db.transaction() as session:
        rows = [Skill(organisation_id=organisation_id, name=name) for name in names]
        session.add_all(rows)
        session.flush()
        return {row.name: row.id for row in rows}


def required(app: Flask, queue_id: int) -> dict[str, int]:
    with app.app_context(), db.transaction() as session:
        return {
            name: level
            for name, level in session.execute(
                select(Skill.name, QueueSkill.min_level)
                .join(QueueSkill, QueueSkill.skill_id == Skill.id)
                .where(QueueSkill.queue_id == queue_id)
            )
        }


def test_an_admin_sets_required_skills_and_sees_them_on_the_queue_pages(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    ids = add_skills(app, personas.alice.organisation_id, "Engelska", "Faktura")
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    form = html(client.get(f"/admin/queues/{queue_id}"))
    assert f'name="required_skill_{ids["Engelska"]}"' in form and "Faktura" in form

    data = settings(client, queue_id) | {f"required_skill_{ids['Engelska']}": "3"}
    response = post(client, f"/admin/queues/{queue_id}", data)

    assert response.status_code == 302, html(response)
    assert required(app, queue_id) == {"Engelska": 3}
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.action == "queue.update"
    assert entry.changes["required_skills"] == [{}, {"Engelska": 3}]
    edit = html(client.get(f"/admin/queues/{queue_id}"))
    chosen = re.search(rf'<select[^>]*name="required_skill_{ids["Engelska"]}".*?</select>', edit, re.S)
    assert chosen and '<option value="3" selected>' in chosen.group(0)
    assert "Engelska ≥ 3" in html(client.get("/admin/queues"))
    with app.app_context():
        assert export_config("acme")["queues"][0]["required_skills"] == {"Engelska": 3}

    # Unchanged form: still required; level changed and a second skill; then none.
    data = settings(client, queue_id)
    assert data[f"required_skill_{ids['Engelska']}"] == "3"
    post(client, f"/admin/queues/{queue_id}", data | {f"required_skill_{ids['Faktura']}": "10"})
    assert required(app, queue_id) == {"Engelska": 3, "Faktura": 10}
    cleared = data | {f"required_skill_{ids['Engelska']}": "", f"required_skill_{ids['Faktura']}": ""}
    assert post(client, f"/admin/queues/{queue_id}", cleared).status_code == 302
    assert required(app, queue_id) == {}
    assert last_audit(app, personas.alice.organisation_id).changes["required_skills"] == [
        {"Engelska": 3, "Faktura": 10},
        {},
    ]


def test_a_new_queue_can_require_a_skill(app: Flask, client: FlaskClient, personas: Personas) -> None:
    ids = add_skills(app, personas.alice.organisation_id, "Engelska")
    as_user(client, personas.alice.email)
    data = settings(client, personas.alice.queue_id) | {
        "name": "English",
        "slug": "english",
        f"required_skill_{ids['Engelska']}": "5",
    }

    response = post(client, "/admin/queues/new", data)

    assert response.status_code == 302, html(response)
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.action == "queue.create"
    assert entry.changes["required_skills"] == [None, {"Engelska": 5}]


@pytest.mark.parametrize("level", ["0", "11", "-1", "tre", "3.5"])
def test_a_level_out_of_range_gets_a_field_error_and_changes_nothing(
    app: Flask, client: FlaskClient, personas: Personas, level: str
) -> None:
    ids = add_skills(app, personas.alice.organisation_id, "Engelska")
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    data = settings(client, queue_id) | {"name": "Nytt namn", f"required_skill_{ids['Engelska']}": level}

    response = post(client, f"/admin/queues/{queue_id}", data)

    assert response.status_code == 422
    assert field_error(response, f"required_skill_{ids['Engelska']}") == "En kompetensnivå är 1 till 10."
    assert required(app, queue_id) == {}
    assert audit_actions(app, personas.alice.organisation_id) == []
    assert "Nytt namn" not in html(client.get("/admin/queues"))


@pytest.mark.parametrize("whose", ["another organisation's", "no such"])
def test_an_unknown_skill_gets_a_field_error_and_changes_nothing(
    app: Flask, client: FlaskClient, personas: Personas, whose: str
) -> None:
    own = add_skills(app, personas.alice.organisation_id, "Engelska")
    theirs = add_skills(app, personas.charlie.organisation_id, "Tyska")
    skill_id = theirs["Tyska"] if whose == "another organisation's" else 999_999
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    data = settings(client, queue_id) | {
        f"required_skill_{own['Engelska']}": "2",
        f"required_skill_{skill_id}": "2",
    }

    response = post(client, f"/admin/queues/{queue_id}", data)

    assert response.status_code == 422
    assert field_error(response, "required_skills") == "Välj bland era egna kompetenser."
    assert "Tyska" not in html(response)
    assert required(app, queue_id) == {}
    assert audit_actions(app, personas.alice.organisation_id) == []


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("sv", ("Kompetenskrav", "Krävs inte", "minst 3")),
        ("en", ("Required skills", "Not required", "at least 3")),
    ],
)
def test_the_skills_are_offered_in_the_admins_language(
    app: Flask, client: FlaskClient, personas: Personas, locale: str, words: tuple[str, ...]
) -> None:
    add_skills(app, personas.alice.organisation_id, "Engelska")
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.alice.user_id).locale = locale
    as_user(client, personas.alice.email)

    page = html(client.get(f"/admin/queues/{personas.alice.queue_id}"))

    assert all(word in page for word in words), words
