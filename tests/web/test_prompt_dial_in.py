"""Recording by dialling in: the recording number on the organisation page, the prompt page's PIN,
and the dial-in webhooks answered on their own (the whole call is in tests/e2e)."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import AuditEntry, PhoneNumber, Recording
from queue_app.services import prompt_dial_in
from tests.factories import Personas
from tests.twilio_helpers import new_call_sid, signed_post, spoken_text, twiml_of, voice_params
from tests.web.test_admin_support import as_user, field_error, form_error, html, post

RECORDING_NUMBER = "+46855509999"
OTHER_RECORDING_NUMBER = "+46855508888"


def add_recording_number(app: Flask, organisation_id: int, number: str = RECORDING_NUMBER) -> None:
    with app.app_context(), db.transaction() as session:
        session.add(PhoneNumber(organisation_id=organisation_id, number=number, records_prompts=True))


def start_session(app: Flask, client: FlaskClient, email: str) -> str:
    as_user(client, email)
    page = html(post(client, "/admin/prompts/dial-in?kind=welcome&language=sv"))
    found = re.search(r'id="dial-in-pin">(\d{6})<', page)
    assert found, page
    return found.group(1)


def recordings(app: Flask) -> list[tuple[int, str, int]]:
    with app.app_context(), db.transaction() as session:
        return [
            (r.organisation_id, r.status, r.pin_attempts)
            for r in session.scalars(select(Recording).order_by(Recording.id))
        ]


# ---- the organisation page ------------------------------------------------------------------------


def test_an_admin_marks_a_number_as_the_recording_number(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/numbers", {"number": RECORDING_NUMBER, "records_prompts": "y"})

    assert response.status_code == 302, html(response)
    assert "data-records-prompts" in html(client.get("/admin/organisation"))
    with app.app_context(), db.transaction() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None and entry.action == "number.create"
        assert entry.changes["records_prompts"] == [None, True]
    # A second one takes over: one recording number per organisation.
    post(client, "/admin/numbers", {"number": OTHER_RECORDING_NUMBER, "records_prompts": "y"})
    with app.app_context(), db.transaction() as session:
        marked = session.scalars(select(PhoneNumber.number).where(PhoneNumber.records_prompts.is_(True)))
        assert list(marked) == [OTHER_RECORDING_NUMBER]


def test_a_recording_number_cannot_also_reach_a_queue(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    with app.app_context(), db.transaction() as session:
        number_id = session.scalar(select(PhoneNumber.id).where(PhoneNumber.number == personas.alice.number))

    response = post(
        client,
        f"/admin/numbers/{number_id}",
        {"queue_id": str(personas.alice.queue_id), "records_prompts": "y"},
    )

    assert response.status_code == 422
    assert field_error(response, "records_prompts")
    with app.app_context(), db.transaction() as session:
        assert session.get_one(PhoneNumber, number_id).records_prompts is False


# ---- the prompt page -------------------------------------------------------------------------------


def test_without_a_recording_number_the_page_says_what_to_do(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    assert "/admin/organisation#numbers" in html(client.get("/admin/prompts/edit?kind=welcome&language=sv"))

    response = post(client, "/admin/prompts/dial-in?kind=welcome&language=sv")

    assert response.status_code == 422
    assert form_error(response) == (
        "Markera först ett av organisationens nummer som numret som spelar in meddelanden."
    )
    assert recordings(app) == []


def test_the_page_shows_the_number_and_a_pin_once_and_audits_it(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    add_recording_number(app, personas.alice.organisation_id)

    pin = start_session(app, client, personas.alice.email)

    assert recordings(app) == [(personas.alice.organisation_id, "dial_in", 0)]
    with app.app_context(), db.transaction() as session:
        row = session.scalars(select(Recording)).one()
        assert row.pin_hash and pin not in row.pin_hash
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None and entry.action == "prompt.record_by_dial_in"
        assert entry.changes["recording_number"] == [None, RECORDING_NUMBER]
        assert pin not in str(entry.changes)
    # A new request replaces the waiting one.
    assert post(client, "/admin/prompts/dial-in?kind=welcome&language=sv").status_code == 200
    assert [status for _org, status, _n in recordings(app)] == ["abandoned", "dial_in"]


def test_a_queues_prompt_of_another_organisation_is_not_found(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    add_recording_number(app, personas.charlie.organisation_id)
    as_user(client, personas.charlie.email)

    response = post(
        client, f"/admin/queues/{personas.alice.queue_id}/prompts/dial-in?kind=welcome&language=sv"
    )

    assert response.status_code == 404
    assert recordings(app) == []


# ---- the webhooks ------------------------------------------------------------------------------------


def test_the_dial_in_webhook_asks_for_six_digits_and_needs_twilios_signature(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    add_recording_number(app, personas.alice.organisation_id)
    params = voice_params(to=RECORDING_NUMBER)

    assert client.post("/twilio/record-prompt/dial-in", data=params).status_code == 403
    root = twiml_of(signed_post(client, "/twilio/record-prompt/dial-in", params))

    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("numDigits") == "6"
    assert gather.get("action") == "http://koe.test/twilio/record-prompt/dial-in/pin?try=1"
    assert "Slå den sexsiffriga pinkoden" in spoken_text(root)[0]


def test_another_number_on_the_dial_in_url_says_goodbye_in_both_languages(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    root = twiml_of(
        signed_post(client, "/twilio/record-prompt/dial-in", voice_params(to=personas.alice.number))
    )

    assert root.find("Gather") is None and root.find("Hangup") is not None
    assert any("spelar inte in" in t for t in spoken_text(root))
    assert any("does not record" in t for t in spoken_text(root))


def test_a_retried_webhook_of_the_same_call_opens_the_same_session(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    add_recording_number(app, personas.alice.organisation_id)
    pin = start_session(app, client, personas.alice.email)
    params = voice_params(to=RECORDING_NUMBER, Digits=pin)

    first = twiml_of(signed_post(client, "/twilio/record-prompt/dial-in/pin?try=1", params))
    again = twiml_of(signed_post(client, "/twilio/record-prompt/dial-in/pin?try=1", params))

    redirect = first.find("Redirect")
    assert redirect is not None and "/twilio/record-prompt/" in (redirect.text or "")
    assert again.find("Redirect") is not None and again.find("Redirect").text == redirect.text  # type: ignore[union-attr]
    other_call = voice_params(to=RECORDING_NUMBER, call_sid=new_call_sid(), Digits=pin)
    refused = twiml_of(signed_post(client, "/twilio/record-prompt/dial-in/pin?try=1", other_call))
    assert refused.find("Redirect") is None or "try=2" in (refused.find("Redirect").text or "")  # type: ignore[union-attr]
    assert any("stämmer inte" in t for t in spoken_text(refused))


def test_a_pin_works_only_on_its_own_organisations_number(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    add_recording_number(app, personas.alice.organisation_id)
    add_recording_number(app, personas.charlie.organisation_id, OTHER_RECORDING_NUMBER)
    pin = start_session(app, client, personas.alice.email)

    with app.app_context():
        assert prompt_dial_in.enter_pin(OTHER_RECORDING_NUMBER, new_call_sid(), pin, clock.now()) is None
        assert prompt_dial_in.enter_pin(personas.alice.number, new_call_sid(), pin, clock.now()) is None
    assert recordings(app) == [(personas.alice.organisation_id, "dial_in", 0)]


def test_too_many_wrong_pins_fail_the_session(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    add_recording_number(app, personas.alice.organisation_id)
    pin = start_session(app, client, personas.alice.email)
    wrong = f"{(int(pin) + 1) % 10**6:06d}"

    with app.app_context():
        for _attempt in range(prompt_dial_in.MAX_WRONG_PINS):
            assert prompt_dial_in.enter_pin(RECORDING_NUMBER, new_call_sid(), wrong, clock.now()) is None
        assert prompt_dial_in.enter_pin(RECORDING_NUMBER, new_call_sid(), pin, clock.now()) is None

    assert recordings(app) == [(personas.alice.organisation_id, "failed", prompt_dial_in.MAX_WRONG_PINS)]
