"""The record-by-phone sessions as the worker sees them: failures, retries, and what is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import PhoneNumber, Prompt, Recording, User
from queue_app.services import prompts
from queue_app.services.audit import ChangeRefused
from tests.factories import Personas


class Alice:
    def __init__(self, personas: Personas) -> None:
        self.id = personas.alice.user_id
        self.organisation_id = personas.alice.organisation_id


def start(app: Flask, personas: Personas, clock: ManualClock) -> int:
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.alice.user_id).phone_number = "+46701112233"
        return prompts.start_recording(session, Alice(personas), None, "welcome", "sv", clock.now()).id


def status(app: Flask, recording_id: int) -> str:
    with app.app_context(), db.transaction() as session:
        return session.get_one(Recording, recording_id).status


class FailingRest:
    def create_call(self, *args: object, **kwargs: object) -> str:
        raise RuntimeError("Twilio said no")


class RecordingRest:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def create_call(
        self, to: str, from_: str, url: str, status_callback: str | None = None, timeout: int = 30
    ) -> str:
        self.calls.append((to, from_, url, status_callback))
        return "CA1"


def test_the_worker_calls_the_admin_from_the_organisations_number(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    recording_id = start(app, personas, clock)
    rest = RecordingRest()

    with app.app_context():
        assert prompts.place_pending_calls(clock.now(), rest) == 1
        token = prompts.token_for(recording_id)
    [(to, from_, url, callback)] = rest.calls
    assert (to, from_) == ("+46701112233", personas.alice.number)
    assert url == f"http://koe.test/twilio/record-prompt/{token}"
    assert callback == url + "/status"
    assert status(app, recording_id) == "calling"


def test_a_call_twilio_refuses_leaves_the_session_failed(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    recording_id = start(app, personas, clock)

    with app.app_context():
        assert prompts.place_pending_calls(clock.now(), FailingRest()) == 0

    assert status(app, recording_id) == "failed"


def test_a_new_request_replaces_an_open_one(app: Flask, personas: Personas, clock: ManualClock) -> None:
    first = start(app, personas, clock)
    second = start(app, personas, clock)

    assert (status(app, first), status(app, second)) == ("abandoned", "pending")


def test_a_kept_recording_that_cannot_be_fetched_is_retried_then_given_up(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    recording_id = start(app, personas, clock)
    with app.app_context(), db.transaction() as session:
        row = session.get_one(Recording, recording_id)
        row.status, row.twilio_url = "kept", "http://koe.test/emulator/2010-04-01/Accounts/AC1/Recordings/RE1"

    def unreachable(url: str) -> bytes:
        raise ConnectionError("no route")

    with app.app_context():
        assert prompts.fetch_kept_recordings(clock.now(), unreachable) == 0
    assert status(app, recording_id) == "kept"
    clock.advance(3601)
    with app.app_context():
        assert prompts.fetch_kept_recordings(clock.now(), unreachable) == 0
    assert status(app, recording_id) == "failed"


def test_a_recording_that_is_not_audio_is_refused_and_nothing_is_stored(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    recording_id = start(app, personas, clock)
    with app.app_context(), db.transaction() as session:
        row = session.get_one(Recording, recording_id)
        row.status, row.twilio_url = "kept", "http://x/Recordings/RE1"

    with app.app_context():
        assert prompts.fetch_kept_recordings(clock.now(), lambda url: b"<Error>not found</Error>") == 0
        prompt = db.session.scalars(select(Prompt)).one()
        assert prompt.audio_key is None
    assert status(app, recording_id) == "failed"


def test_sessions_nobody_finished_are_given_up(app: Flask, personas: Personas, clock: ManualClock) -> None:
    recording_id = start(app, personas, clock)
    clock.advance(timedelta(minutes=31).total_seconds())

    with app.app_context():
        prompts.fetch_kept_recordings(clock.now())

    assert status(app, recording_id) == "abandoned"


def test_recording_needs_a_phone_number_and_a_number_to_call_from(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    with app.app_context(), db.transaction() as session:
        with pytest.raises(ChangeRefused):
            prompts.start_recording(session, Alice(personas), None, "welcome", "sv", clock.now())
        session.get_one(User, personas.alice.user_id).phone_number = "+46701112233"
        for number in session.scalars(select(PhoneNumber)):
            session.delete(number)
        session.flush()
        with pytest.raises(ChangeRefused):
            prompts.start_recording(session, Alice(personas), None, "welcome", "sv", clock.now())
        assert session.scalars(select(Recording)).all() == []


def test_the_call_webhooks_need_twilios_signature_and_a_valid_token(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    from queue_app.sim import signature

    recording_id = start(app, personas, clock)
    with app.app_context():
        good = prompts.record_url(recording_id)
    bad = good[:-3] + "xyz"
    token = app.config["TWILIO_AUTH_TOKEN"]

    assert client.post(good.removeprefix("http://koe.test")).status_code == 403
    signed_bad = client.post(
        bad.removeprefix("http://koe.test"), headers={"X-Twilio-Signature": signature(token, bad, [])}
    )
    assert signed_bad.status_code == 404
    # A pending session is not being called yet: the call is told so and hung up.
    signed = client.post(
        good.removeprefix("http://koe.test"), headers={"X-Twilio-Signature": signature(token, good, [])}
    )
    assert signed.status_code == 200 and b"<Hangup" in signed.data
