"""Schemathesis against the console API: every operation of static/openapi.yaml, fuzzed in-process.

Logged in as bob (an operator of org A), with his session cookie and CSRF header on every call, each
operation gets a few generated requests, valid and invalid: once with any ids, once with the ids of
a small seeded world (his queue, a colleague, a waiting call, a missed call, a template, a message),
so that the fuzzing reaches past the 404s. No answer may be a 5xx, and every answer must be one the
description documents, in the documented shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, DirectoryEntry, MessageTemplate, MissedCall

from ..factories import Personas, login

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "static" / "openapi.yaml"
# Schemathesis's WSGI transport sets cookies for localhost; the app answers any host.
BASE_URL = "http://localhost/api/v1"
EXAMPLES = 6  # per operation, per generation mode, per pass
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def seed(app: Flask, personas: Personas, clock: ManualClock) -> dict[str, int]:
    """A colleague, a waiting and a missed call in bob's queue, a template; their ids by path parameter."""
    org, queue = personas.bob.organisation_id, personas.bob.queue_id
    with app.app_context(), db.transaction() as session:
        entry = DirectoryEntry(
            organisation_id=org,
            name="Anna Berg",
            search_text="anna berg",
            mobile_number="+46701111111",
            email="anna@exempel.se",
        )
        calls = [
            Call(
                organisation_id=org,
                queue_id=queue,
                call_sid=f"CA{n:032x}",
                from_number="+46701234567",
                to_number=personas.bob.number,
                state=state,
                arrived_at=clock.now(),
                entered_queue_at=clock.now(),
            )
            for n, state in enumerate(["waiting", "completed"])
        ]
        template = MessageTemplate(organisation_id=org, name="Ring tillbaka", channel="any", body="{caller}")
        session.add_all([entry, *calls, template])
        session.flush()
        missed = MissedCall(
            organisation_id=org,
            call_id=calls[1].id,
            queue_id=queue,
            reason="abandoned",
            created_at=clock.now(),
        )
        session.add(missed)
        session.flush()
        return {
            "queue_id": queue,
            "entry_id": entry.id,
            "call_id": calls[0].id,
            "missed_id": missed.id,
            "template_id": template.id,
        }


def test_no_operation_answers_a_server_error(
    app: Flask, personas: Personas, clock: ManualClock, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("fuzzing once, on SQLite, is enough; the endpoint tests cover PostgreSQL")
    ids = seed(app, personas, clock)
    client = app.test_client()
    assert login(client, personas.bob.email).status_code == 302
    token = client.get("/api/v1/me").get_json()["csrf_token"]
    # A message from bob, so that GET /messages/{message_id} finds one.
    sent = client.post(
        "/api/v1/messages",
        json={
            "template_id": ids["template_id"],
            "channel": "email",
            "directory_entry_id": ids["entry_id"],
            "body": "Anna ringde",
        },
        headers={"X-CSRFToken": token},
    )
    assert sent.status_code == 201, sent.get_json()
    ids["message_id"] = sent.get_json()["message"]["id"]
    # Logged in to his queue, so that pause, resume and wrap-up have something to act on.
    queue_login = client.post(f"/api/v1/queues/{ids['queue_id']}/login", headers={"X-CSRFToken": token})
    assert queue_login.status_code == 200
    session_cookie = client.get_cookie("session", domain="koe.test")
    assert session_cookie is not None
    cookies = {"session": session_cookie.value}
    headers = {"X-CSRFToken": token}

    schema = schemathesis.openapi.from_path(SCHEMA_PATH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20

    def fuzz(strategy: Any) -> None:
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=BASE_URL, app=app, headers=headers, cookies=cookies)
            case.validate_response(response, checks=CHECKS, headers=headers)

        check()

    for operation in operations:
        names = {parameter.name for parameter in operation.path_parameters}
        pinned = {name: ids[name] for name in names if name in ids}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation.as_strategy(generation_mode=mode))
            if pinned:
                fuzz(operation.as_strategy(generation_mode=mode, path_parameters=pinned))
