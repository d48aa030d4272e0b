from __future__ import annotations

from flask import Response

from queue_app.sim import WsgiTransport
from queue_app.sim.emulator import APPLICATION_ERROR_MESSAGE

from .conftest import BASE, CALLER, NUMBER, twiml


def test_it_treats_malformed_twiml_as_12100_and_hangs_up(emulator, fake):
    fake.docs["/voice"] = '<?xml version="1.0"?><Response><Say>Tom & Jerry</Say></Response>'

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)

    assert [e.code for e in emulator.errors] == [12100]
    assert call.heard_texts == [APPLICATION_ERROR_MESSAGE]
    assert call.status == "completed"


def test_it_treats_an_unknown_verb_and_a_wrong_root_as_12100(emulator, fake):
    fake.docs["/voice"] = twiml("<Speak>Hello</Speak>")
    fake.docs["/other"] = "<Reply><Say>Hello</Say></Reply>"
    emulator.add_number("+46800000001", f"{BASE}/other")

    first = emulator.place_call(CALLER, NUMBER)
    second = emulator.place_call(CALLER, "+46800000001")
    emulator.advance(30)

    assert [e.code for e in emulator.errors] == [12100, 12100]
    assert first.heard_texts == second.heard_texts == [APPLICATION_ERROR_MESSAGE]


def test_it_requests_the_fallback_url_with_the_error(emulator, fake):
    fake.docs["/voice"] = lambda form: Response("boom", status=500)
    fake.docs["/fallback"] = twiml("<Say>Fallback speaking</Say>")
    emulator.numbers[NUMBER].fallback_url = f"{BASE}/fallback"

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)

    [request] = fake.to("/fallback")
    assert request.form["ErrorCode"] == "11200"
    assert request.form["ErrorUrl"] == f"{BASE}/voice"
    assert call.heard_texts == ["Fallback speaking"]
    assert [e.code for e in emulator.errors] == [11200]


def test_it_gives_up_on_a_webhook_slower_than_15_seconds(make_emulator, fake):
    wall = [0.0]
    fake.docs["/voice"] = lambda form: (wall.__setitem__(0, wall[0] + 16.0), twiml("<Say>Too late</Say>"))[1]
    emulator = make_emulator()
    emulator.webhooks.transport = WsgiTransport(fake.flask, timer=lambda: wall[0])

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)

    assert [e.code for e in emulator.errors] == [11200]
    assert "timeout" in emulator.errors[0].message
    assert call.heard_texts == [APPLICATION_ERROR_MESSAGE]
