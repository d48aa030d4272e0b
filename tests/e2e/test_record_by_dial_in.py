"""Recording a prompt by dialling in: the page gives a number and a one-time PIN, the admin calls it.

Through the emulator in virtual time: the recording number's Voice URL is the app's dial-in webhook;
a wrong PIN is refused (three tries, then goodbye); the right one leads into the same record /
listen / keep flow as the call-me path, and the worker (its round runs after every event) fetches
the kept recording into the prompt.
"""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import PhoneNumber, Recording
from queue_app.sim import Emulator
from queue_app.sim.parties import CallerScript
from tests.factories import Personas
from tests.web.test_admin_support import as_user, audit_actions, html, post

from .test_record_by_phone import welcome_prompt

RECORDING_NUMBER = "+46855509999"
ADMINS_MOBILE = "+46709990000"


def recording_line(app: Flask, emulator: Emulator, organisation_id: int) -> None:
    with app.app_context(), db.transaction() as session:
        session.add(
            PhoneNumber(organisation_id=organisation_id, number=RECORDING_NUMBER, records_prompts=True)
        )
    base = app.config["PUBLIC_BASE_URL"]
    emulator.add_number(
        RECORDING_NUMBER, f"{base}/twilio/record-prompt/dial-in", status_callback=f"{base}/twilio/status"
    )


def ask_for_pin(client: FlaskClient) -> str:
    page = html(post(client, "/admin/prompts/dial-in?kind=welcome&language=sv"))
    assert f'id="dial-in-number">{RECORDING_NUMBER}<' in page, page
    found = re.search(r'id="dial-in-pin">(\d{6})<', page)
    assert found, page
    return found.group(1)


def wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 10**6:06d}"


def test_an_admin_dials_in_enters_the_pin_and_records_a_prompt(
    app: Flask, client: FlaskClient, clock: ManualClock, emulator: Emulator, personas: Personas
) -> None:
    recording_line(app, emulator, personas.alice.organisation_id)
    as_user(client, personas.alice.email)
    pin = ask_for_pin(client)
    status = html(client.get("/admin/prompts/edit?kind=welcome&language=sv"))
    assert 'data-recording-status="dial_in"' in status
    assert pin not in status  # shown once, stored only as a keyed hash

    call = emulator.place_call(ADMINS_MOBILE, RECORDING_NUMBER, CallerScript(speak_for=4))
    assert call.wait_until_heard("Slå den sexsiffriga pinkoden", timeout=60)
    call.press(wrong(pin))
    assert call.wait_until_heard("Slå pinkoden igen", timeout=60)  # after "that PIN is not right"
    assert call.heard_text_contains("Den pinkoden stämmer inte")
    call.press(pin)
    assert call.wait_until_heard("Tryck 1 för att spara", timeout=120)
    assert call.heard_text_contains("Tala efter tonen")
    call.press("1")
    assert call.wait_until_status("completed", timeout=60)
    assert call.heard_text_contains("inspelningen är sparad")

    prompt = welcome_prompt(app)
    assert prompt.audio_content_type == "audio/wav" and prompt.audio_duration_seconds == 4.0
    with app.app_context():
        recording = db.session.scalars(select(Recording)).one()
        assert (recording.status, recording.user_id) == ("stored", personas.alice.user_id)
        assert recording.pin_hash == f"call:{call.sid}"
    actions = audit_actions(app, personas.alice.organisation_id)
    assert "prompt.record_by_dial_in" in actions and actions[-1] == "prompt.audio_recorded"
    assert emulator.errors == []


def test_three_wrong_pins_end_the_call_and_a_used_pin_never_works_again(
    app: Flask, client: FlaskClient, clock: ManualClock, emulator: Emulator, personas: Personas
) -> None:
    recording_line(app, emulator, personas.alice.organisation_id)
    as_user(client, personas.alice.email)
    pin = ask_for_pin(client)

    guesser = emulator.place_call("+46701110000", RECORDING_NUMBER, CallerScript())
    for attempt in range(3):
        asked = guesser.wait_until(
            lambda n=attempt: sum("pinkoden" in t and "Slå" in t for t in guesser.heard_texts) > n,
            timeout=60,
        )
        assert asked, guesser.heard_texts
        guesser.press(wrong(pin))
    assert guesser.wait_until_status("completed", timeout=60)
    assert guesser.heard_text_contains("Fel pinkod för många gånger")
    with app.app_context():
        session_row = db.session.scalars(select(Recording)).one()
        assert (session_row.status, session_row.pin_attempts) == ("dial_in", 3)

    admin = emulator.place_call(ADMINS_MOBILE, RECORDING_NUMBER, CallerScript(speak_for=3))
    assert admin.wait_until_heard("Slå den sexsiffriga pinkoden", timeout=60)
    admin.press(pin)
    assert admin.wait_until_heard("Tala efter tonen", timeout=60)
    admin.hang_up()
    emulator.advance(5)

    again = emulator.place_call("+46701110000", RECORDING_NUMBER, CallerScript())
    assert again.wait_until_heard("Slå den sexsiffriga pinkoden", timeout=60)
    again.press(pin)
    assert again.wait_until_heard("Den pinkoden stämmer inte", timeout=60)
    assert not again.heard_text_contains("Tala efter tonen")
    assert emulator.errors == []


def test_an_expired_pin_is_refused(
    app: Flask, client: FlaskClient, clock: ManualClock, emulator: Emulator, personas: Personas
) -> None:
    recording_line(app, emulator, personas.alice.organisation_id)
    as_user(client, personas.alice.email)
    pin = ask_for_pin(client)
    clock.advance(15 * 60 + 1)

    call = emulator.place_call(ADMINS_MOBILE, RECORDING_NUMBER, CallerScript())
    assert call.wait_until_heard("Slå den sexsiffriga pinkoden", timeout=60)
    call.press(pin)

    assert call.wait_until_heard("Den pinkoden stämmer inte", timeout=60)
    assert not call.heard_text_contains("Tala efter tonen")
