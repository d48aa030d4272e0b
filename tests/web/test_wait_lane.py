"""The waitUrl's own WSGI lane (queue_app/web/wait_lane.py): the same contract as every webhook."""

from __future__ import annotations

import io
import logging
import threading
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask, has_app_context
from flask.testing import FlaskClient

from queue_app.extensions import db
from queue_app.services import calls

from ..factories import Personas
from ..twilio_helpers import (
    PUBLIC_BASE_URL,
    call_params,
    new_call_sid,
    sign,
    signed_post,
    twiml_of,
    voice_params,
)


def arrive(client: FlaskClient, personas: Personas) -> str:
    sid = new_call_sid()
    twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid)))
    return sid


def wait_params(sid: str, **extra: str) -> dict[str, str]:
    return call_params(sid, QueuePosition="1", QueueTime="0", CurrentQueueSize="1", **extra)


def webhook_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "koe.webhooks" and hasattr(r, "webhook")]


def test_it_writes_one_log_line_per_fetch_naming_what_the_caller_heard(
    client: FlaskClient, personas: Personas, caplog: pytest.LogCaptureFixture
) -> None:
    sid = arrive(client, personas)
    caplog.set_level(logging.DEBUG, logger="koe.webhooks")
    first = signed_post(client, "/twilio/wait", wait_params(sid))
    second = signed_post(client, "/twilio/wait", wait_params(sid))
    assert first.status_code == second.status_code == 200
    assert first.mimetype == "application/xml"
    lines = webhook_lines(caplog)
    assert [line.webhook["outcome"] for line in lines] == ["announced", "music"]  # type: ignore[attr-defined]
    assert [line.levelno for line in lines] == [logging.INFO, logging.DEBUG]
    assert all(line.webhook["route"] == "/twilio/wait" for line in lines)  # type: ignore[attr-defined]
    assert all(line.webhook["call_sid"] == sid for line in lines)  # type: ignore[attr-defined]


def test_at_info_it_leaves_out_the_fetches_that_only_play_music(
    client: FlaskClient, personas: Personas, caplog: pytest.LogCaptureFixture
) -> None:
    sid = arrive(client, personas)
    caplog.set_level(logging.INFO, logger="koe.webhooks")
    for _ in range(3):
        assert signed_post(client, "/twilio/wait", wait_params(sid)).status_code == 200
    assert [line.webhook["outcome"] for line in webhook_lines(caplog)] == ["announced"]  # type: ignore[attr-defined]


def test_it_apologises_and_hangs_up_when_planning_the_wait_fails(
    client: FlaskClient, personas: Personas, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("database on fire")

    sid = arrive(client, personas)
    caplog.set_level(logging.INFO, logger="koe.webhooks")
    monkeypatch.setattr(calls, "next_wait", broken)
    response = signed_post(client, "/twilio/wait", wait_params(sid))
    assert response.status_code == 200, "Twilio would play its own 'application error' on a 500"
    assert [c.tag for c in twiml_of(response)] == ["Say", "Say", "Hangup"]
    assert any(r.levelno == logging.ERROR and sid in r.getMessage() for r in caplog.records)
    assert [line.webhook["outcome"] for line in webhook_lines(caplog)] == ["error"]  # type: ignore[attr-defined]


def test_it_refuses_a_forged_fetch_and_logs_it_as_forbidden(
    client: FlaskClient, personas: Personas, caplog: pytest.LogCaptureFixture
) -> None:
    sid = arrive(client, personas)
    caplog.set_level(logging.INFO, logger="koe.webhooks")
    response = signed_post(client, "/twilio/wait", wait_params(sid), signature="bm90IGEgc2lnbmF0dXJl")
    assert response.status_code == 403
    assert b"X-Twilio-Signature" in response.data
    assert [line.webhook["outcome"] for line in webhook_lines(caplog)] == ["forbidden"]  # type: ignore[attr-defined]


def test_blank_parameters_are_part_of_what_is_signed(client: FlaskClient, personas: Personas) -> None:
    sid = arrive(client, personas)
    params = wait_params(sid, ForwardedFrom="")
    assert signed_post(client, "/twilio/wait", params).status_code == 200
    dropped = {k: v for k, v in params.items() if k != "ForwardedFrom"}
    forged = sign(PUBLIC_BASE_URL + "/twilio/wait", dropped)
    assert signed_post(client, "/twilio/wait", params, signature=forged).status_code == 403


def test_the_query_string_is_part_of_what_is_signed(client: FlaskClient, personas: Personas) -> None:
    sid = arrive(client, personas)
    params = wait_params(sid)
    url = PUBLIC_BASE_URL + "/twilio/wait?queue=7"
    ok = client.post("/twilio/wait?queue=7", data=params, headers={"X-Twilio-Signature": sign(url, params)})
    assert ok.status_code == 200
    plain = sign(PUBLIC_BASE_URL + "/twilio/wait", params)
    refused = client.post("/twilio/wait?queue=7", data=params, headers={"X-Twilio-Signature": plain})
    assert refused.status_code == 403


def test_it_checks_the_public_url_behind_a_tls_terminating_proxy(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    sid = arrive(client, personas)
    app.config["PUBLIC_BASE_URL"] = "https://public.example"
    response = signed_post(
        client,
        "/twilio/wait",
        wait_params(sid),
        signed_url="https://public.example/twilio/wait",
        base_url="http://internal",
    )
    assert response.status_code == 200
    assert twiml_of(response).find("Play") is not None


def test_it_refuses_a_body_larger_than_any_twilio_sends(client: FlaskClient, personas: Personas) -> None:
    sid = arrive(client, personas)
    params = wait_params(sid, Padding="x" * 70_000)
    response = signed_post(client, "/twilio/wait", params)
    assert response.status_code == 413
    again = signed_post(client, "/twilio/wait", wait_params(sid))
    assert again.status_code == 200, "the caller is still there"


def test_it_answers_only_post(client: FlaskClient) -> None:
    response = client.get("/twilio/wait")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_other_paths_go_on_to_flask(client: FlaskClient) -> None:
    assert client.get("/twilio/wait-not").status_code == 404
    assert client.get("/login").status_code == 200


def test_it_answers_outside_any_app_context_and_leaves_no_session_behind(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    """The lane pushes no app context (its teardown would cost every fetch), so nothing on its
    path may need one, nor open the request-scoped session that the teardown would have removed.
    A new thread has no app context, as a gunicorn worker's request has none before Flask's."""
    sid = arrive(client, personas)
    params = wait_params(sid)
    body = urlencode(params).encode()
    environ = client.environ_base | {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/twilio/wait",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_TWILIO_SIGNATURE": sign(PUBLIC_BASE_URL + "/twilio/wait", params),
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "koe.test",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(body),
    }
    seen: dict[str, Any] = {}

    def fetch() -> None:
        seen["context"] = has_app_context()
        statuses: list[str] = []
        seen["body"] = b"".join(app.wsgi_app(environ, lambda status, _headers: statuses.append(status)))
        seen["status"] = statuses
        seen["session"] = db.session.registry.has()

    thread = threading.Thread(target=fetch)
    thread.start()
    thread.join()
    assert seen["context"] is False
    assert seen["status"] == ["200 OK"]
    assert b"<Say" in seen["body"] and b"<Play" in seen["body"], "announced, then music"
    assert b"<Hangup" not in seen["body"], "not the apology"
    assert seen["session"] is False
