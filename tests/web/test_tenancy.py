"""Tenancy and permissions: nothing of one organisation reaches another; roles and queue rights hold."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import Forbidden, NotFound

from queue_app.auth import (
    CurrentUser,
    admin_required,
    get_in_organisation,
    load_current_user,
    queues_visible_to,
    require_queue,
)
from queue_app.extensions import db
from queue_app.models import Organisation, Queue, User
from tests.factories import (
    Personas,
    login,
    make_membership,
    make_number,
    make_queue,
    make_user,
)


@pytest.fixture
def admin_app(app: Flask) -> Flask:
    """The app with one admin-only page, registered before the first request."""
    bp = Blueprint("test_admin_only", __name__)

    @bp.get("/test-admin-only")
    @admin_required
    def admin_only() -> str:
        return "admin page"

    app.register_blueprint(bp)
    return app


@pytest.fixture
def request_context(app: Flask) -> Iterator[None]:
    with app.test_request_context():
        yield


def as_user(user_id: int) -> CurrentUser:
    user = load_current_user(db.session, user_id)
    assert user is not None
    return user


def add_queue(
    personas: Personas, *, member_of: int | None = None, org_of: str = "alice", **membership: bool
) -> int:
    """A queue in alice's (or charlie's) organisation, optionally with a membership for one user."""
    with db.transaction() as session:
        org = session.get(Organisation, getattr(personas, org_of).organisation_id)
        queue = make_queue(session, org)
        if member_of is not None:
            user = session.get(User, member_of)
            make_membership(session, queue, user, **membership)
        return queue.id


def test_it_hides_another_organisations_queue_from_an_admin(
    request_context: None, personas: Personas
) -> None:
    charlie = as_user(personas.charlie.user_id)

    with pytest.raises(NotFound):
        require_queue(db.session, charlie, personas.alice.queue_id)
    with pytest.raises(NotFound):
        require_queue(db.session, charlie, personas.alice.queue_id, log_in=True)


def test_it_answers_an_unknown_queue_id_like_a_foreign_one(request_context: None, personas: Personas) -> None:
    charlie = as_user(personas.charlie.user_id)

    with pytest.raises(NotFound):
        require_queue(db.session, charlie, 999_999)


def test_it_gives_an_admin_every_queue_of_their_organisation(
    request_context: None, personas: Personas
) -> None:
    queue_id = add_queue(personas)  # alice has no membership in it
    alice = as_user(personas.alice.user_id)

    assert require_queue(db.session, alice, queue_id).id == queue_id
    assert require_queue(db.session, alice, personas.alice.queue_id).name == "Växeln"


def test_it_hides_a_queue_from_an_operator_without_may_see(request_context: None, personas: Personas) -> None:
    hidden = add_queue(personas, member_of=personas.bob.user_id, may_see=False, may_log_in=False)
    not_a_member = add_queue(personas)
    bob = as_user(personas.bob.user_id)

    with pytest.raises(NotFound):
        require_queue(db.session, bob, hidden)
    with pytest.raises(NotFound):
        require_queue(db.session, bob, not_a_member)
    assert require_queue(db.session, bob, personas.bob.queue_id, log_in=True).id == personas.bob.queue_id


def test_it_forbids_logging_in_to_a_queue_seen_but_not_served(
    request_context: None, personas: Personas
) -> None:
    seen_only = add_queue(personas, member_of=personas.bob.user_id, may_see=True, may_log_in=False)
    bob = as_user(personas.bob.user_id)
    alice = as_user(personas.alice.user_id)

    assert require_queue(db.session, bob, seen_only).id == seen_only
    with pytest.raises(Forbidden):
        require_queue(db.session, bob, seen_only, log_in=True)
    # alice's membership of Växeln lets her see it but not take its calls.
    with pytest.raises(Forbidden):
        require_queue(db.session, alice, personas.alice.queue_id, log_in=True)


def test_it_forbids_logging_in_on_the_basic_plan(
    app: Flask, request_context: None, personas: Personas
) -> None:
    with db.transaction() as session:
        org = session.get(Organisation, personas.alice.organisation_id)
        queue = session.get(Queue, personas.alice.queue_id)
        basic = make_user(session, org, plan="basic")
        make_membership(session, queue, basic, may_see=True, may_log_in=True)
        basic_id = basic.id

    with pytest.raises(Forbidden):
        require_queue(db.session, as_user(basic_id), personas.alice.queue_id, log_in=True)


def test_it_lists_only_the_queues_a_user_may_see(request_context: None, personas: Personas) -> None:
    hidden = add_queue(personas, member_of=personas.bob.user_id, may_see=False, may_log_in=True)
    add_queue(personas)

    bob_sees = queues_visible_to(db.session, as_user(personas.bob.user_id))
    alice_sees = queues_visible_to(db.session, as_user(personas.alice.user_id))
    charlie_sees = queues_visible_to(db.session, as_user(personas.charlie.user_id))

    assert [q.id for q in bob_sees] == [personas.bob.queue_id]
    assert bob_sees[0].may_log_in is True
    assert bob_sees[0].numbers == (personas.bob.number,)
    assert len(alice_sees) == 3
    assert hidden in {q.id for q in alice_sees}
    assert [q.id for q in charlie_sees] == [personas.charlie.queue_id]


def test_it_scopes_any_row_to_the_users_organisation(request_context: None, personas: Personas) -> None:
    charlie = as_user(personas.charlie.user_id)

    with pytest.raises(NotFound):
        get_in_organisation(db.session, Queue, personas.alice.queue_id, charlie)
    assert get_in_organisation(db.session, Queue, personas.charlie.queue_id, charlie).name == "Support"


def test_it_never_shows_another_organisations_queues_on_the_start_page(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        org_a = session.get(Organisation, personas.alice.organisation_id)
        other = make_queue(session, org_a, name="Acme Ekonomi")
        make_number(session, org_a, other, number="+46855509999")

    login(client, personas.charlie.email)
    html = client.get("/").get_data(as_text=True)

    assert "Support" in html
    assert "Växeln" not in html
    assert "Acme Ekonomi" not in html
    assert personas.alice.number not in html
    assert "+46855509999" not in html


def test_it_shows_an_operator_only_queues_with_may_see(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context():
        add_queue(personas)
    with app.app_context(), db.transaction() as session:
        org_a = session.get(Organisation, personas.alice.organisation_id)
        hidden = make_queue(session, org_a, name="Hemliga kön")
        bob = session.get(User, personas.bob.user_id)
        make_membership(session, hidden, bob, may_see=False)

    login(client, personas.bob.email)
    html = client.get("/").get_data(as_text=True)

    assert "Växeln" in html
    assert "Hemliga kön" not in html


def test_it_forbids_an_operator_an_admin_page(admin_app: Flask, personas: Personas) -> None:
    client = admin_app.test_client()
    login(client, personas.bob.email)

    response = client.get("/test-admin-only")

    assert response.status_code == 403
    assert "Du har inte behörighet att göra det." in response.get_data(as_text=True)


def test_it_lets_an_admin_see_an_admin_page(admin_app: Flask, personas: Personas) -> None:
    client = admin_app.test_client()
    login(client, personas.alice.email)

    response = client.get("/test-admin-only")

    assert response.status_code == 200
    assert response.get_data(as_text=True) == "admin page"


def test_it_sends_an_anonymous_visitor_of_an_admin_page_to_log_in(
    admin_app: Flask, personas: Personas
) -> None:
    response = admin_app.test_client().get("/test-admin-only")

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_it_answers_forbidden_as_json_to_an_api_client(admin_app: Flask, personas: Personas) -> None:
    client = admin_app.test_client()
    login(client, personas.bob.email)

    response = client.get("/test-admin-only", headers={"Accept": "application/json"})

    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"
