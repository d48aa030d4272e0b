"""Twilio's webhooks for the caller's leg: parse the form, call one service, answer TwiML.

Every POST here carries a valid `X-Twilio-Signature` (`twilio_signed`), writes one structured log
line (`webhook_log`) and never makes an outbound HTTP call. The URL paths are a contract with
Twilio's console, the dispatcher (which redirects callers back to /twilio/enqueue) and the emulator.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Response, current_app, request, send_from_directory
from werkzeug.exceptions import HTTPException

from .. import PROJECT_ROOT, get_clock, webhook_log
from ..extensions import csrf, db
from ..services import calls
from ..telephony import twiml
from ..telephony.signatures import twilio_signed

bp = Blueprint("voice", __name__)
csrf.exempt(bp)
log = logging.getLogger("koe.webhooks")

AUDIO_DIR = PROJECT_ROOT / "audio"
AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg"}


def twiml_response(document: str) -> Response:
    return Response(document, mimetype="application/xml")


def _base() -> str:
    return str(current_app.config["PUBLIC_BASE_URL"])


def _queue_facts() -> calls.QueueFactsCache:
    cache = current_app.extensions.get("koe.queue_facts")
    if cache is None:
        cache = current_app.extensions.setdefault("koe.queue_facts", calls.QueueFactsCache())
    return cache  # type: ignore[no-any-return]


@bp.before_request
def _start_log() -> None:
    if request.method == "POST":
        webhook_log.begin()


bp.after_request(webhook_log.finish)


@bp.errorhandler(Exception)
def _apologise(error: Exception) -> Response | HTTPException:
    """Never let Twilio play its own "application error": apologise and hang up, with a 200."""
    if isinstance(error, HTTPException):
        return error
    log.exception("webhook failed route=%s call_sid=%s", request.path, request.values.get("CallSid", "-"))
    try:
        db.session.rollback()
    except Exception:  # the database may be what failed; the caller still hears an apology
        log.warning("rollback after a failed webhook failed", exc_info=True)
    webhook_log.outcome("error")
    return twiml_response(twiml.say_and_hang_up(_base(), calls.apology()))


def _arrival_twiml(arrival: calls.Arrival) -> str:
    webhook_log.outcome(arrival.kind.value)
    if arrival.enqueue and arrival.queue_id is not None:
        return twiml.enqueue(_base(), arrival.queue_id, arrival.say)
    return twiml.say_and_hang_up(_base(), arrival.say)


@bp.post("/twilio/voice")
@twilio_signed
def incoming_call() -> Response:
    arrival = calls.answer_incoming(calls.IncomingCall.from_form(request.form), get_clock().now())
    return twiml_response(_arrival_twiml(arrival))


@bp.post("/twilio/enqueue")
@twilio_signed
def enqueue_again() -> Response:
    arrival = calls.return_to_queue(request.form.get("CallSid", ""), get_clock().now())
    return twiml_response(_arrival_twiml(arrival))


@bp.post("/twilio/wait")
@twilio_signed
def wait() -> Response:
    # Read the clock once: position, estimate and what is due must describe the same instant.
    answer = calls.next_wait(request.form.get("CallSid", ""), get_clock().now(), _queue_facts())
    if answer.gone:
        webhook_log.outcome("gone")
        return twiml_response(twiml.say_and_hang_up(_base(), answer.say))
    webhook_log.outcome("announced" if answer.say else "music")
    return twiml_response(twiml.wait(_base(), answer.say, answer.music, answer.music_seconds))


@bp.post("/twilio/queue-result")
@twilio_signed
def queue_result() -> Response:
    answer = calls.record_queue_result(
        request.form.get("CallSid", ""),
        request.form.get("QueueResult", ""),
        request.form.get("QueueTime"),
        get_clock().now(),
    )
    webhook_log.outcome(answer.outcome)
    if answer.hang_up:
        return twiml_response(twiml.say_and_hang_up(_base(), answer.say))
    return twiml_response(twiml.empty())


@bp.post("/twilio/status")
@twilio_signed
def status() -> Response:
    outcome = calls.record_status(calls.StatusCallback.from_form(request.form), get_clock().now())
    webhook_log.outcome(outcome)
    # Twilio ignores the body; a 2xx (also for unknown calls) stops it from retrying.
    return twiml_response(twiml.empty())


@bp.get("/twilio/audio/<name>")
def audio(name: str) -> Response:
    """Shipped audio (hold music), public: Twilio fetches <Play> URLs without parameters."""
    suffix = Path(name).suffix.lower()
    if suffix not in AUDIO_TYPES:
        return Response("not found", status=404)
    return send_from_directory(AUDIO_DIR, name, mimetype=AUDIO_TYPES[suffix], max_age=86400)
