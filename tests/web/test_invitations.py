"""Invitations by e-mail: sent by the worker to a real SMTP server, and the link's every state.

The SMTP server is aiosmtpd on 127.0.0.1 (as in tests/services/test_messages.py); the worker's
`messages.send_due` sends at the test's `clock`, so expiry and retries need no waiting.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import SentMessage, User
from queue_app.services import invitations, messages
from tests.factories import Personas, csrf_token_from, login
from tests.services.test_messages import Mailbox, free_port, start_smtp
from tests.web.test_admin_support import as_user, audit_actions, html, post

NEW_USER = {"email": "erik@acme.test", "name": "Erik Ek", "role": "operator", "plan": "pro", "locale": ""}
GOOD_PASSWORD = "fyra gröna äpplen i korgen"


@pytest.fixture
def smtp_port(app: Flask) -> int:
    port = free_port()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_STARTTLS=False, MAIL_FROM="koe@acme.test")
    return port


@pytest.fixture
def mailbox(smtp_port: int) -> Iterator[Mailbox]:
    box = Mailbox()
    controller = start_smtp(box, smtp_port)
    yield box
    controller.stop()


def run_worker(app: Flask, clock: ManualClock) -> int:
    with app.app_context():
        return messages.send_due(clock.now())


def mails(mailbox: Mailbox) -> list[Any]:
    return [message_from_bytes(e.original_content, policy=default_policy) for e in mailbox.received]


def link_path(mail: Any) -> str:
    found = re.search(r"http://koe\.test(/invitation/[A-Za-z0-9._-]+)", mail.get_content())
    assert found, mail.get_content()
    return found.group(1)


def invite_erik(app: Flask, personas: Personas, **extra: str) -> None:
    """Alice adds Erik with an invitation, in a browser of her own."""
    admin = as_user(app.test_client(), personas.alice.email)
    response = post(admin, "/admin/users/new", NEW_USER | {"invite": "y"} | extra)
    assert response.status_code == 200, html(response)
    assert 'id="invited"' in html(response)


def set_password(client: FlaskClient, path: str, password: str, confirm: str | None = None) -> Any:
    page = html(client.get(path))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, page
    data = {"csrf_token": token.group(1), "password": password, "confirm": confirm or password}
    return client.post(path, data=data)


def erik(app: Flask) -> User:
    with app.app_context(), db.transaction() as session:
        row = session.scalars(select(User).where(User.email == "erik@acme.test")).one()
        session.expunge(row)
        return row


def invitation_count(app: Flask) -> int:
    with app.app_context(), db.transaction() as session:
        return int(session.scalar(select(func.count()).where(SentMessage.invited_user_id.is_not(None))) or 0)


def test_an_invited_user_chooses_a_password_with_the_link_and_is_logged_in(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    assert mailbox.received == []  # the request only queued it

    assert run_worker(app, clock) == 1
    [mail] = mails(mailbox)
    assert mail["To"] == "erik@acme.test"
    assert mail["Subject"] == "Välkommen till Kö hos Acme AB: välj ditt lösenord"
    assert "Alice har bjudit in dig" in mail.get_content()
    path = link_path(mail)

    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"
    assert "Välj ditt lösenord" in html(page) and "erik@acme.test" in html(page)

    response = set_password(client, path, GOOD_PASSWORD)

    assert response.status_code == 302
    assert "Erik Ek" in html(client.get("/"))  # logged in as Erik
    assert login(app.test_client(), "erik@acme.test", GOOD_PASSWORD).status_code == 302
    assert audit_actions(app, personas.alice.organisation_id) == [
        "user.create",
        "user.invite",
        "user.invitation_accepted",
    ]
    # Single use: the link now says so, and offers a new one.
    reused = app.test_client().get(path)
    assert reused.status_code == 410
    assert 'data-link-state="used"' in html(reused) and "E-posta mig en ny länk" in html(reused)


def test_the_user_page_shows_the_delivery_and_the_link_state(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    as_user(client, personas.alice.email)
    user_id = erik(app).id
    assert 'data-invitation="queued"' in html(client.get(f"/admin/users/{user_id}"))

    run_worker(app, clock)

    page = html(client.get(f"/admin/users/{user_id}"))
    assert 'data-invitation="sent"' in page and "erik@acme.test" in page
    assert 'data-invitation="pending"' in html(client.get("/admin/users"))


@pytest.mark.parametrize(
    ("password", "confirm", "message"),
    [
        ("kort", None, "Använd minst 10 tecken."),
        ("Password2026!", None, "Det här lösenordet hör till de första som någon skulle gissa"),
        ("erik-ek-2026-kö", None, "Använd inte ditt namn eller din e-postadress i lösenordet."),
        ("aaaaaaaaaaaaaa", None, "Använd fler olika tecken än så."),
        (GOOD_PASSWORD, "något annat helt", "De två lösenorden skiljer sig åt."),
    ],
)
def test_a_weak_or_mistyped_password_is_refused_and_the_link_still_works(
    app: Flask,
    client: FlaskClient,
    personas: Personas,
    clock: ManualClock,
    mailbox: Mailbox,
    password: str,
    confirm: str | None,
    message: str,
) -> None:
    invite_erik(app, personas)
    run_worker(app, clock)
    path = link_path(mails(mailbox)[0])

    response = set_password(client, path, password, confirm)

    assert response.status_code == 422
    assert message in html(response)
    assert erik(app).password_hash is None
    assert set_password(client, path, GOOD_PASSWORD).status_code == 302


def test_an_expired_link_gets_a_clear_page_and_a_new_link_on_request(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    run_worker(app, clock)
    old = link_path(mails(mailbox)[0])
    clock.advance(7 * 24 * 3600 + 1)

    page = client.get(old)
    assert page.status_code == 410
    assert 'data-link-state="expired"' in html(page) and "7 dagar" in html(page)
    assert set_password_blocked(client, old)

    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html(page)).group(1)  # type: ignore[union-attr]
    asked = client.post(f"{old}/new", data={"csrf_token": token})
    assert asked.status_code == 200 and 'data-link-state="asked"' in html(asked)
    assert run_worker(app, clock) == 1
    new = link_path(mails(mailbox)[1])
    assert mails(mailbox)[1]["To"] == "erik@acme.test"
    assert "den nya länken du bad om" in mails(mailbox)[1].get_content()
    assert 'data-link-state="replaced"' in html(client.get(old))
    # Asking again at once sends nothing more (but says the same).
    assert client.post(f"{old}/new", data={"csrf_token": token}).status_code == 200
    assert invitation_count(app) == 2
    assert set_password(client, new, GOOD_PASSWORD).status_code == 302


def set_password_blocked(client: FlaskClient, path: str) -> bool:
    """A well-formed post (with the session's CSRF token) to a link that no longer works: refused."""
    token = csrf_token_from(html(client.get("/login")))
    data = {"csrf_token": token, "password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD}
    return client.post(path, data=data).status_code == 410


@pytest.mark.parametrize("how", ["edited", "other secret", "garbage", "wrong shape"])
def test_a_tampered_link_is_not_valid_and_offers_nothing(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox, how: str
) -> None:
    invite_erik(app, personas)
    run_worker(app, clock)
    path = link_path(mails(mailbox)[0])
    token = path.rsplit("/", 1)[1]
    forged = {
        "edited": token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        "other secret": URLSafeSerializer("not-the-secret", salt=invitations.TOKEN_SALT).dumps(
            [erik(app).id, "nonce"]
        ),
        "garbage": "nothing-here",
        "wrong shape": URLSafeSerializer("test-secret", salt=invitations.TOKEN_SALT).dumps({"u": 1}),
    }[how]

    page = client.get(f"/invitation/{forged}")

    assert page.status_code == 404
    assert 'data-link-state="invalid"' in html(page) and "/new" not in html(page)
    assert erik(app).password_hash is None


def test_a_signed_link_with_a_guessed_nonce_is_not_accepted(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    run_worker(app, clock)
    with app.app_context():
        forged = invitations.token_for(erik(app).id, "guessed")
    assert 'data-link-state="replaced"' in html(client.get(f"/invitation/{forged}"))
    assert set_password_blocked(client, f"/invitation/{forged}")
    assert erik(app).password_hash is None


def test_an_admin_of_another_organisation_cannot_resend_or_see_the_invitation(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    user_id = erik(app).id
    as_user(client, personas.charlie.email)

    assert post(client, f"/admin/users/{user_id}/invite").status_code == 404
    assert client.get(f"/admin/users/{user_id}").status_code == 404
    assert invitation_count(app) == 1


def test_a_link_opened_in_someone_elses_session_logs_in_the_invited_user_only(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    run_worker(app, clock)
    path = link_path(mails(mailbox)[0])
    as_user(client, personas.charlie.email)  # another organisation's admin, logged in

    assert set_password(client, path, GOOD_PASSWORD).status_code == 302

    assert "Erik Ek" in html(client.get("/"))
    assert client.get("/admin/users").status_code == 403  # Erik is an operator, not Charlie
    assert login(app.test_client(), personas.charlie.email).status_code == 302  # untouched


def test_invitations_are_never_listed_with_the_operators_messages(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    as_user(client, personas.bob.email)
    listed = client.get("/api/v1/messages").get_json()
    assert listed["messages"] == []
    with app.app_context(), db.transaction() as session:
        message_id = session.scalar(select(SentMessage.id))
    assert client.get(f"/api/v1/messages/{message_id}").status_code == 404


def test_a_failed_send_is_retried_then_shown_as_failed_and_can_be_sent_again(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    mailbox.refuse.add("erik@acme.test")
    invite_erik(app, personas)
    as_user(client, personas.alice.email)
    user_id = erik(app).id

    run_worker(app, clock)
    page = html(client.get(f"/admin/users/{user_id}"))
    assert 'data-invitation="retrying"' in page and "Recipient address rejected" in page
    for wait in (30, 120, 600):
        clock.advance(wait)
        assert run_worker(app, clock) == 1

    page = html(client.get(f"/admin/users/{user_id}"))
    assert 'data-invitation="failed"' in page and "gave up after 4 attempts" in page
    assert 'data-invitation="failed"' in html(client.get("/admin/users"))

    mailbox.refuse.clear()
    response = post(client, f"/admin/users/{user_id}/invite")
    assert response.status_code == 302
    assert run_worker(app, clock) == 1
    assert len(mailbox.received) == 1
    assert 'data-invitation="sent"' in html(client.get(f"/admin/users/{user_id}"))
    assert audit_actions(app, personas.alice.organisation_id)[-1] == "user.invite"


def test_sending_again_replaces_a_waiting_invitation_and_the_old_link(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    as_user(client, personas.alice.email)
    user_id = erik(app).id

    post(client, f"/admin/users/{user_id}/invite")  # before the worker sent the first

    assert run_worker(app, clock) == 1
    assert len(mailbox.received) == 1
    with app.app_context(), db.transaction() as session:
        statuses = session.execute(
            select(SentMessage.status, SentMessage.error).order_by(SentMessage.id)
        ).all()
    assert [tuple(s) for s in statuses] == [("failed", "Replaced by a newer invitation."), ("sent", None)]
    assert set_password(client, link_path(mails(mailbox)[0]), GOOD_PASSWORD).status_code == 302


def test_a_deactivated_user_cannot_be_invited_and_their_link_stops_working(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas)
    run_worker(app, clock)
    path = link_path(mails(mailbox)[0])
    with app.app_context(), db.transaction() as session:
        session.scalars(select(User).where(User.email == "erik@acme.test")).one().is_active = False
    as_user(client, personas.alice.email)

    post(client, f"/admin/users/{erik(app).id}/invite")

    assert invitation_count(app) == 1
    assert client.get(path).status_code == 404


def test_an_english_speaking_user_is_invited_in_english(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, mailbox: Mailbox
) -> None:
    invite_erik(app, personas, locale="en")
    run_worker(app, clock)
    [mail] = mails(mailbox)
    assert mail["Subject"] == "Welcome to Kö at Acme AB: choose your password"
    assert "Alice has invited you" in mail.get_content()
    page = html(app.test_client().get(link_path(mail)))
    assert "Choose your password" in page


def test_the_new_user_form_offers_the_invitation_by_default(client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)
    form = html(client.get("/admin/users/new"))
    invite = re.search(r'<input[^>]*\bid="invite"[^>]*>', form)
    temporary = re.search(r'<input[^>]*\bid="set_password"[^>]*>', form)
    assert invite and " checked" in invite.group(0)
    assert temporary and " checked" not in temporary.group(0)
