"""Plain factory functions with overrides: `make_queue(session, org, wrap_up_seconds=30)`."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from queue_app.extensions import db
from queue_app.models import (
    Organisation,
    PhoneNumber,
    Queue,
    QueueMembership,
    User,
)

PASSWORD = "correct horse battery staple"
# Hashing is slow by design; tests share one hash of PASSWORD.
_PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
_seq = itertools.count(1)


def make_org(session: Session, **overrides: Any) -> Organisation:
    n = next(_seq)
    values: dict[str, Any] = {"name": f"Org {n}", "slug": f"org-{n}"} | overrides
    org = Organisation(**values)
    session.add(org)
    session.flush()
    return org


def make_user(session: Session, org: Organisation, **overrides: Any) -> User:
    n = next(_seq)
    values: dict[str, Any] = {
        "organisation_id": org.id,
        "email": f"user{n}@example.test",
        "name": f"User {n}",
        "password_hash": _PASSWORD_HASH,
        "role": "operator",
        "plan": "pro",
        "client_identity": f"op_{n}",
    } | overrides
    user = User(**values)
    session.add(user)
    session.flush()
    return user


def make_queue(session: Session, org: Organisation, **overrides: Any) -> Queue:
    n = next(_seq)
    values: dict[str, Any] = {"organisation_id": org.id, "name": f"Queue {n}", "slug": f"q-{n}"}
    queue = Queue(**(values | overrides))
    session.add(queue)
    session.flush()
    return queue


def make_number(session: Session, org: Organisation, queue: Queue | None, **overrides: Any) -> PhoneNumber:
    n = next(_seq)
    values: dict[str, Any] = {
        "organisation_id": org.id,
        "number": f"+468555{n:05d}",
        "queue_id": queue.id if queue else None,
    }
    number = PhoneNumber(**(values | overrides))
    session.add(number)
    session.flush()
    return number


def make_membership(session: Session, queue: Queue, user: User, **overrides: Any) -> QueueMembership:
    values: dict[str, Any] = {"queue_id": queue.id, "user_id": user.id, "may_see": True, "may_log_in": True}
    membership = QueueMembership(**(values | overrides))
    session.add(membership)
    session.flush()
    return membership


@dataclass(frozen=True)
class Persona:
    user_id: int
    email: str
    organisation_id: int
    queue_id: int
    number: str


@dataclass(frozen=True)
class Personas:
    alice: Persona
    bob: Persona
    charlie: Persona


def make_personas() -> Personas:
    with db.transaction() as session:
        org_a = make_org(session, name="Acme AB", slug="acme")
        org_b = make_org(session, name="Beta AB", slug="beta")
        queue_a = make_queue(session, org_a, name="Växeln", slug="vaxeln")
        queue_b = make_queue(session, org_b, name="Support", slug="support")
        number_a = make_number(session, org_a, queue_a, number="+46855500001")
        number_b = make_number(session, org_b, queue_b, number="+46855500002")
        alice = make_user(session, org_a, email="alice@acme.test", name="Alice", role="admin")
        bob = make_user(
            session, org_a, email="bob@acme.test", name="Bob", role="operator", client_identity="op_bob"
        )
        charlie = make_user(session, org_b, email="charlie@beta.test", name="Charlie", role="admin")
        make_membership(session, queue_a, bob)
        make_membership(session, queue_a, alice, may_log_in=False)
        make_membership(session, queue_b, charlie)
        return Personas(
            alice=Persona(alice.id, alice.email, org_a.id, queue_a.id, number_a.number),
            bob=Persona(bob.id, bob.email, org_a.id, queue_a.id, number_a.number),
            charlie=Persona(charlie.id, charlie.email, org_b.id, queue_b.id, number_b.number),
        )


# Logging in through the real form, with CSRF enabled as in production.

_CSRF_INPUT = re.compile(r'<input\b[^>]*\bname="csrf_token"[^>]*>')
_VALUE = re.compile(r'\bvalue="([^"]+)"')


def csrf_token_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    tag = _CSRF_INPUT.search(html)
    value = _VALUE.search(tag.group(0)) if tag else None
    assert value, "no csrf_token on the page"
    return value.group(1)


def login(
    client: FlaskClient, email: str, password: str = PASSWORD, *, remember: bool = False, next: str = ""
) -> TestResponse:
    """GET /login, take its CSRF token, POST the form; returns the POST's response (no redirects)."""
    url = f"/login?next={quote(next)}" if next else "/login"
    token = csrf_token_from(client.get(url).get_data(as_text=True))
    form = {"csrf_token": token, "email": email, "password": password}
    if remember:
        form["remember"] = "y"
    return client.post(url, data=form)
