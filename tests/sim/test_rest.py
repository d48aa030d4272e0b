from __future__ import annotations

import pytest
from flask import Flask
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from queue_app.sim import CallerScript, EmulatorHttpClient, PhoneNumber
from queue_app.sim.rest import RestApi

from .conftest import ACCOUNT_SID, AUTH_TOKEN, BASE, CALLER, NUMBER, twiml


@pytest.fixture
def client(emulator):
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=EmulatorHttpClient(emulator))


def test_it_refuses_to_redirect_an_ended_call_with_21220(emulator, fake, client):
    fake.docs["/voice"] = twiml("<Say>Short</Say>")
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(10)

    with pytest.raises(TwilioRestException) as error:
        client.calls(call.sid).update(url=f"{BASE}/voice")

    assert (error.value.status, error.value.code) == (400, 21220)
    assert "Cannot redirect" in error.value.msg


def test_it_answers_unknown_resources_and_bad_credentials_like_twilio(emulator):
    with pytest.raises(TwilioRestException) as missing:
        Client(ACCOUNT_SID, AUTH_TOKEN, http_client=EmulatorHttpClient(emulator)).calls(
            "CA" + "0" * 32
        ).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)

    with pytest.raises(TwilioRestException) as denied:
        Client(ACCOUNT_SID, "wrong", http_client=EmulatorHttpClient(emulator)).calls("CA" + "0" * 32).fetch()
    assert (denied.value.status, denied.value.code) == (401, 20003)
    raw = RestApi(emulator).handle("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", [], None)
    assert raw.headers["WWW-Authenticate"].startswith("Basic")
    assert set(__import__("json").loads(raw.body)) == {"code", "message", "more_info", "status"}


def test_it_validates_new_calls(client):
    with pytest.raises(TwilioRestException) as bad_to:
        client.calls.create(to="0701234567", from_=NUMBER, url=f"{BASE}/x")
    assert bad_to.value.code == 21211
    with pytest.raises(TwilioRestException) as no_url:
        client.calls.create(to="+46701234567", from_=NUMBER)
    assert no_url.value.code == 21205


def test_it_places_a_rest_call_that_runs_twiml_once_answered(emulator, fake, client):
    fake.docs["/outbound"] = twiml("<Say>Your colleague is calling</Say>")
    fake.docs["/cb"] = ""
    emulator.register_number("+46705555555", PhoneNumber(answer_after=5, script=CallerScript(talk_for=30)))

    created = client.calls.create(
        to="+46705555555",
        from_=NUMBER,
        url=f"{BASE}/outbound",
        status_callback=f"{BASE}/cb",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    assert created.status == "queued"
    assert created.direction == "outbound-api"
    emulator.advance(60)

    assert [r.form["CallStatus"] for r in fake.to("/cb")] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert emulator.call(created.sid).heard_texts == ["Your colleague is calling"]
    fetched = client.calls(created.sid).fetch()
    assert fetched.status == "completed"
    assert fetched.duration == str(emulator.call(created.sid).call.duration_s())


def test_it_hangs_up_a_live_call_with_status_completed(emulator, fake, client):
    fake.docs["/voice"] = twiml('<Say>Wait</Say><Pause length="60"/>')
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(5)
    assert client.calls(call.sid).update(status="completed").status == "completed"
    assert call.status == "completed"


def test_it_keeps_messages_in_an_outbox_and_reports_delivery(emulator, fake, client):
    fake.docs["/sms-status"] = ""
    message = client.messages.create(
        to="+46706666666", from_=NUMBER, body="Ring tillbaka", status_callback=f"{BASE}/sms-status"
    )
    assert message.status == "queued"
    emulator.advance(10)

    assert [(m.to, m.body, m.status) for m in emulator.outbox] == [
        ("+46706666666", "Ring tillbaka", "delivered")
    ]
    statuses = [r.form["MessageStatus"] for r in fake.to("/sms-status")]
    assert statuses == ["sent", "delivered"]
    assert fake.to("/sms-status")[1].form["MessageSid"] == message.sid
    with pytest.raises(TwilioRestException) as bad:
        client.messages.create(to="not a number", from_=NUMBER, body="x")
    assert bad.value.code == 21211


def test_it_manages_queues_through_the_rest_api(client):
    queue = client.queues.create(friendly_name="support", max_size=20)
    assert (queue.friendly_name, queue.max_size, queue.current_size) == ("support", 20, 0)
    assert [q.sid for q in client.queues.list()] == [queue.sid]
    assert client.queues(queue.sid).update(max_size=30).max_size == 30
    with pytest.raises(TwilioRestException) as empty:
        client.queues(queue.sid).members("Front").fetch()
    assert empty.value.code == 20404
    assert client.queues(queue.sid).delete() is True


class FlaskTestClientHttp(HttpClient):
    """Sends twilio-python's requests to the /emulator blueprint through Flask's test client."""

    def __init__(self, flask_app: Flask) -> None:
        import logging

        super().__init__(logging.getLogger("test"), is_async=False)
        self.test_client = flask_app.test_client()

    def request(self, method, uri, params=None, data=None, headers=None, auth=None, **kwargs):
        from werkzeug.datastructures import MultiDict

        from queue_app.sim.http_client import form_pairs

        path = uri.split("http://localhost", 1)[1]
        response = self.test_client.open(
            path,
            method=method,
            query_string=params,
            data=MultiDict(form_pairs(data)),
            headers=headers,
            auth=auth,
        )
        return Response(response.status_code, response.get_data(as_text=True), response.headers)


def test_it_serves_the_same_api_from_the_blueprint(emulator, fake):
    from queue_app.sim import web

    app = Flask("host")
    app.config["TWILIO_API_BASE"] = "http://localhost/emulator"
    app.register_blueprint(web.bp)
    app.extensions["koe_emulator"] = emulator
    fake.docs["/voice"] = twiml('<Enqueue waitUrl="">support</Enqueue>')
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(5)

    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=FlaskTestClientHttp(app))
    client.api.base_url = "http://localhost/emulator"
    [queue] = client.queues.list()
    assert queue.current_size == 1
    assert client.calls(call.sid).fetch().status == "in-progress"
    with pytest.raises(TwilioRestException) as error:
        client.calls("CA" + "f" * 32).update(status="completed")
    assert error.value.code == 20404
