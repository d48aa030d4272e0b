"""The live demo's API through the Flask test client, on an emulator in virtual time (no sleeping):
the phone page dials, hears, presses and hangs up; the operator's browser device rings and answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from queue_app.clock import ManualClock
from queue_app.services import operators
from queue_app.sim import Emulator
from queue_app.sim.simulate import bind_emulator
from tests.factories import Personas, login


@pytest.fixture
def emulator(app: Flask, clock: ManualClock) -> Iterator[Emulator]:
    emulator = bind_emulator(app, clock)
    yield emulator
    app.extensions.pop("twilio_http_client", None)
    app.extensions.pop("koe_emulator", None)


@pytest.fixture
def bob(client: FlaskClient, personas: Personas) -> FlaskClient:
    assert login(client, personas.bob.email).status_code == 302
    return client


def heard(client: FlaskClient, sid: str) -> dict:  # type: ignore[type-arg]
    response = client.get(f"/emulator/demo/calls/{sid}")
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def test_the_phone_page_lists_the_organisations_numbers(
    bob: FlaskClient, personas: Personas, emulator
) -> None:
    page = bob.get("/emulator/phone").get_data(as_text=True)
    assert personas.bob.number in page
    assert personas.charlie.number not in page
    assert personas.bob.number in emulator.numbers


def test_a_newcomer_dials_hears_the_welcome_presses_and_hangs_up(
    bob: FlaskClient, personas: Personas, emulator: Emulator
) -> None:
    response = bob.post("/emulator/demo/dial", json={"to": personas.bob.number})
    assert response.status_code == 201
    sid = response.get_json()["sid"]

    emulator.advance(5)
    view = heard(bob, sid)
    assert view["status"] == "in-progress" and not view["ended"]
    says = [h["content"] for h in view["heard"] if h["kind"] == "say"]
    assert any("Välkommen" in text for text in says), says
    assert heard(bob, sid + "")["next"] == len(view["heard"])
    assert bob.get(f"/emulator/demo/calls/{sid}?since={view['next']}").get_json()["heard"] == []

    assert bob.post(f"/emulator/demo/calls/{sid}/press", json={"digits": "1"}).status_code == 200
    assert bob.post(f"/emulator/demo/calls/{sid}/press", json={"digits": "x"}).status_code == 400
    assert bob.post(f"/emulator/demo/calls/{sid}/hangup", json={}).status_code == 200
    emulator.advance(1)
    assert heard(bob, sid)["ended"]


def test_the_demo_api_needs_a_login_json_and_the_callers_own_call(
    client: FlaskClient, personas: Personas, emulator: Emulator
) -> None:
    assert client.post("/emulator/demo/dial", json={"to": personas.bob.number}).status_code == 401
    assert client.get("/emulator/demo/token").status_code == 401
    assert client.get("/emulator/phone").status_code == 302  # to the log-in page
    login(client, personas.bob.email)
    assert client.post("/emulator/demo/dial", data={"to": personas.bob.number}).status_code == 415
    refused = client.post("/emulator/demo/dial", json={"to": personas.charlie.number})
    assert refused.status_code == 400
    other = emulator.place_call("+46709999999", personas.bob.number)
    assert client.get(f"/emulator/demo/calls/{other.sid}").status_code == 404


def test_the_operators_browser_device_rings_and_answers_through_the_emulator(
    app: Flask, clock: ManualClock, bob: FlaskClient, personas: Personas, emulator: Emulator
) -> None:
    token_response = bob.get("/emulator/demo/token").get_json()
    assert token_response["identity"] == "op_bob"
    headers = {"X-Device-Token": token_response["token"]}
    assert bob.post("/emulator/demo/device/register", json={}, headers=headers).status_code == 200
    assert (
        bob.post("/emulator/demo/device/register", json={}, headers={"X-Device-Token": "x"}).status_code
        == 403
    )
    with app.app_context():
        operators.log_in(personas.bob.user_id, [personas.bob.queue_id], clock.now())

    sid = bob.post("/emulator/demo/dial", json={"to": personas.bob.number}).get_json()["sid"]
    emulator.advance(5)
    calls = bob.get("/emulator/demo/device/calls", headers=headers).get_json()
    assert calls["registered"]
    [incoming] = calls["calls"]
    # The browser rings on a call of its own while the caller waits in the queue, from the number
    # the caller rang (the console shows the caller's number from the offer).
    assert incoming["parameters"]["From"] == emulator.state.calls[sid].to
    assert incoming["parameters"]["ParentCallSid"] == "" and not incoming["answered"]

    leg = incoming["sid"]
    assert bob.post(f"/emulator/demo/device/calls/{leg}/accept", json={}, headers=headers).status_code == 200
    emulator.advance(2)
    assert heard(bob, sid)["bridged"]
    known = bob.get(f"/emulator/demo/device/calls?known={leg}", headers=headers).get_json()["calls"]
    assert [c["answered"] for c in known] == [True]

    assert (
        bob.post(f"/emulator/demo/device/calls/{leg}/disconnect", json={}, headers=headers).status_code == 200
    )
    emulator.advance(2)
    after = bob.get(f"/emulator/demo/device/calls?known={leg}", headers=headers).get_json()["calls"]
    assert [c["ended"] for c in after] == [True]
    assert not heard(bob, sid)["bridged"]


def test_a_rejected_ring_is_busy_for_the_dial_and_the_caller_waits_on(
    app: Flask, clock: ManualClock, bob: FlaskClient, personas: Personas, emulator: Emulator
) -> None:
    headers = {"X-Device-Token": bob.get("/emulator/demo/token").get_json()["token"]}
    bob.post("/emulator/demo/device/register", json={}, headers=headers)
    with app.app_context():
        operators.log_in(personas.bob.user_id, [personas.bob.queue_id], clock.now())
    sid = bob.post("/emulator/demo/dial", json={"to": personas.bob.number}).get_json()["sid"]
    emulator.advance(5)
    [incoming] = bob.get("/emulator/demo/device/calls", headers=headers).get_json()["calls"]
    bob.post(f"/emulator/demo/device/calls/{incoming['sid']}/reject", json={}, headers=headers)
    emulator.advance(1)
    assert emulator.state.calls[incoming["sid"]].status == "busy"
    assert not heard(bob, sid)["ended"]  # back in the queue, not hung up
