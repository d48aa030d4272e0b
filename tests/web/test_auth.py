"""Logging in and out: the form, remember-me, no user enumeration, CSRF, safe `next`."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from queue_app.auth import safe_next
from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import User
from queue_app.services import users
from tests.factories import PASSWORD, Personas, csrf_token_from, login

WRONG = "Fel e-postadress eller lösenord"
CSRF_MESSAGE = "Formuläret har gått ut eller skickades inte från Kö; ladda om sidan och försök igen."


def path_of(location: str) -> str:
    return urlsplit(location).path


def last_login_at(app: Flask, user_id: int):  # type: ignore[no-untyped-def]
    with app.app_context(), db.transaction() as session:
        return session.scalar(select(User.last_login_at).where(User.id == user_id))


def set_user(app: Flask, user_id: int, **values: object) -> None:
    with app.app_context(), db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(**values))


def error_message(html: str) -> str:
    start = html.index('role="alert">') + len('role="alert">')
    return html[start : html.index("</p>", start)]


def test_it_shows_the_login_form(client: FlaskClient) -> None:
    response = client.get("/login")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'name="email"' in html
    assert 'name="password"' in html
    assert 'name="remember"' in html
    assert csrf_token_from(html)


def test_it_logs_in_and_out(client: FlaskClient, personas: Personas) -> None:
    response = login(client, personas.bob.email)

    assert response.status_code == 302
    assert path_of(response.headers["Location"]) == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Bob" in page.get_data(as_text=True)

    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token})

    assert response.status_code == 302
    assert path_of(response.headers["Location"]) == "/login"
    assert path_of(client.get("/").headers["Location"]) == "/login"


def test_it_accepts_the_email_in_any_case_and_with_spaces(client: FlaskClient, personas: Personas) -> None:
    response = login(client, "  BOB@Acme.TEST ")

    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_it_records_the_time_of_log_in(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    assert last_login_at(app, personas.bob.user_id) is None

    login(client, personas.bob.email)

    assert last_login_at(app, personas.bob.user_id) == clock.now()


def test_it_sets_the_remember_cookie_only_when_asked(app: Flask, personas: Personas) -> None:
    forgetful = app.test_client()
    login(forgetful, personas.bob.email)
    assert forgetful.get_cookie("remember_token", domain="koe.test") is None

    remembered = app.test_client()
    login(remembered, personas.bob.email, remember=True)
    cookie = remembered.get_cookie("remember_token", domain="koe.test")
    assert cookie is not None
    assert cookie.http_only


def test_it_logs_in_again_from_the_remember_cookie_alone(app: Flask, personas: Personas) -> None:
    browser = app.test_client()
    login(browser, personas.bob.email, remember=True)
    browser.delete_cookie("session", domain="koe.test")  # the browser was closed
    assert browser.get_cookie("session", domain="koe.test") is None

    assert browser.get("/").status_code == 200


def test_it_forgets_the_remember_cookie_on_log_out(app: Flask, personas: Personas) -> None:
    browser = app.test_client()
    login(browser, personas.bob.email, remember=True)
    token = csrf_token_from(browser.get("/").get_data(as_text=True))

    browser.post("/logout", data={"csrf_token": token})

    assert browser.get_cookie("remember_token", domain="koe.test") is None
    assert browser.get("/").status_code == 302


def test_it_answers_wrong_password_and_unknown_email_alike(app: Flask, personas: Personas) -> None:
    wrong_password = login(app.test_client(), personas.bob.email, "not the password")
    unknown_email = login(app.test_client(), "nobody@acme.test", "not the password")

    assert wrong_password.status_code == unknown_email.status_code == 200
    assert error_message(wrong_password.get_data(as_text=True)) == WRONG
    assert error_message(unknown_email.get_data(as_text=True)) == WRONG


def test_it_checks_a_password_hash_even_for_an_unknown_email(
    app: Flask, personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real_check = users.check_password_hash

    def counting_check(pwhash: str, password: str) -> bool:
        checked.append(pwhash)
        return real_check(pwhash, password)

    monkeypatch.setattr(users, "check_password_hash", counting_check)

    login(app.test_client(), "nobody@acme.test", "not the password")
    login(app.test_client(), personas.bob.email, "not the password")

    assert len(checked) == 2
    assert checked[0] == users._dummy_hash()


def test_it_refuses_an_inactive_user_with_the_same_message(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    set_user(app, personas.bob.user_id, is_active=False)

    response = login(client, personas.bob.email)

    assert response.status_code == 200
    assert error_message(response.get_data(as_text=True)) == WRONG
    assert client.get("/").status_code == 302
    assert last_login_at(app, personas.bob.user_id) is None


def test_it_refuses_a_user_who_has_no_password_yet(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    set_user(app, personas.bob.user_id, password_hash=None)

    response = login(client, personas.bob.email, "")

    assert response.status_code == 200
    assert client.get("/").status_code == 302


def test_it_logs_out_a_user_who_is_deactivated(app: Flask, client: FlaskClient, personas: Personas) -> None:
    login(client, personas.bob.email)
    assert client.get("/").status_code == 200

    set_user(app, personas.bob.user_id, is_active=False)

    assert path_of(client.get("/").headers["Location"]) == "/login"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "", "password": PASSWORD}, "Skriv din e-postadress."),
        ({"email": "bob@acme.test", "password": ""}, "Skriv ditt lösenord."),
    ],
)
def test_it_asks_for_missing_fields(
    client: FlaskClient, personas: Personas, form: dict[str, str], message: str
) -> None:
    token = csrf_token_from(client.get("/login").get_data(as_text=True))

    response = client.post("/login", data={"csrf_token": token, **form})

    assert response.status_code == 200
    assert message in response.get_data(as_text=True)


def test_it_goes_back_to_the_page_asked_for(client: FlaskClient, personas: Personas) -> None:
    first = client.get("/?view=all")
    assert first.status_code == 302
    login_url = first.headers["Location"]
    assert urlsplit(login_url).query == "next=/?view%3Dall"

    response = login(client, personas.bob.email, next="/?view=all")

    assert response.headers["Location"] == "/?view=all"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.test/",
        "//evil.test/",
        "///evil.test/",
        "/\\evil.test/",
        "\\\\evil.test/",
        "/\t/evil.test/",
        "javascript:alert(1)",
        "http:/evil.test",
        "evil.test",
    ],
)
def test_it_does_not_follow_next_to_another_site(
    client: FlaskClient, personas: Personas, target: str
) -> None:
    response = login(client, personas.bob.email, next=target)

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/queues/3", "/queues/3"),
        ("/?a=b", "/?a=b"),
        ("", None),
        (None, None),
        ("//evil.test", None),
        ("/\\evil.test", None),
        ("https://koe.test/", None),
        ("/\n/evil.test", None),
    ],
)
def test_it_accepts_only_local_paths_as_next(target: str | None, expected: str | None) -> None:
    assert safe_next(target) == expected


def test_it_refuses_a_log_in_without_csrf_token(app: Flask, client: FlaskClient, personas: Personas) -> None:
    client.get("/login")

    response = client.post("/login", data={"email": personas.bob.email, "password": PASSWORD})

    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    assert last_login_at(app, personas.bob.user_id) is None


def test_it_refuses_a_log_in_with_a_forged_csrf_token(client: FlaskClient, personas: Personas) -> None:
    client.get("/login")

    response = client.post(
        "/login", data={"csrf_token": "forged", "email": personas.bob.email, "password": PASSWORD}
    )

    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_it_keeps_the_user_logged_in_when_log_out_lacks_csrf_token(
    client: FlaskClient, personas: Personas
) -> None:
    login(client, personas.bob.email)

    response = client.post("/logout")

    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert client.get("/").status_code == 200


def test_it_does_not_log_out_on_get(client: FlaskClient, personas: Personas) -> None:
    login(client, personas.bob.email)

    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_it_sends_a_logged_in_user_from_the_login_page_onwards(
    client: FlaskClient, personas: Personas
) -> None:
    login(client, personas.bob.email)

    response = client.get("/login")

    assert response.status_code == 302
    assert path_of(response.headers["Location"]) == "/"


def test_it_remembers_the_language_chosen_before_log_in(client: FlaskClient) -> None:
    token = csrf_token_from(client.get("/login").get_data(as_text=True))

    response = client.post("/language", data={"csrf_token": token, "locale": "en", "next": "/login"})

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get_cookie("locale", domain="koe.test").value == "en"
    assert ">Log in</h1>" in client.get("/login").get_data(as_text=True)


def test_it_ignores_an_unknown_language(client: FlaskClient) -> None:
    token = csrf_token_from(client.get("/login").get_data(as_text=True))

    client.post("/language", data={"csrf_token": token, "locale": "xx", "next": "/login"})

    assert client.get_cookie("locale", domain="koe.test") is None
    assert ">Logga in</h1>" in client.get("/login").get_data(as_text=True)


def test_it_saves_the_language_on_the_account_after_log_in(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    login(client, personas.bob.email)
    token = csrf_token_from(client.get("/").get_data(as_text=True))

    client.post("/language", data={"csrf_token": token, "locale": "en", "next": "/"})

    with app.app_context(), db.transaction() as session:
        assert session.scalar(select(User.locale).where(User.id == personas.bob.user_id)) == "en"
    other_browser = app.test_client()
    login(other_browser, personas.bob.email)
    assert "Your queues" in other_browser.get("/").get_data(as_text=True)


def test_it_logs_in_with_a_password_set_by_the_service(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context():
        users.set_password(personas.bob.user_id, "a brand new secret")

    assert login(client, personas.bob.email).status_code == 200
    assert login(client, personas.bob.email, "a brand new secret").status_code == 302


def test_it_stores_passwords_hashed_with_scrypt(app: Flask, personas: Personas) -> None:
    with app.app_context():
        users.set_password(personas.bob.user_id, "a brand new secret")
        with db.transaction() as session:
            stored = session.scalar(select(User.password_hash).where(User.id == personas.bob.user_id))

    assert stored is not None
    assert stored.startswith("scrypt:")
    assert "a brand new secret" not in stored


def test_it_refuses_a_short_password(app: Flask, personas: Personas) -> None:
    with app.app_context(), pytest.raises(users.UserError, match="at least 8"):
        users.set_password(personas.bob.user_id, "short")


def test_it_creates_a_user_who_can_log_in(app: Flask, client: FlaskClient, personas: Personas) -> None:
    with app.app_context():
        user_id = users.create_user(
            personas.alice.organisation_id, " Dora@Acme.test ", "Dora", plan="pro", password="dora's secret"
        )
        with db.transaction() as session:
            assert session.scalar(select(User.email).where(User.id == user_id)) == "dora@acme.test"

    assert login(client, "dora@acme.test", "dora's secret").status_code == 302


def test_it_refuses_a_second_user_with_the_same_email(app: Flask, personas: Personas) -> None:
    with app.app_context(), pytest.raises(users.EmailTaken):
        users.create_user(personas.alice.organisation_id, "BOB@acme.test", "Another Bob")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"email": "not-an-address"}, "not an e-mail address"),
        ({"role": "owner"}, "Unknown role"),
        ({"plan": "gold"}, "Unknown plan"),
        ({"locale": "de"}, "Unknown language"),
        ({"password": "short"}, "at least 8"),
    ],
)
def test_it_refuses_bad_user_details(
    app: Flask, personas: Personas, overrides: dict[str, str], message: str
) -> None:
    details = {"email": "dora@acme.test", "name": "Dora"} | overrides
    with app.app_context(), pytest.raises(users.UserError, match=message):
        users.create_user(personas.alice.organisation_id, **details)  # type: ignore[arg-type]
