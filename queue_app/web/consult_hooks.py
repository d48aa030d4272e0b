"""Twilio webhooks of a consult (services/consult.py): the conference seats and their callbacks.

Every route is POST and signed by Twilio. They record facts and wake the worker; they never call
Twilio's REST API (the worker does, worker_consult.py).

    /twilio/consult/<transfer_id>/operator     the operator's leg, redirected by the worker: join
    /twilio/consult/<transfer_id>/colleague    the colleague leg's status callback (Participants create)
    /twilio/consult/<transfer_id>/announce     AnnounceUrl: what the operator hears when back
    /twilio/consult/<transfer_id>/recall       the caller's leg when nobody is left with them: why,
                                               then back to the operator or the queue
    /twilio/conference/<call_id>/events        the conference's status callback (join, leave …)

The caller's seat is given by the caller's Dial action (web/offers.py, `conference_seat`).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import HTTPException

from .. import get_clock
from ..domain import prompts_text
from ..extensions import csrf
from ..services import consult, dispatch
from ..services.consult import CALLER, OPERATOR, ConferenceSeat
from ..telephony.signatures import twilio_signed
from ..telephony.twiml import spoken

log = logging.getLogger("koe.webhooks.consult")

bp = Blueprint("consult_hooks", __name__)
csrf.exempt(bp)

CONFERENCE_EVENTS = "start end join leave"


def _base() -> str:
    return str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")


def _xml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


@bp.errorhandler(Exception)
def _webhook_failed(exc: Exception) -> Response | HTTPException:
    if isinstance(exc, HTTPException):
        return exc
    sid = request.values.get("CallSid", "-")
    log.exception("consult webhook failed route=%s call_sid=%s", request.path, sid)
    return _xml(VoiceResponse())


def conference_seat(seat: ConferenceSeat, label: str, base: str) -> VoiceResponse:
    """`<Dial><Conference>` for the caller (ends the conference on leaving) or the operator."""
    response = VoiceResponse()
    dial = response.dial()
    dial.conference(
        seat.name,
        participant_label=label,
        start_conference_on_enter=True,
        end_conference_on_exit=label == CALLER,
        beep=False,
        wait_url="",
        status_callback=f"{base}/twilio/conference/{seat.call_id}/events",
        status_callback_event=CONFERENCE_EVENTS,
        status_callback_method="POST",
    )
    return response


@bp.post("/twilio/consult/<int:transfer_id>/operator")
@twilio_signed
def operator_seat(transfer_id: int) -> Response:
    seat = consult.operator_seat(transfer_id)
    if seat is None:
        response = VoiceResponse()
        response.hangup()
        return _xml(response)
    return _xml(conference_seat(seat, OPERATOR, _base()))


@bp.post("/twilio/consult/<int:transfer_id>/colleague")
@twilio_signed
def colleague_status(transfer_id: int) -> Response:
    if consult.record_colleague_status(
        transfer_id, request.form.get("CallStatus", ""), request.form.get("CallSid", ""), get_clock().now()
    ):
        dispatch.wake()
    return _xml(VoiceResponse())


@bp.post("/twilio/consult/<int:transfer_id>/announce")
@twilio_signed
def announce(transfer_id: int) -> Response:
    response = VoiceResponse()
    said = consult.announcement(transfer_id)
    if said is not None:
        utterance = spoken(prompts_text.consult_back(said.language, said.name, said.reason), said.language)
        response.say(utterance.text, language=utterance.language, voice=utterance.voice)
    return _xml(response)


@bp.post("/twilio/consult/<int:transfer_id>/recall")
@twilio_signed
def recall(transfer_id: int) -> Response:
    response = VoiceResponse()
    words = consult.recall_words(transfer_id)
    if words is None or words[1] is None:
        response.hangup()
        return _xml(response)
    said, path = words
    response.say(said.text, language=said.language, voice=said.voice)
    response.redirect(_base() + path, method="POST")
    return _xml(response)


@bp.post("/twilio/conference/<int:call_id>/events")
@twilio_signed
def conference_events(call_id: int) -> Response:
    form = request.form
    if consult.record_conference_event(
        call_id,
        form.get("StatusCallbackEvent", ""),
        form.get("ParticipantLabel", ""),
        form.get("ConferenceSid", ""),
        get_clock().now(),
        ends_conference=form.get("EndConferenceOnExit", "").lower() == "true",
        reason_left=form.get("ReasonParticipantLeft", ""),
    ):
        dispatch.wake()
    return _xml(VoiceResponse())
