"""Prompt audio through the emulator: recorded by phone, and played to callers from S3.

Recording by phone: the admin presses "record by phone"; the worker's `place_pending_calls` rings
their phone; they hear the instructions, speak after the beep (the emulator's <Record> makes a real
WAV), hear their take, press 2 to record again, then 1 to keep it; the worker's
`fetch_kept_recordings` downloads the WAV from the REST API and the prompt has audio with a duration.
The test calls those two worker functions itself at the moments the worker would.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import boto3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Prompt, Recording, User
from queue_app.services import prompts
from queue_app.sim import Emulator, EmulatorHttpClient, HttpTransport, PhoneNumber, WsgiTransport
from queue_app.sim.parties import CallerScript
from queue_app.storage import current_storage
from tests.factories import Personas
from tests.unit.test_audio import make_wav
from tests.web.test_admin_support import as_user, html, post

from .conftest import worker_tick

ADMIN_PHONE = "+46701112233"


def welcome_prompt(app: Flask, queue_id: int | None = None) -> Prompt:
    with app.app_context(), db.transaction() as session:
        row = session.scalars(
            select(Prompt).where(Prompt.kind == "welcome", Prompt.queue_id == queue_id)
        ).one()
        session.expunge(row)
        return row


def the_admins_call(emulator: Emulator) -> object:
    [call] = [c for c in emulator.calls if c.to == ADMIN_PHONE]
    return emulator.call(call.sid)


def test_an_admin_records_a_prompt_by_phone_and_it_is_stored_with_its_duration(
    app: Flask, client: FlaskClient, clock: ManualClock, emulator: Emulator, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.alice.user_id).phone_number = ADMIN_PHONE
    emulator.register_number(ADMIN_PHONE, PhoneNumber(answer_after=3, script=CallerScript(speak_for=4)))
    as_user(client, personas.alice.email)
    assert post(client, "/admin/prompts/record?kind=welcome&language=sv").status_code == 302

    emulator.tick_now()  # the worker's round places the call
    with app.app_context():
        assert prompts.place_pending_calls(clock.now()) == 0  # claimed: never rung twice
    call = the_admins_call(emulator)
    assert call.wait_until_heard("Tryck 1 för att spara", timeout=120)  # type: ignore[attr-defined]
    assert call.heard_text_contains("Tala efter tonen")  # type: ignore[attr-defined]
    assert call.heard_play_of("/Recordings/RE")  # type: ignore[attr-defined]
    assert 'data-recording-status="recorded"' in html(
        client.get("/admin/prompts/edit?kind=welcome&language=sv")
    )

    call.press("2")  # type: ignore[attr-defined]  # record again
    assert call.wait_until(  # type: ignore[attr-defined]
        lambda: sum("Tryck 1 för att spara" in t for t in call.heard_texts) == 2,
        timeout=120,  # type: ignore[attr-defined]
    )
    call.press("1")  # type: ignore[attr-defined]  # keep
    assert call.wait_until_status("completed", timeout=60)  # type: ignore[attr-defined]
    assert call.heard_text_contains("inspelningen är sparad")  # type: ignore[attr-defined]
    # The worker's round fetched the kept take and deleted it at Twilio; the first take is left.
    assert len(emulator.state.recordings) == 1
    with app.app_context():
        assert prompts.fetch_kept_recordings(clock.now()) == 0  # already stored, never twice
    prompt = welcome_prompt(app)
    assert prompt.audio_content_type == "audio/wav"
    assert prompt.audio_duration_seconds == 4.0
    assert prompt.audio_key and prompt.audio_key.endswith(".wav")
    with app.app_context():
        stored = current_storage().get(prompt.audio_key)
        recording = db.session.scalars(select(Recording).where(Recording.status == "stored")).one()
        assert recording.user_id == personas.alice.user_id and recording.storage_key == prompt.audio_key
    assert stored[:4] == b"RIFF"
    page = html(client.get("/admin/prompts/edit?kind=welcome&language=sv"))
    assert "4.0" in page and "<audio" in page
    listened = client.get("/admin/prompts/audio?kind=welcome&language=sv")
    assert listened.data == stored
    assert emulator.errors == []


def test_a_call_that_ends_before_keep_stores_nothing(
    app: Flask, client: FlaskClient, clock: ManualClock, emulator: Emulator, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.alice.user_id).phone_number = ADMIN_PHONE
    emulator.register_number(ADMIN_PHONE, PhoneNumber(answer_after=2, script=CallerScript(speak_for=3)))
    as_user(client, personas.alice.email)
    post(client, "/admin/prompts/record?kind=welcome&language=sv")

    emulator.tick_now()
    call = the_admins_call(emulator)
    assert call.wait_until_heard("Tryck 1 för att spara", timeout=120)  # type: ignore[attr-defined]
    call.hang_up()  # type: ignore[attr-defined]
    emulator.advance(5)

    with app.app_context():
        assert prompts.fetch_kept_recordings(clock.now()) == 0
        assert db.session.scalars(select(Recording.status)).one() == "abandoned"
    assert welcome_prompt(app).audio_key is None
    assert emulator.errors == []


# ---- a prompt in S3, played to a caller through the presigned URL the app gives Twilio -------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Routed:
    """The app in-process; S3 (the presigned URL Twilio fetches for <Play>) over real HTTP."""

    def __init__(self, app: Flask, s3_endpoint: str) -> None:
        self.app_side = WsgiTransport(app)
        self.http = HttpTransport()
        self.s3_endpoint = s3_endpoint
        self.fetched: list[tuple[str, int, str, int]] = []

    def request(self, method: str, url: str, form: object, headers: Mapping[str, str]) -> object:
        if url.startswith(self.s3_endpoint):
            response = self.http.request(method, url, form, headers)  # type: ignore[arg-type]
            self.fetched.append((url, response.status, response.content_type, len(response.body)))
            return response
        return self.app_side.request(method, url, form, headers)  # type: ignore[arg-type]


def test_a_caller_hears_a_prompt_played_from_s3_through_a_presigned_url(
    app: Flask,
    clock: ManualClock,
    personas: Personas,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    bucket = f"koe-play-{id(app)}"
    boto3.client("s3", region_name="eu-north-1", endpoint_url=s3_endpoint).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"}
    )
    app.config.update(
        S3_BUCKET=bucket, S3_PREFIX="prompts/", S3_REGION="eu-north-1", S3_ENDPOINT_URL=s3_endpoint
    )
    wav = make_wav(3.0)
    with app.app_context():
        actor = _Actor(personas.alice.user_id, personas.alice.organisation_id)
        prompts.upload(actor, personas.alice.queue_id, "welcome", "sv", wav, clock.now())
    key = welcome_prompt(app, personas.alice.queue_id).audio_key
    assert key and not any(Path(app.config["AUDIO_DIR"]).rglob("*.wav"))

    transport = Routed(app, s3_endpoint)
    emulator = Emulator(
        clock,
        app.config["TWILIO_ACCOUNT_SID"],
        app.config["TWILIO_AUTH_TOKEN"],
        transport,  # type: ignore[arg-type]
        app_tick=worker_tick(app),
        api_base_url=app.config["TWILIO_API_BASE"],
    )
    app.extensions["twilio_http_client"] = EmulatorHttpClient(emulator)
    try:
        base = app.config["PUBLIC_BASE_URL"]
        emulator.add_number(
            personas.alice.number, f"{base}/twilio/voice", status_callback=f"{base}/twilio/status"
        )
        call = emulator.place_call("+46709998877", personas.alice.number, CallerScript(patience=20))
        emulator.advance(30)
    finally:
        app.extensions.pop("twilio_http_client", None)

    plays = [h[2] for h in call.heard if h[1] == "play"]
    presigned = [u for u in plays if u.startswith(f"{s3_endpoint}/{bucket}/prompts/{key}")]
    assert presigned, plays
    assert "X-Amz-Signature=" in presigned[0]
    assert (presigned[0], 200, "audio/wav", len(wav)) in transport.fetched
    assert emulator.errors == []


class _Actor:
    def __init__(self, id: int, organisation_id: int) -> None:
        self.id = id
        self.organisation_id = organisation_id
