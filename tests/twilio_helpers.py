"""Posting Twilio webhooks in tests, signed the way Twilio signs them (twilio.md §2).

response = signed_post(client, "/twilio/voice", voice_params(to=number))
document = twiml_of(response)
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from .conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

PUBLIC_BASE_URL = "http://koe.test"
_sids = itertools.count(1)


def new_call_sid() -> str:
    return f"CA{next(_sids):032x}"


def sign(url: str, params: Mapping[str, str], token: str = TEST_AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, dict(params)))


def signed_post(
    client: FlaskClient,
    path: str,
    params: Mapping[str, str],
    token: str = TEST_AUTH_TOKEN,
    *,
    signed_url: str | None = None,
    base_url: str | None = None,
    signature: str | None = None,
    **kwargs: Any,
) -> TestResponse:
    """POST Twilio's form fields to `path`, signed over `http://koe.test` + path.

    `signed_url` signs a different URL (to prove a mismatch is refused); `base_url` changes where
    Flask thinks the request arrived (a TLS-terminating proxy); `signature` overrides it entirely.
    """
    url = signed_url or PUBLIC_BASE_URL + path
    headers = dict(kwargs.pop("headers", {}) or {})
    headers["X-Twilio-Signature"] = signature if signature is not None else sign(url, params, token)
    if base_url is not None:
        kwargs["base_url"] = base_url
    return client.post(path, data=dict(params), headers=headers, **kwargs)


def voice_params(
    to: str, call_sid: str | None = None, from_: str = "+46701234567", **extra: str
) -> dict[str, str]:
    """The fields Twilio sends to a number's Voice URL for an inbound call."""
    return {
        "CallSid": call_sid or new_call_sid(),
        "AccountSid": TEST_ACCOUNT_SID,
        "From": from_,
        "To": to,
        "Caller": from_,
        "Called": to,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        "ToCountry": "SE",
        "FromCountry": "SE",
        **extra,
    }


def call_params(call_sid: str, **extra: str) -> dict[str, str]:
    """The standard fields of any later request about the call (waitUrl, action, status)."""
    return {
        "CallSid": call_sid,
        "AccountSid": TEST_ACCOUNT_SID,
        "From": "+46701234567",
        "To": "+46855500001",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def twiml_of(response: TestResponse) -> ET.Element:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype in ("application/xml", "text/xml")
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return root


def spoken_text(root: ET.Element) -> list[str]:
    return [(say.text or "").strip() for say in root.iter("Say")]
