"""The pages: protected by default, the start page, error pages, and Swedish or English."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from queue_app.auth import is_public
from queue_app.extensions import db
from queue_app.models import Organisation, User
from queue_app.services import users
from tests.factories import Personas, login, make_membership, make_number, make_queue


def is_sent_to_log_in(response) -> bool:  # type: ignore[no-untyped-def]
    if response.status_code == 401:
        return True
    return response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


@pytest.fixture
def app_with_new_blueprint(app: Flask) -> Flask:
    """Someone adds a blueprint and forgets about log-in."""
    bp = Blueprint("forgot_about_login", __name__)

    @bp.get("/brand-new-page")
    def brand_new_page() -> str:
        return "secret"

    @bp.get("/api/brand-new")
    def brand_new_api() -> dict[str, str]:
        return {"secret": "yes"}

    @bp.get("/crash")
    def crash() -> str:
        with db.transaction() as session:
            session.add(Organisation(name="Half-made AB", slug="half-made"))
        db.session.add(Organisation(name="Unfinished AB", slug="unfinished"))
        db.session.flush()
        raise RuntimeError("boom")

    app.register_blueprint(bp)
    return app


def test_it_sends_anonymous_visitors_of_every_page_to_log_in(app_with_new_blueprint: Flask) -> None:
    client = app_with_new_blueprint.test_client()
    checked = []
    for rule in app_with_new_blueprint.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.arguments or is_public(rule.endpoint, rule.rule):
            continue
        response = client.get(rule.rule)
        assert is_sent_to_log_in(response), f"{rule.rule} ({rule.endpoint}) is open to anyone"
        checked.append(rule.endpoint)

    assert {"main.index", "forgot_about_login.brand_new_page"} <= set(checked)


def test_it_protects_a_new_blueprint_by_default(app_with_new_blueprint: Flask) -> None:
    client = app_with_new_blueprint.test_client()

    page = client.get("/brand-new-page")
    api = client.get("/api/brand-new")
    json_page = client.get("/brand-new-page", headers={"Accept": "application/json"})

    assert page.status_code == 302
    assert urlsplit(page.headers["Location"]).path == "/login"
    assert api.status_code == 401
    assert api.get_json()["error"] == "login_required"
    assert json_page.status_code == 401


def test_it_protects_unknown_paths_too(client: FlaskClient) -> None:
    assert is_sent_to_log_in(client.get("/no-such-page"))


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("auth.login", "/login"),
        ("health.healthz", "/healthz"),
        ("static", "/static/css/koe.css"),
        ("voice.incoming_call", "/twilio/voice"),
        (None, "/twilio/status"),
        ("emulator.calls", "/emulator/2010-04-01/Accounts/AC1/Calls.json"),
    ],
)
def test_it_keeps_the_allow_list_public(endpoint: str | None, path: str) -> None:
    assert is_public(endpoint, path)


def test_it_does_not_open_the_rest_of_the_health_blueprint() -> None:
    assert not is_public("health.details", "/health/details")


def test_it_serves_health_and_static_files_without_log_in(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    css = client.get("/static/css/koe.css")
    assert css.status_code == 200
    css.close()


def test_it_shows_the_queues_with_their_numbers_and_rights(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        org_a = session.get(Organisation, personas.alice.organisation_id)
        second = make_queue(session, org_a, name="Ekonomi")
        make_number(session, org_a, second, number="+46855500077")
        make_membership(session, second, session.get(User, personas.bob.user_id), may_log_in=False)

    login(client, personas.bob.email)
    html = client.get("/").get_data(as_text=True)

    assert "Dina köer" in html
    assert html.index("Ekonomi") < html.index("Växeln")
    assert personas.bob.number in html
    assert "+46855500077" in html
    assert html.count("Du kan logga in och ta samtal") == 1
    assert html.count("Du tar inte samtal i den här kön") == 1
    assert "Administratör" not in html
    assert "Bob" in html and "Acme AB" in html


def test_it_marks_an_admin_and_shows_every_queue_of_the_organisation(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        make_queue(session, session.get(Organisation, personas.alice.organisation_id), name="Ekonomi")

    login(client, personas.alice.email)
    html = client.get("/").get_data(as_text=True)

    assert "Administratör" in html
    assert "Som administratör ser du alla köer i Acme AB." in html
    assert "Växeln" in html and "Ekonomi" in html
    assert "Inget nummer går till den här kön ännu." in html


def test_it_says_so_when_there_are_no_queues(app: Flask, client: FlaskClient, personas: Personas) -> None:
    with app.app_context():
        users.create_user(personas.alice.organisation_id, "eve@acme.test", "Eve", password="eve's secret")

    login(client, "eve@acme.test", "eve's secret")

    assert "Du har inga köer ännu." in client.get("/").get_data(as_text=True)


def test_it_shows_a_log_out_form_with_csrf(client: FlaskClient, personas: Personas) -> None:
    login(client, personas.bob.email)
    html = client.get("/").get_data(as_text=True)

    form = re.search(r'<form class="logout" method="post" action="/logout">(.*?)</form>', html, re.S)
    assert form is not None
    assert 'name="csrf_token"' in form.group(1)


def test_it_answers_a_missing_page_with_a_translated_404(client: FlaskClient, personas: Personas) -> None:
    login(client, personas.bob.email)

    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert "Sidan finns inte" in response.get_data(as_text=True)


def test_it_rolls_back_and_shows_a_500_page(
    app_with_new_blueprint: Flask, personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_with_new_blueprint.config["PROPAGATE_EXCEPTIONS"] = False
    rollbacks = []
    real_rollback = db.session.rollback
    monkeypatch.setattr(db.session, "rollback", lambda: (rollbacks.append(1), real_rollback()))
    client = app_with_new_blueprint.test_client()
    login(client, personas.bob.email)

    response = client.get("/crash")

    assert response.status_code == 500
    assert "Något gick fel" in response.get_data(as_text=True)
    assert rollbacks
    with app_with_new_blueprint.app_context(), db.transaction() as session:
        names = set(session.scalars(select(Organisation.name)))
        assert "Unfinished AB" not in names
        assert session.scalar(select(func.count()).select_from(Organisation)) == 3


def test_it_shows_the_login_page_in_swedish_by_default(client: FlaskClient) -> None:
    html = client.get("/login").get_data(as_text=True)

    assert '<html lang="sv">' in html
    assert ">Logga in</h1>" in html
    assert "E-postadress" in html
    assert "Lösenord" in html
    assert "Kom ihåg mig" in html


def test_it_shows_the_login_page_in_english_to_an_english_browser(client: FlaskClient) -> None:
    html = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)

    assert '<html lang="en">' in html
    assert ">Log in</h1>" in html
    assert "E-mail" in html
    assert "Remember me" in html


def test_it_prefers_the_chosen_language_to_the_browsers(client: FlaskClient) -> None:
    client.set_cookie("locale", "sv", domain="koe.test")

    html = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)

    assert ">Logga in</h1>" in html


def test_it_speaks_swedish_to_a_swedish_user_and_english_to_an_english_one(
    app: Flask, personas: Personas
) -> None:
    with app.app_context():
        users.set_locale(personas.alice.user_id, "en")
    swedish, english = app.test_client(), app.test_client()
    login(swedish, personas.bob.email)
    login(english, personas.alice.email)

    swedish_html = swedish.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    english_html = english.get("/").get_data(as_text=True)

    assert "Dina köer" in swedish_html and "Logga ut" in swedish_html
    assert "Your queues" in english_html and "Log out" in english_html
    assert "Dina köer" not in english_html


def test_it_follows_the_organisations_language_when_the_user_has_none(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        session.get(Organisation, personas.charlie.organisation_id).locale = "en"

    login(client, personas.charlie.email)

    assert "Your queues" in client.get("/").get_data(as_text=True)
