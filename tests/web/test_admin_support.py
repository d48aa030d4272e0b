"""Helpers shared by the admin page tests (no tests of its own)."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from queue_app.extensions import db
from queue_app.models import AuditEntry
from tests.factories import csrf_token_from, login


def as_user(client: FlaskClient, email: str) -> FlaskClient:
    response = login(client, email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def token(client: FlaskClient) -> str:
    return csrf_token_from(client.get("/").get_data(as_text=True))


def post(client: FlaskClient, url: str, data: dict[str, Any] | None = None) -> TestResponse:
    return client.post(url, data={"csrf_token": token(client), **(data or {})})


def html(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def field_error(response: TestResponse, field: str) -> str | None:
    """The error message shown under `field`, or None."""
    match = re.search(
        rf'<p class="error" id="{re.escape(field)}-error" data-field="[^"]*">([^<]*)</p>', html(response)
    )
    return match.group(1) if match else None


def form_error(response: TestResponse) -> str | None:
    match = re.search(r'<p class="error form-error" role="alert">([^<]*)</p>', html(response))
    return match.group(1) if match else None


def audit_actions(app: Flask, organisation_id: int) -> list[str]:
    with app.app_context(), db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.organisation_id == organisation_id)
                .order_by(AuditEntry.id)
            )
        )


def last_audit(app: Flask, organisation_id: int) -> AuditEntry:
    with app.app_context(), db.transaction() as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.organisation_id == organisation_id)
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry is not None
        return entry
