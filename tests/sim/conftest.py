"""A throw-away Flask app with fixed TwiML per path, and an emulator bound to it in virtual time.

The fake app checks X-Twilio-Signature with the official RequestValidator, as the product does, so
every test also proves the emulator signs what it sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator

from queue_app.clock import ManualClock, utc
from queue_app.sim import Emulator, WsgiTransport

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "sim-test-token"
BASE = "http://app.test"
NUMBER = "+46812345678"
CALLER = "+46701234567"

Handler = Callable[[dict[str, str]], "str | Response"]


@dataclass
class Received:
    method: str
    path: str
    form: dict[str, str]


@dataclass
class FakeApp:
    """Serves `docs[path]` (TwiML text, or a function of the form returning TwiML or a Response)."""

    token: str = AUTH_TOKEN
    docs: dict[str, Any] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    rejected: int = 0

    def __post_init__(self) -> None:
        self.flask = Flask("fake_twilio_app")
        self.docs.setdefault("/status", lambda form: Response("", status=204))

        @self.flask.route("/<path:path>", methods=["GET", "POST"])
        def webhook(path: str) -> Any:
            url = BASE + request.path
            if request.query_string:
                url += "?" + request.query_string.decode()
            params: Any = request.form if request.method == "POST" else {}
            signature = request.headers.get("X-Twilio-Signature", "")
            if not RequestValidator(self.token).validate(url, params, signature):
                self.rejected += 1
                return Response("bad signature", status=403)
            form = dict(request.values.items())
            self.received.append(Received(request.method, "/" + path, form))
            doc = self.docs.get("/" + path)
            if doc is None:
                return Response("not found", status=404)
            if callable(doc):
                doc = doc(form)
            if isinstance(doc, Response):
                return doc
            return Response(doc, mimetype="text/xml")

    def to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


def twiml(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


@pytest.fixture
def fake() -> FakeApp:
    return FakeApp()


@pytest.fixture
def sim_clock() -> ManualClock:
    return ManualClock(utc("2026-11-25 09:00"))


@pytest.fixture
def make_emulator(fake: FakeApp, sim_clock: ManualClock) -> Callable[..., Emulator]:
    def make(**options: Any) -> Emulator:
        token = options.pop("auth_token", AUTH_TOKEN)
        events = options.pop("events", ("initiated", "ringing", "answered", "completed"))
        emulator = Emulator(sim_clock, ACCOUNT_SID, token, WsgiTransport(fake.flask), seed=7, **options)
        emulator.add_number(
            NUMBER,
            f"{BASE}/voice",
            status_callback=f"{BASE}/status",
            status_callback_events=events,
        )
        return emulator

    return make


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()
