"""Twilio webhooks of an offer (the caller leg dialling operators) and of a blind transfer.

Every route is POST, signed by Twilio, and answers TwiML with absolute URLs from PUBLIC_BASE_URL.
They only record facts (through services/offers.py and services/transfers.py) and wake the worker;
they never call Twilio's REST API.

URL contract (group_key: an offer group, one per call and dispatch; operator: a user id):
    /twilio/offer/<group_key>/answer?operator=<id>     operator's own leg answered (a queue offer;
                                                       the caller waits in their queue meanwhile):
                                                       <Dial><Queue> the caller, or "press 1" first
    /twilio/offer/<group_key>/confirm?operator=<id>    a phone operator's "press 1"
    /twilio/offer/<group_key>/done?operator=<id>       that leg's <Dial><Queue> has ended
    /twilio/offer/<group_key>                          caller leg: <Dial> the ringing operators (a
                                                       recall to the operator who transferred)
    /twilio/offer/<group_key>/leg?operator=<id>        operator leg's status callback (both kinds)
    /twilio/offer/<group_key>/whisper?operator=<id>    phone operator's leg: "press 1"
    /twilio/offer/<group_key>/whisper-result?operator=<id>
    /twilio/offer/<group_key>/result                   the Dial's action
    /twilio/transfer/<transfer_id>                     caller leg: <Dial> the colleague
    /twilio/transfer/<transfer_id>/result              that Dial's action
    /twilio/transfer/<transfer_id>/wait                camp-on waitUrl
    /twilio/callback/<group_key>                       operator's outbound leg answered: whom to call,
                                                       then <Dial callerId><Number>caller</Number>
    /twilio/callback/<group_key>/confirm               a phone operator's "press 1" (else: no answer)
    /twilio/callback/<group_key>/status                that leg's status callback
    /twilio/callback/<group_key>/result                the Dial to the caller's action
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import HTTPException

from .. import get_clock
from ..domain import prompts_text
from ..extensions import csrf
from ..services import callbacks, consult, dispatch, offers, transfers
from ..services.consult import CALLER
from ..services.offers import DialOutcome, LegStep, OfferPlan
from ..services.transfers import TransferOutcome, TransferResult
from ..telephony import twiml
from ..telephony.signatures import twilio_signed
from ..telephony.twiml import Utterance
from .consult_hooks import conference_seat

log = logging.getLogger("koe.webhooks.offers")

bp = Blueprint("offers", __name__)
csrf.exempt(bp)

LANGUAGES = {"sv": "sv-SE", "en": "en-GB"}
VOICES = {"sv-SE": "Polly.Astrid", "en-GB": "Polly.Amy"}
WHISPER = {
    "sv": "Samtal från kön {queue}. Tryck 1 för att ta samtalet.",
    "en": "Call from the queue {queue}. Press 1 to take the call.",
}
# A camped-on caller hears music between the updates; the first update after this long.
CAMP_ON_MUSIC_SECONDS = 25
CAMP_ON_FIRST_UPDATE_SECONDS = 5
RING_STATUS_EVENTS = "ringing answered completed"


def _base() -> str:
    return str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")


def _xml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def _say(parent: VoiceResponse | object, text: str, language: str, voice: str | None = None) -> None:
    code = LANGUAGES.get(language, "sv-SE")
    parent.say(text, language=code, voice=voice or VOICES[code])  # type: ignore[attr-defined]


def _back_to_queue() -> Response:
    response = VoiceResponse()
    response.redirect(f"{_base()}/twilio/enqueue", method="POST")
    return _xml(response)


def _hang_up() -> Response:
    response = VoiceResponse()
    response.hangup()
    return _xml(response)


def _operator_param() -> int | None:
    raw = request.args.get("operator", "")
    return int(raw) if raw.isdigit() else None


@bp.errorhandler(Exception)
def _webhook_failed(exc: Exception) -> Response | HTTPException:
    """A caller must never hear Twilio's error message: back to the queue (their place is kept)."""
    if isinstance(exc, HTTPException):
        return exc
    log.exception(
        "offer webhook failed route=%s call_sid=%s", request.path, request.values.get("CallSid", "-")
    )
    if request.path.endswith(("/answer", "/confirm", "/done")):
        return _hang_up()  # the operator's own leg: never into the caller queue
    if request.path.startswith("/twilio/callback/"):
        # The operator's own outbound leg: never into the caller queue.
        return _xml(VoiceResponse()) if request.path.endswith("/status") else _hang_up()
    if request.path.endswith(("/leg", "/whisper-result", "/wait")):
        return _xml(VoiceResponse())
    if request.path.endswith("/whisper"):
        return _hang_up()
    return _back_to_queue()


# --- offers --------------------------------------------------------------------------------------


def offer_dial(plan: OfferPlan, base: str) -> VoiceResponse:
    """`<Dial>` every ringing operator of the group: browsers by `<Client>`, phones by `<Number>`."""
    response = VoiceResponse()
    prefix = f"{base}/twilio/offer/{plan.group_key}"
    dial = response.dial(
        timeout=plan.ring_timeout, action=f"{prefix}/result", method="POST", answer_on_bridge=True
    )
    for target in plan.targets:
        leg = f"{prefix}/leg?operator={target.user_id}"
        if target.kind == "client":
            dial.client(
                target.address,
                status_callback=leg,
                status_callback_event=RING_STATUS_EVENTS,
                status_callback_method="POST",
            )
        else:
            dial.number(
                target.address,
                url=f"{prefix}/whisper?operator={target.user_id}",
                method="POST",
                status_callback=leg,
                status_callback_event=RING_STATUS_EVENTS,
                status_callback_method="POST",
            )
    return response


@bp.post("/twilio/offer/<group_key>")
@twilio_signed
def offer(group_key: str) -> Response:
    plan = offers.offer_plan(group_key)
    if not plan.ringing:
        return _back_to_queue()
    return _xml(offer_dial(plan, _base()))


def _bridge_or_confirm(group_key: str, answer: offers.LegAnswer) -> Response:
    operator = _operator_param()
    prefix = f"{_base()}/twilio/offer/{group_key}"
    if answer.step is LegStep.BRIDGE:
        document = twiml.bridge_from_queue(
            answer.call_id, f"{prefix}/done?operator={operator}", f"{prefix}/bridged?operator={operator}"
        )
        return Response(document, mimetype="application/xml")
    if answer.step is LegStep.HOLD:
        # The caller still hears the welcome; their queue begins after it. Look again in a second.
        response = VoiceResponse()
        response.pause(length=1)
        response.redirect(f"{prefix}/answer?operator={operator}", method="POST")
        return _xml(response)
    if answer.step is LegStep.CONFIRM:
        response = VoiceResponse()
        confirm = f"{prefix}/confirm?operator={operator}"
        gather = response.gather(num_digits=1, timeout=6, action=confirm, method="POST")
        text = WHISPER.get(answer.language, WHISPER["sv"]).format(queue=answer.queue_name)
        _say(gather, text, answer.language, answer.voice)
        response.redirect(confirm, method="POST")  # no key (a voicemail): the confirm refuses
        return _xml(response)
    return _hang_up()


@bp.post("/twilio/offer/<group_key>/answer")
@twilio_signed
def offer_answer(group_key: str) -> Response:
    """The operator answered their own leg: bridge with the caller, who waited in their queue."""
    answer = offers.answer_leg(
        group_key, _operator_param(), request.form.get("CallSid", ""), get_clock().now(), confirmed=False
    )
    dispatch.wake()
    return _bridge_or_confirm(group_key, answer)


@bp.post("/twilio/offer/<group_key>/confirm")
@twilio_signed
def offer_confirm(group_key: str) -> Response:
    now = get_clock().now()
    dispatch.wake()
    if request.form.get("Digits", "").strip() != "1":
        offers.refuse_unconfirmed(group_key, _operator_param(), now)
        return _hang_up()
    answer = offers.answer_leg(
        group_key, _operator_param(), request.form.get("CallSid", ""), now, confirmed=True
    )
    return _bridge_or_confirm(group_key, answer)


@bp.post("/twilio/offer/<group_key>/bridged")
@twilio_signed
def offer_bridged(group_key: str) -> Response:
    """The Queue `url`, asked on the caller's side as the operator's leg takes them: the bridge formed."""
    offers.bridge_formed(group_key, _operator_param(), get_clock().now(), request.form.get("QueueSid"))
    dispatch.wake()
    return _xml(VoiceResponse())


@bp.post("/twilio/offer/<group_key>/done")
@twilio_signed
def offer_done(group_key: str) -> Response:
    again = offers.leg_bridge_ended(
        group_key, _operator_param(), request.form.get("DialCallStatus", ""), get_clock().now()
    )
    dispatch.wake()
    if again:
        response = VoiceResponse()
        response.pause(length=1)
        response.redirect(f"{_base()}/twilio/offer/{group_key}/answer?operator={_operator_param()}")
        return _xml(response)
    return _hang_up()


@bp.post("/twilio/offer/<group_key>/leg")
@twilio_signed
def offer_leg(group_key: str) -> Response:
    offers.record_leg_status(
        group_key,
        request.form.get("CallStatus", ""),
        get_clock().now(),
        user_id=_operator_param(),
        to=request.form.get("To"),
        own_leg_sid=request.form.get("CallSid") if request.form.get("Direction") == "outbound-api" else None,
    )
    # Ringing changes nothing for the dispatcher; an answer or an end may free operators.
    if request.form.get("CallStatus") not in ("queued", "initiated", "ringing"):
        dispatch.wake()
    return _xml(VoiceResponse())


@bp.post("/twilio/offer/<group_key>/whisper")
@twilio_signed
def offer_whisper(group_key: str) -> Response:
    """Runs on a phone operator's leg after it answers: a voicemail never presses 1."""
    plan = offers.offer_plan(group_key)
    if not plan.ringing:
        return _hang_up()
    response = VoiceResponse()
    operator = _operator_param()
    query = f"?operator={operator}" if operator is not None else ""
    gather = response.gather(
        num_digits=1,
        timeout=6,
        action=f"{_base()}/twilio/offer/{group_key}/whisper-result{query}",
        method="POST",
    )
    _say(
        gather,
        WHISPER.get(plan.language, WHISPER["sv"]).format(queue=plan.queue_name),
        plan.language,
        plan.voice,
    )
    response.hangup()
    return _xml(response)


@bp.post("/twilio/offer/<group_key>/whisper-result")
@twilio_signed
def offer_whisper_result(group_key: str) -> Response:
    taken = offers.confirm_whisper(
        group_key,
        _operator_param(),
        request.form.get("To"),
        request.form.get("Digits", ""),
        get_clock().now(),
    )
    # An empty document ends the whisper and bridges the operator to the caller.
    return _xml(VoiceResponse()) if taken else _hang_up()


@bp.post("/twilio/offer/<group_key>/result")
@twilio_signed
def offer_result(group_key: str) -> Response:
    caller_here = request.form.get("CallStatus", "") not in offers.CALLER_GONE_STATUSES
    if request.form.get("DialCallStatus") == "completed" and caller_here:
        # The operator's leg was moved into a consult's conference: the caller follows it there.
        # Had the operator hung up during the consult's start, the caller is recalled instead.
        seat = consult.caller_seat(group_key, get_clock().now())
        if isinstance(seat, consult.CallerRecall):
            dispatch.wake()
            response = VoiceResponse()
            response.redirect(_base() + seat.path, method="POST")
            return _xml(response)
        if seat is not None:
            return _xml(conference_seat(seat, CALLER, _base()))
    outcome = offers.finish_dial(
        group_key,
        dial_status=request.form.get("DialCallStatus", ""),
        call_status=request.form.get("CallStatus", ""),
        bridged=request.form.get("DialBridged", "").lower() == "true",
        now=get_clock().now(),
    )
    dispatch.wake()
    if outcome is DialOutcome.REQUEUE:
        return _back_to_queue()
    if outcome is DialOutcome.HANGUP:
        return _hang_up()
    return _xml(VoiceResponse())


# --- blind transfer ------------------------------------------------------------------------------


@bp.post("/twilio/transfer/<int:transfer_id>")
@twilio_signed
def transfer(transfer_id: int) -> Response:
    plan = transfers.transfer_dial(transfer_id)
    if not plan.active:
        return _back_to_queue()
    response = VoiceResponse()
    dial = response.dial(
        timeout=plan.timeout,
        action=f"{_base()}/twilio/transfer/{transfer_id}/result",
        method="POST",
        caller_id=plan.caller_id,
    )
    dial.number(plan.to_number)
    return _xml(response)


@bp.post("/twilio/transfer/<int:transfer_id>/result")
@twilio_signed
def transfer_result(transfer_id: int) -> Response:
    result = transfers.finish_transfer_dial(
        transfer_id,
        dial_status=request.form.get("DialCallStatus", ""),
        call_status=request.form.get("CallStatus", ""),
        now=get_clock().now(),
        camp_on_seconds=int(current_app.config.get("CAMP_ON_SECONDS", 120)),
        camp_on_retry_seconds=int(current_app.config.get("CAMP_ON_RETRY_SECONDS", 30)),
    )
    dispatch.wake()
    return _transfer_twiml(result)


def _transfer_twiml(result: TransferResult) -> Response:
    if result.outcome is TransferOutcome.HANGUP:
        return _hang_up()
    if result.outcome is TransferOutcome.REDIRECT and result.path:
        response = VoiceResponse()
        response.redirect(_base() + result.path, method="POST")
        return _xml(response)
    if result.outcome is TransferOutcome.CAMP_ON and result.transfer_id is not None:
        response = VoiceResponse()
        _add(response, transfers.camp_on_words(result.transfer_id).intro)
        response.enqueue(
            f"koe-campon-{result.transfer_id}",
            wait_url=f"{_base()}/twilio/transfer/{result.transfer_id}/wait",
            wait_url_method="POST",
        )
        return _xml(response)
    return _xml(VoiceResponse())


@bp.post("/twilio/transfer/<int:transfer_id>/wait")
@twilio_signed
def transfer_wait(transfer_id: int) -> Response:
    """Camp-on waitUrl: hold music; from the second fetch on, first a word that they still wait.

    The caller has just heard why (the intro before `<Enqueue>`), so the first document is music.
    """
    words = transfers.camp_on_words(transfer_id)
    waited = request.form.get("QueueTime", "0")
    said = (words.update,) if waited.isdigit() and int(waited) >= CAMP_ON_FIRST_UPDATE_SECONDS else ()
    document = twiml.wait(_base(), said, words.music, CAMP_ON_MUSIC_SECONDS)
    return Response(document, mimetype="application/xml")


def _add(response: VoiceResponse, utterance: Utterance) -> None:
    if utterance.audio_url:
        response.play(twiml.absolute(_base(), utterance.audio_url))
    elif utterance.text:
        response.say(utterance.text, language=utterance.language, voice=utterance.voice)


# --- callbacks (services/callbacks.py) --------------------------------------------------------------


@bp.post("/twilio/callback/<group_key>")
@twilio_signed
def callback(group_key: str) -> Response:
    """The operator answered the callback's outbound call: tell them whom, then dial the caller."""
    plan = callbacks.answer(group_key, get_clock().now())
    if not plan.active:
        return _hang_up()
    response = VoiceResponse()
    whisper = prompts_text.callback_whisper(plan.language, plan.callback_number, plan.queue_name)
    if plan.needs_confirm:
        # A phone: "press 1", as for queue offers; no key (a voicemail) counts as no answer.
        confirm = f"{_base()}/twilio/callback/{group_key}/confirm"
        gather = response.gather(num_digits=1, timeout=6, action=confirm, method="POST")
        _say(gather, f"{whisper} {prompts_text.press_one(plan.language)}", plan.language, plan.voice)
        response.redirect(confirm, method="POST")
        return _xml(response)
    _say(response, whisper, plan.language, plan.voice)
    return _xml(_dial_caller(response, group_key, plan))


@bp.post("/twilio/callback/<group_key>/confirm")
@twilio_signed
def callback_confirm(group_key: str) -> Response:
    plan = callbacks.confirm(group_key, request.form.get("Digits", ""), get_clock().now())
    dispatch.wake()
    if not plan.active:
        return _hang_up()
    return _xml(_dial_caller(VoiceResponse(), group_key, plan))


def _dial_caller(response: VoiceResponse, group_key: str, plan: callbacks.CallbackPlan) -> VoiceResponse:
    dial = response.dial(
        caller_id=plan.caller_id,
        action=f"{_base()}/twilio/callback/{group_key}/result",
        method="POST",
        timeout=callbacks.CALLBACK_DIAL_TIMEOUT,
    )
    dial.number(plan.callback_number)
    return response


@bp.post("/twilio/callback/<group_key>/status")
@twilio_signed
def callback_status(group_key: str) -> Response:
    status = request.form.get("CallStatus", "")
    outcome = callbacks.record_operator_leg(group_key, status, get_clock().now())
    if outcome != "recorded":
        dispatch.wake()
    return _xml(VoiceResponse())


@bp.post("/twilio/callback/<group_key>/result")
@twilio_signed
def callback_result(group_key: str) -> Response:
    result = callbacks.finish(
        group_key,
        request.form.get("DialCallStatus", ""),
        get_clock().now(),
        retry_seconds=int(current_app.config.get("CALLBACK_RETRY_SECONDS", callbacks.DEFAULT_RETRY_SECONDS)),
        max_attempts=int(current_app.config.get("CALLBACK_MAX_ATTEMPTS", callbacks.CALLBACK_MAX_ATTEMPTS)),
    )
    dispatch.wake()
    response = VoiceResponse()
    phrase = {
        "retry": prompts_text.Phrase.CALLBACK_NO_ANSWER,
        "given_up": prompts_text.Phrase.CALLBACK_GIVEN_UP,
    }
    if result.outcome in phrase:
        _say(
            response,
            prompts_text.fixed(result.language, phrase[result.outcome]),
            result.language,
            result.voice,
        )
    response.hangup()
    return _xml(response)
