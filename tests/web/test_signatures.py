"""The signature is checked over the URL Twilio requested, query string included, byte-exact."""

from __future__ import annotations

import pytest
from flask import Flask

from queue_app.telephony.signatures import public_url

from ..twilio_helpers import sign


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        # werkzeug's test client keeps the query out of REQUEST_URI
        (
            {"REQUEST_URI": "/twilio/offer/g/leg", "QUERY_STRING": "operator=1"},
            "http://koe.test/twilio/offer/g/leg?operator=1",
        ),
        # gunicorn keeps the whole request target in RAW_URI
        (
            {"RAW_URI": "/twilio/offer/g/leg?operator=1", "QUERY_STRING": "operator=1"},
            "http://koe.test/twilio/offer/g/leg?operator=1",
        ),
        # percent-encoding is kept as sent, not normalised
        (
            {"RAW_URI": "/twilio/x%20y?a=%C3%A5&b=1", "QUERY_STRING": "a=%C3%A5&b=1"},
            "http://koe.test/twilio/x%20y?a=%C3%A5&b=1",
        ),
        ({"RAW_URI": "/twilio/voice", "QUERY_STRING": ""}, "http://koe.test/twilio/voice"),
    ],
)
def test_it_rebuilds_the_url_twilio_signed(app: Flask, environ: dict[str, str], expected: str) -> None:
    path = environ.get("RAW_URI", environ.get("REQUEST_URI", "")).split("?")[0]
    with app.test_request_context(path, environ_overrides=environ):
        from flask import request

        assert public_url(request) == expected


def test_it_accepts_a_signed_url_with_a_query_and_refuses_it_without(app: Flask) -> None:
    params = {"CallSid": "CA" + "1" * 32, "CallStatus": "ringing"}
    client = app.test_client()
    path = "/twilio/offer/unknown-group/leg?operator=7"
    good = sign("http://koe.test" + path, params)
    bad = sign("http://koe.test/twilio/offer/unknown-group/leg", params)
    assert client.post(path, data=params, headers={"X-Twilio-Signature": bad}).status_code == 403
    assert client.post(path, data=params, headers={"X-Twilio-Signature": good}).status_code == 200
