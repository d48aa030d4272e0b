"""The message template pages: a template that uses an unknown field is refused, naming the field."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.extensions import db
from queue_app.models import MessageTemplate, User
from tests.factories import Personas
from tests.web.test_admin_support import as_user, audit_actions, field_error, html, post, token

BODY = "{caller} ringde {time} om {topic}. Ring upp på {number}."


@pytest.fixture(autouse=True)
def alice_reads_english(app: Flask, personas: Personas) -> None:
    """The messages are asserted in English; the Swedish catalogue is tested in test_i18n."""
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.alice.user_id).locale = "en"


def templates(app: Flask) -> list[MessageTemplate]:
    with app.app_context(), db.transaction() as session:
        rows = session.scalars(select(MessageTemplate).order_by(MessageTemplate.name)).all()
        session.expunge_all()
        return list(rows)


def test_it_saves_a_template_that_uses_the_known_fields(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/templates/new", {"name": "Ring upp", "channel": "sms", "body": BODY})

    assert response.status_code == 302
    [row] = templates(app)
    assert (row.name, row.channel, row.body, row.subject) == ("Ring upp", "sms", BODY, None)
    assert "Ring upp" in html(client.get("/admin/templates"))
    assert audit_actions(app, personas.alice.organisation_id)[-1] == "template.create"


def test_it_refuses_an_unknown_field_and_names_it(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/templates/new", {"name": "Typo", "channel": "any", "body": "Om {topik}"})
    subject = post(
        client, "/admin/templates/new", {"name": "Typo", "channel": "email", "subject": "{who}", "body": "x"}
    )

    assert response.status_code == 422
    assert (field_error(response, "body") or "").startswith("Unknown field {topik}")
    assert "{caller}" in (field_error(response, "body") or "")
    assert subject.status_code == 422
    assert (field_error(subject, "subject") or "").startswith("Unknown field {who}")
    assert templates(app) == []


def test_it_refuses_a_stray_brace_an_empty_body_and_a_taken_name(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/templates/new", {"name": "Ring upp", "channel": "any", "body": BODY})

    brace = post(client, "/admin/templates/new", {"name": "B", "channel": "any", "body": "a { b"})
    empty = post(client, "/admin/templates/new", {"name": "C", "channel": "any", "body": " "})
    taken = post(client, "/admin/templates/new", {"name": "Ring upp", "channel": "any", "body": "x"})

    assert "literal brace" in (field_error(brace, "body") or "")
    assert field_error(empty, "body") == "The message is empty."
    assert field_error(taken, "name") == "There is already a template with this name."
    assert len(templates(app)) == 1


def test_it_edits_and_removes_a_template(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/templates/new", {"name": "Ring upp", "channel": "any", "body": BODY})
    [row] = templates(app)

    bad = post(
        client, f"/admin/templates/{row.id}/edit", {"name": "Ring upp", "channel": "any", "body": "{x}"}
    )
    assert bad.status_code == 422 and templates(app)[0].body == BODY
    assert (field_error(bad, "body") or "").startswith("Unknown field {x}")
    good = post(
        client,
        f"/admin/templates/{row.id}/edit",
        {"name": "Ring upp", "channel": "email", "subject": "Samtal från {caller}", "body": BODY},
    )
    assert good.status_code == 302 and templates(app)[0].subject == "Samtal från {caller}"
    assert post(client, f"/admin/templates/{row.id}/delete").status_code == 302
    assert templates(app) == []
    assert audit_actions(app, personas.alice.organisation_id)[-2:] == ["template.update", "template.delete"]


def test_another_organisation_gets_404_for_a_template(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/templates/new", {"name": "Ring upp", "channel": "any", "body": BODY})
    [row] = templates(app)
    other = app.test_client()
    as_user(other, personas.charlie.email)

    assert other.get(f"/admin/templates/{row.id}/edit").status_code == 404
    assert (
        post(
            other, f"/admin/templates/{row.id}/edit", {"name": "x", "channel": "any", "body": "y"}
        ).status_code
        == 404
    )
    assert post(other, f"/admin/templates/{row.id}/delete").status_code == 404
    assert len(templates(app)) == 1
    assert token(client)
