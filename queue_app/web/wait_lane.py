"""The waitUrl's own lane: `POST /twilio/wait` answered in plain WSGI, in front of Flask's dispatch.

Every waiting caller fetches the waitUrl again each time its document ends, so it is the app's
busiest request by far (issue #5, item 11; `bench/waiturl.py`). Answered through Flask, the request
machinery and the app-wide hooks (CSRF, log-in, sessions, Flask-Login's cookie) that a webhook never
needs cost about as much CPU as the answer itself. Here it keeps what every webhook has: the
signature check (`signatures.signature_matches`), one log line (`webhook_log.write`; at DEBUG for a
fetch that only plays music, the heartbeat of a waiting caller: gunicorn's access log has it), an apology
with a 200 instead of an error page, and one call into the service (`calls.next_wait`).
It pushes no app context either: nothing on its path needs one (the app and its extensions are
passed in), and its push and teardown cost each fetch ~40,000 instructions
(`bench/waiturl_instructions.py`).
Any other method on this path gets 405; every other request goes on to Flask unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_input_stream

from .. import webhook_log
from ..services import calls
from ..services.wait_writes import WaitWrites
from ..telephony import twiml
from ..telephony.signatures import public_url_of, signature_matches

PATH = "/twilio/wait"
MAX_FORM_BYTES = 64 * 1024  # Twilio's parameters are a few hundred bytes
log = logging.getLogger("koe.webhooks")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def install(app: Flask) -> None:
    """Put the lane in front of everything, ProxyFix included: it needs nothing ProxyFix sets, as
    the signature is checked against the configured PUBLIC_BASE_URL."""
    app.wsgi_app = WaitLane(app, app.wsgi_app)  # type: ignore[method-assign]


class WaitLane:
    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.app = app
        self.inner = inner

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.inner(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return _respond(start_response, 405, "Use POST", "text/plain", (("Allow", "POST"),))
        started = time.perf_counter()
        status, outcome, call_sid, document = self._answer(environ)
        level = logging.DEBUG if outcome == "music" else logging.INFO
        webhook_log.write(PATH, call_sid or "-", outcome, status, started, level)
        content_type = "application/xml" if status == 200 else "text/plain"
        return _respond(start_response, status, document, content_type)

    def _answer(self, environ: dict[str, Any]) -> tuple[int, str, str, str]:
        """(HTTP status, outcome for the log line, CallSid, TwiML or message)."""
        config = self.app.config
        params = _form(environ)
        if params is None:
            return 413, "too_large", "", "Request body too large"
        call_sid = params.get("CallSid", "")
        url = public_url_of(environ, config["PUBLIC_BASE_URL"])
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        if not signature_matches(url, params, signature, config["TWILIO_AUTH_TOKEN"]):
            log.warning("webhook signature rejected route=%s call_sid=%s url=%s", PATH, call_sid or "-", url)
            return 403, "forbidden", call_sid, "Invalid or missing X-Twilio-Signature"
        base = str(config["PUBLIC_BASE_URL"])
        try:
            outcome, document = wait_twiml(base, call_sid, self.app)
        except Exception:
            log.exception("webhook failed route=%s call_sid=%s", PATH, call_sid or "-")
            return 200, "error", call_sid, twiml.say_and_hang_up(base, calls.apology())
        return 200, outcome, call_sid, document


def wait_twiml(base: str, call_sid: str, app: Flask) -> tuple[str, str]:
    """What the caller hears next, as (outcome, TwiML document)."""
    # Read the clock once: position, estimate and what is due must describe the same instant.
    now = app.extensions["clock"].now()
    answer = calls.next_wait(call_sid, now, queue_facts(app), wait_writes(app))
    if answer.gone:
        return "gone", twiml.say_and_hang_up(base, answer.say)
    if answer.leave:
        return "leave", twiml.say_and_leave(base, answer.say)
    listen = base.rstrip("/") + "/twilio/options" if answer.listen else None
    document = twiml.wait(base, answer.say, answer.music, answer.music_seconds, listen)
    return ("announced" if answer.say else "music"), document


def queue_facts(app: Flask) -> calls.QueueFactsCache:
    """This process's cache of queue facts, shared by the webhooks that plan a caller's wait."""
    cache = app.extensions.get("koe.queue_facts")
    if cache is None:
        cache = app.extensions.setdefault("koe.queue_facts", calls.QueueFactsCache())
    return cache  # type: ignore[no-any-return]


def wait_writes(app: Flask) -> WaitWrites | None:
    """This process's writer of what waiting callers heard, or None to write inline
    (WAIT_WRITE_BEHIND=false)."""
    if not app.config.get("WAIT_WRITE_BEHIND"):
        return None
    writes = app.extensions.get("koe.wait_writes")
    if writes is None:
        writes = app.extensions.setdefault("koe.wait_writes", WaitWrites(calls.write_heard))
    return writes  # type: ignore[no-any-return]


def _form(environ: dict[str, Any]) -> dict[str, str] | None:
    """The urlencoded POST parameters (blank values kept: they are signed too); None if too large."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > MAX_FORM_BYTES:
        return None
    raw = get_input_stream(environ, max_content_length=MAX_FORM_BYTES).read(MAX_FORM_BYTES + 1)
    if len(raw) > MAX_FORM_BYTES:
        return None
    return _Form(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


class _Form(dict[str, str]):
    """The POST parameters, one value each. `getall` because Twilio's `RequestValidator` asks each
    parameter for it first (werkzeug's MultiDict), then for `getlist`, then indexes: on a plain
    dict the two failed lookups raise twice per parameter, 60% of the signature check's time."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


def _respond(
    start_response: StartResponse,
    status: int,
    text: str,
    content_type: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> list[bytes]:
    body = text.encode()
    sized = [("Content-Type", f"{content_type}; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", [*sized, *headers])
    return [body]
