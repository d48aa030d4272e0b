"""Twilio's webhooks for the caller's leg: parse the form, call one service, answer TwiML.

The waitUrl (`/twilio/wait`) has a lane of its own in front of Flask: `wait_lane.py`.
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
from ..services import calls, closing, consult, dispatch, offers, twilio_queues
from ..services.consult import CALLER
from ..telephony import twiml
from ..telephony.signatures import twilio_signed
from . import wait_lane
from .consult_hooks import conference_seat

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
    return wait_lane.queue_facts(current_app)  # type: ignore[arg-type]


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


def _url(path: str) -> str:
    return _base().rstrip("/") + path


def _forward_twiml(say: tuple[twiml.Utterance, ...], forward: calls.Forward) -> str:
    return twiml.say_and_forward(
        _base(), say, forward.number, forward.caller_id, action=_url("/twilio/forward-result")
    )


def _arrival_twiml(arrival: calls.Arrival) -> str:
    webhook_log.outcome(
        arrival.kind.value + ("_busy" if arrival.busy else "_forward" if arrival.forward else "")
    )
    if arrival.enqueue and arrival.call_id is not None:
        return twiml.enqueue(_base(), arrival.call_id, arrival.say)
    if arrival.busy:
        return twiml.reject_busy()
    if arrival.forward is not None:
        return _forward_twiml(arrival.say, arrival.forward)
    return twiml.say_and_hang_up(_base(), arrival.say)


def _queue_result_twiml(answer: calls.QueueResultAnswer) -> str:
    webhook_log.outcome(answer.outcome)
    if answer.record:
        return twiml.record_message(
            _base(),
            answer.say,
            action=_url("/twilio/voicemail"),
            status_callback=_url("/twilio/voicemail-status"),
        )
    if answer.forward is not None:
        return _forward_twiml(answer.say, answer.forward)
    if answer.hang_up:
        return twiml.say_and_hang_up(_base(), answer.say)
    return twiml.empty()


@bp.post("/twilio/voice")
@twilio_signed
def incoming_call() -> Response:
    arrival = calls.answer_incoming(
        calls.IncomingCall.from_form(request.form), get_clock().now(), _queue_facts()
    )
    return twiml_response(_arrival_twiml(arrival))


@bp.post("/twilio/enqueue")
@twilio_signed
def enqueue_again() -> Response:
    arrival = calls.return_to_queue(request.form.get("CallSid", ""), get_clock().now())
    return twiml_response(_arrival_twiml(arrival))


@bp.post("/twilio/options")
@twilio_signed
def caller_option() -> Response:
    """The waitUrl's Gather: still inside the queue, so only wait verbs (Say, Leave, Hangup)."""
    answer = calls.choose_option(
        request.form.get("CallSid", ""), request.form.get("Digits", ""), get_clock().now()
    )
    webhook_log.outcome(answer.outcome)
    if answer.hang_up:
        return twiml_response(twiml.say_and_hang_up(_base(), answer.say))
    if answer.leave:
        return twiml_response(twiml.say_and_leave(_base(), answer.say))
    return twiml_response(twiml.say_only(_base(), answer.say))


@bp.post("/twilio/voicemail")
@twilio_signed
def voicemail() -> Response:
    answer = calls.record_voicemail(calls.RecordingReport.from_form(request.form), get_clock().now())
    return twiml_response(_queue_result_twiml(answer))


@bp.post("/twilio/voicemail-status")
@twilio_signed
def voicemail_status() -> Response:
    outcome = calls.record_recording_status(calls.RecordingReport.from_form(request.form), get_clock().now())
    webhook_log.outcome(outcome)
    return twiml_response(twiml.empty())


@bp.post("/twilio/closed/<call_sid>")
@twilio_signed
def closed_while_waiting(call_sid: str) -> Response:
    """Where the worker redirects a waiting caller whose queue closed (services/closing.py)."""
    arrival = closing.answer_closed(call_sid, get_clock().now())
    return twiml_response(_arrival_twiml(arrival))


@bp.post("/twilio/forward-result")
@twilio_signed
def forward_result() -> Response:
    answer = calls.record_forward_result(
        request.form.get("CallSid", ""), request.form.get("DialCallStatus", ""), get_clock().now()
    )
    return twiml_response(_queue_result_twiml(answer))


@bp.post("/twilio/queue-result")
@twilio_signed
def queue_result() -> Response:
    twilio_queues.remember(request.form.get("CallSid", ""), request.form.get("QueueSid", ""))
    if request.form.get("QueueResult") == "bridged":
        seat = _after_bridge(request.form.get("CallSid", ""))
        if seat is not None:
            return seat
    answer = calls.record_queue_result(
        request.form.get("CallSid", ""),
        request.form.get("QueueResult", ""),
        request.form.get("QueueTime"),
        get_clock().now(),
    )
    return twiml_response(_queue_result_twiml(answer))


def _after_bridge(call_sid: str) -> Response | None:
    """The operator's `<Dial><Queue>` bridge has ended. A consult moved the operator's leg into its
    conference: the caller follows. Otherwise the talk is over (the caller's call then ends)."""
    now = get_clock().now()
    group_key = offers.accepted_group(call_sid)
    if group_key is None:
        return None
    seat = consult.caller_seat(group_key, now)
    dispatch.wake()
    if isinstance(seat, consult.CallerRecall):
        return twiml_response(twiml.redirect(_url(seat.path)))
    if seat is not None:
        return twiml_response(str(conference_seat(seat, CALLER, _base())))
    offers.caller_bridge_ended(call_sid, now)
    return None


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
