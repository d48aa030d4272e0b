"""The console page: rendered in Swedish and English, with the user's queues and nobody else's."""

from __future__ import annotations

import json
import re

from flask import Flask
from flask.testing import FlaskClient

from queue_app.extensions import db
from queue_app.models import User

from ..factories import Personas, login


def console_html(client: FlaskClient, email: str) -> str:
    login(client, email)
    response = client.get("/console")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def strings_of(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="console-strings">(.*?)</script>', html, re.S)
    assert match
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_it_renders_in_swedish_with_the_operators_queue(client: FlaskClient, personas: Personas) -> None:
    html = console_html(client, personas.bob.email)

    assert '<html lang="sv">' in html
    assert "Konsol" in html
    assert "Växeln" in html
    assert f'data-action="toggle-queue" data-queue-id="{personas.bob.queue_id}"' in html
    assert 'aria-pressed="false"' in html
    assert "Utloggad" in html
    assert 'name="csrf-token"' in html
    assert strings_of(html)["states"] == {
        "offline": "Utloggad",
        "available": "Ledig",
        "ringing": "Ringer",
        "on_call": "I samtal",
        "wrap_up": "Efterbearbetning",
        "paused": "Paus",
    }


def test_it_renders_in_english(client: FlaskClient, personas: Personas) -> None:
    with db.transaction() as session:
        session.get_one(User, personas.bob.user_id).locale = "en"

    html = console_html(client, personas.bob.email)

    assert '<html lang="en">' in html
    assert '<h2 id="directory-title">Directory</h2>' in html
    assert "Växeln" in html
    assert strings_of(html)["until"] == "until {time}"


def test_it_shows_a_logged_in_queue_as_pressed(client: FlaskClient, personas: Personas) -> None:
    from queue_app.clock import utc
    from queue_app.services import operators

    operators.log_in(personas.bob.user_id, [personas.bob.queue_id], utc("2026-11-25 09:00"))

    html = console_html(client, personas.bob.email)

    assert 'aria-pressed="true"' in html
    assert "Ledig" in html


def test_it_shows_see_only_queues_without_a_toggle(client: FlaskClient, personas: Personas) -> None:
    html = console_html(client, personas.alice.email)

    assert "Växeln" in html
    assert "Bara se" in html
    assert 'data-action="toggle-queue"' not in html


def test_it_never_shows_another_organisations_queues(app: Flask, personas: Personas) -> None:
    html = console_html(app.test_client(), personas.charlie.email)

    assert "Support" in html
    assert "Växeln" not in html


def test_it_sends_anonymous_visitors_to_log_in(client: FlaskClient, personas: Personas) -> None:
    response = client.get("/console")

    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_it_loads_the_console_script_and_the_phone_boundary(client: FlaskClient, personas: Personas) -> None:
    html = console_html(client, personas.bob.email)
    with client.get("/static/js/console.js") as response:
        script = response.get_data(as_text=True)
    with client.get("/static/js/phone.js") as response:
        phone = response.get_data(as_text=True)

    assert 'type="module"' in html
    assert 'import { createDevice } from "./phone.js"' in script
    assert "export function createDevice(" in phone
