"""The prompt pages: text, uploaded WAV/MP3 (checked by content), listening, S3 over HTTP, signed URLs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from moto.server import ThreadedMotoServer
from sqlalchemy import select
from werkzeug.test import TestResponse

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Prompt, User
from queue_app.storage import audio_url, current_storage
from tests.factories import Personas
from tests.unit.test_audio import make_mp3, make_wav
from tests.web.test_admin_support import as_user, audit_actions, field_error, html, post, token


@pytest.fixture(autouse=True)
def alice_reads_english(app: Flask, personas: Personas) -> None:
    """The messages are asserted in English; the Swedish catalogue is tested in test_i18n."""
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.alice.user_id).locale = "en"


def prompt_row(
    app: Flask, queue_id: int | None, kind: str = "welcome", language: str = "sv"
) -> Prompt | None:
    with app.app_context(), db.transaction() as session:
        row = session.scalars(
            select(Prompt).where(
                Prompt.kind == kind, Prompt.language == language, Prompt.queue_id == queue_id
            )
        ).first()
        if row is not None:
            session.expunge(row)
        return row


def upload(client: FlaskClient, queue_id: int, data: bytes, name: str, kind: str = "welcome") -> TestResponse:
    return client.post(
        f"/admin/queues/{queue_id}/prompts/upload?kind={kind}&language=sv",
        data={"csrf_token": token(client), "audio": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def stored_files(app: Flask) -> list[Path]:
    folder = Path(app.config["AUDIO_DIR"])
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_it_lists_every_prompt_with_what_the_caller_hears(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    page = client.get("/admin/prompts?language=sv")
    queue_page = client.get(f"/admin/queues/{personas.alice.queue_id}/prompts")

    assert page.status_code == 200 and queue_page.status_code == 200
    assert "Välkommen till Acme AB." in html(page)
    assert f"/admin/queues/{personas.alice.queue_id}/prompts/edit?kind=hold_music" in html(queue_page)


def test_it_saves_the_text_of_a_prompt_and_audits_it(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    url = "/admin/prompts/edit?kind=first_queue_message&language=en"

    response = post(client, url, {"text": "All our staff are busy."})

    assert response.status_code == 302
    assert "All our staff are busy." in html(client.get(url))
    assert prompt_row(app, None, "first_queue_message", "en").text == "All our staff are busy."  # type: ignore[union-attr]
    assert audit_actions(app, personas.alice.organisation_id)[-1] == "prompt.update"


def test_it_refuses_a_prompt_text_that_is_too_long_and_changes_nothing(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    url = f"/admin/queues/{personas.alice.queue_id}/prompts/edit?kind=welcome&language=sv"

    response = post(client, url, {"text": "Välkommen. " * 500})

    assert response.status_code == 422
    assert field_error(response, "text")
    assert prompt_row(app, personas.alice.queue_id) is None
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_it_accepts_a_wav_upload_and_shows_its_duration(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    wav = make_wav(2.0)

    response = upload(client, personas.alice.queue_id, wav, "welcome.wav")

    assert response.status_code == 302
    page = html(client.get(response.headers["Location"]))
    assert "2.0" in page and "<audio" in page
    row = prompt_row(app, personas.alice.queue_id)
    assert row is not None and row.audio_content_type == "audio/wav" and row.audio_duration_seconds == 2.0
    listened = client.get(f"/admin/queues/{personas.alice.queue_id}/prompts/audio?kind=welcome&language=sv")
    assert listened.status_code == 200 and listened.data == wav and listened.mimetype == "audio/wav"
    assert audit_actions(app, personas.alice.organisation_id)[-1] == "prompt.audio_upload"


def test_it_accepts_an_mp3_upload_with_the_duration_of_its_frames(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    mp3 = make_mp3(200, id3=True)  # 200 * 1152 / 44100 = 5.22 s

    response = upload(client, personas.alice.queue_id, mp3, "music.mp3", kind="hold_music")

    assert response.status_code == 302
    row = prompt_row(app, personas.alice.queue_id, "hold_music")
    assert row is not None and row.audio_content_type == "audio/mpeg"
    assert row.audio_duration_seconds == pytest.approx(5.22)
    assert "5.2" in html(client.get(f"/admin/queues/{personas.alice.queue_id}/prompts?language=sv"))


def test_it_replaces_an_audio_file_and_deletes_the_old_one(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    upload(client, personas.alice.queue_id, make_wav(1.0), "a.wav")
    upload(client, personas.alice.queue_id, make_wav(3.0), "b.wav")

    assert len(stored_files(app)) == 1
    assert prompt_row(app, personas.alice.queue_id).audio_duration_seconds == 3.0  # type: ignore[union-attr]

    post(client, f"/admin/queues/{personas.alice.queue_id}/prompts/remove-audio?kind=welcome&language=sv")
    assert stored_files(app) == []
    assert prompt_row(app, personas.alice.queue_id).audio_key is None  # type: ignore[union-attr]


def test_it_refuses_a_text_file_named_wav_and_stores_nothing(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    before = audit_actions(app, personas.alice.organisation_id)

    response = upload(client, personas.alice.queue_id, b"Hello, I am plain text.\n" * 50, "welcome.wav")

    assert response.status_code == 422
    assert "not a WAV or MP3" in (field_error(response, "audio") or "")
    assert stored_files(app) == []
    assert prompt_row(app, personas.alice.queue_id) is None
    assert audit_actions(app, personas.alice.organisation_id) == before


def test_it_refuses_an_oversize_file_and_stores_nothing(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    app.config["PROMPT_MAX_BYTES"] = 20_000
    as_user(client, personas.alice.email)

    response = upload(client, personas.alice.queue_id, make_wav(2.0), "long.wav")  # 32 kB

    assert response.status_code == 422
    assert "too large" in (field_error(response, "audio") or "")
    assert stored_files(app) == []
    assert prompt_row(app, personas.alice.queue_id) is None


def test_it_refuses_a_recording_that_is_too_long(app: Flask, client: FlaskClient, personas: Personas) -> None:
    app.config["PROMPT_MAX_SECONDS"] = 1
    as_user(client, personas.alice.email)

    response = upload(client, personas.alice.queue_id, make_wav(2.0), "long.wav")

    assert response.status_code == 422
    assert "too long" in (field_error(response, "audio") or "")
    assert stored_files(app) == []


def test_it_asks_for_a_phone_number_before_recording_by_phone(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/prompts/record?kind=welcome&language=sv")

    assert response.status_code == 422
    assert "phone number" in html(response)
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.alice.user_id).phone_number = "+46701234567"
    assert post(client, "/admin/prompts/record?kind=welcome&language=sv").status_code == 302
    page = html(client.get("/admin/prompts/edit?kind=welcome&language=sv"))
    assert 'data-recording-status="pending"' in page
    assert audit_actions(app, personas.alice.organisation_id)[-1] == "prompt.record_by_phone"


def test_it_answers_404_for_a_kind_that_does_not_exist(client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)
    assert client.get("/admin/prompts/edit?kind=nonsense&language=sv").status_code == 404
    assert client.get("/admin/prompts/audio?kind=welcome&language=sv").status_code == 404


# ---- the URL Twilio plays, from the local folder -------------------------------------------------


def test_it_serves_local_audio_only_with_a_valid_unexpired_signature(
    app: Flask, client: FlaskClient, clock: ManualClock
) -> None:
    wav = make_wav(1.0)
    with app.app_context():
        current_storage().put("org-1/welcome.wav", wav, "audio/wav")
        url = audio_url("org-1/welcome.wav", expires_in=60)
    assert url.startswith("http://koe.test/twilio/prompts/org-1/welcome.wav?exp=")
    path = url.removeprefix("http://koe.test")

    good = client.get(path)
    assert good.status_code == 200 and good.data == wav and good.mimetype == "audio/wav"
    assert client.get(path[:-1] + ("0" if path[-1] != "0" else "1")).status_code == 403
    assert client.get(path.replace("welcome.wav", "other.wav")).status_code == 403
    assert client.get(path.split("&sig=")[0]).status_code == 403
    assert client.get("/twilio/prompts/org-1/welcome.wav").status_code == 403
    clock.advance(61)
    assert client.get(path).status_code == 403


# ---- S3 over HTTP, against moto's server ------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_app(app: Flask, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    bucket = f"koe-prompts-{id(app)}"
    boto3.client("s3", region_name="eu-north-1", endpoint_url=s3_endpoint).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"}
    )
    app.config.update(
        S3_BUCKET=bucket, S3_PREFIX="prompts/", S3_REGION="eu-north-1", S3_ENDPOINT_URL=s3_endpoint
    )
    return app


def test_it_stores_an_upload_in_s3_private_and_encrypted_and_gives_twilio_a_presigned_url(
    s3_app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    wav = make_wav(1.5)

    assert upload(client, personas.alice.queue_id, wav, "welcome.wav").status_code == 302

    row = prompt_row(s3_app, personas.alice.queue_id)
    assert row is not None and row.audio_key
    s3 = boto3.client("s3", region_name="eu-north-1", endpoint_url=s3_app.config["S3_ENDPOINT_URL"])
    bucket, key = s3_app.config["S3_BUCKET"], "prompts/" + row.audio_key
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "audio/wav"
    assert stored_files(s3_app) == []
    plain = f"{s3_app.config['S3_ENDPOINT_URL']}/{bucket}/{key}"
    assert requests.get(plain, timeout=5).status_code == 403
    with s3_app.app_context():
        url = audio_url(row.audio_key)
    assert "X-Amz-Signature" in url and "X-Amz-Expires=900" in url
    assert requests.get(url, timeout=5).content == wav
    listened = client.get(f"/admin/queues/{personas.alice.queue_id}/prompts/audio?kind=welcome&language=sv")
    assert listened.data == wav


def test_it_stores_nothing_in_s3_when_the_upload_is_refused(
    s3_app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    assert upload(client, personas.alice.queue_id, b"not audio" * 100, "x.mp3").status_code == 422

    s3 = boto3.client("s3", region_name="eu-north-1", endpoint_url=s3_app.config["S3_ENDPOINT_URL"])
    assert s3.list_objects_v2(Bucket=s3_app.config["S3_BUCKET"]).get("KeyCount") == 0
