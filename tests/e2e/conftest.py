"""An emulator bound to the product app in virtual time, so end-to-end tests read like a call:

    call = emulator.place_call("+46701234567", incoming_number("+46812345678"))
    emulator.advance(40)
    assert call.heard_text_contains("Välkommen")

The emulator calls the app in-process (WsgiTransport) with the app's own ManualClock (`clock`),
signs with the app's auth token, answers the app's REST calls in-process (EmulatorHttpClient as
`app.extensions["twilio_http_client"]`), and runs the worker's `run_pending(now)` after every event
that touched the app, when `queue_app.worker.run_pending` exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from flask import Flask

from queue_app.clock import ManualClock
from queue_app.sim import ClientDevice, Emulator, EmulatorHttpClient, PhoneNumber, WsgiTransport

__all__ = ["ClientDevice", "PhoneNumber", "bind_emulator"]


def worker_tick(app: Flask) -> Callable[[datetime], datetime | None] | None:
    """The worker's `run_pending(now) -> next wake-up or None`, run inside the app context."""
    try:
        from queue_app import worker
    except ImportError:
        return None
    run_pending = getattr(worker, "run_pending", None)
    if run_pending is None:
        return None

    def tick(now: datetime) -> datetime | None:
        with app.app_context():
            return run_pending(now)  # type: ignore[no-any-return]

    return tick


def bind_emulator(app: Flask, clock: ManualClock, seed: int = 0, **options: object) -> Emulator:
    emulator = Emulator(
        clock,
        app.config["TWILIO_ACCOUNT_SID"],
        app.config["TWILIO_AUTH_TOKEN"],
        WsgiTransport(app),
        seed=seed,
        app_tick=worker_tick(app),
        api_base_url=app.config["TWILIO_API_BASE"],
        **options,
    )
    app.extensions["twilio_http_client"] = EmulatorHttpClient(emulator)
    app.extensions["koe_emulator"] = emulator  # the /emulator blueprint serves this one too
    return emulator


@pytest.fixture
def emulator(app: Flask, clock: ManualClock) -> Iterator[Emulator]:
    emulator = bind_emulator(app, clock)
    yield emulator
    app.extensions.pop("twilio_http_client", None)
    app.extensions.pop("koe_emulator", None)


@pytest.fixture
def incoming_number(app: Flask, emulator: Emulator) -> Callable[[str], str]:
    """Route a number to the app's voice webhook, with its status callback; returns the number."""
    base = app.config["PUBLIC_BASE_URL"]

    def route(number: str) -> str:
        emulator.add_number(
            number,
            f"{base}/twilio/voice",
            status_callback=f"{base}/twilio/status",
            status_callback_events=("initiated", "ringing", "answered", "completed"),
        )
        return number

    return route
