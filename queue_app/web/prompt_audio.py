"""What Twilio fetches for prompts: their audio files, and the call that records one by phone.

URL contract (all outside log-in, under /twilio/):
    GET  /twilio/prompts/<key>?exp=..&sig=..         a prompt's audio from local storage; the HMAC
                                                     signature of `storage.audio_url`, 403 when wrong
                                                     or expired (S3 prompts are presigned instead)
    POST /twilio/record-prompt/<token>               instructions, then <Record>   (Twilio-signed)
    POST /twilio/record-prompt/<token>/recorded      the Record action: play the take, "1 keep, 2 again"
    POST /twilio/record-prompt/<token>/choice        the Gather action
    POST /twilio/record-prompt/<token>/status        the call's status callback

`token` is the recording session's id signed with SECRET_KEY (services/prompts.py); the TwiML routes
also require Twilio's signature and are CSRF-exempt.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from twilio.twiml.voice_response import VoiceResponse

from .. import get_clock
from ..extensions import csrf
from ..services import prompts
from ..storage import AudioNotFound, StorageError, current_storage, local_signature_is_valid
from ..telephony.signatures import twilio_signed
from ..telephony.twiml import twilio_language, voice_for

bp = Blueprint("prompt_audio", __name__)
csrf.exempt(bp)

CONTENT_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg"}

TEXTS = {
    "sv": {
        "intro": "Hej! Här spelar du in ett meddelande till Kö. Tala efter tonen och tryck på fyrkant när "
        "du är klar. Du kan tala i högst två minuter.",
        "again": "Tala efter tonen och tryck på fyrkant när du är klar.",
        "nothing": "Jag hörde ingen inspelning. Vi försöker igen.",
        "take": "Så här blev det.",
        "menu": "Tryck 1 för att spara inspelningen, eller 2 för att spela in igen.",
        "kept": "Tack, inspelningen är sparad och används om en liten stund. Hej då!",
        "closed": "Den här inspelningen är inte längre aktiv. Hej då!",
    },
    "en": {
        "intro": "Hello! This call records a message for Kö. Speak after the tone and press the hash key "
        "when you are done. You can speak for at most two minutes.",
        "again": "Speak after the tone and press the hash key when you are done.",
        "nothing": "I did not hear a recording. Let us try again.",
        "take": "This is your recording.",
        "menu": "Press 1 to keep the recording, or 2 to record it again.",
        "kept": "Thank you, the recording is saved and will be used in a moment. Goodbye!",
        "closed": "This recording is no longer active. Goodbye!",
    },
}
MENU_REPEATS = 3


@bp.get("/twilio/prompts/<path:key>")
def prompt_file(key: str) -> Any:
    """A prompt's audio for Twilio's <Play>: public, but only with a valid, unexpired signature."""
    secret = str(current_app.config["SECRET_KEY"])
    now = get_clock().now().timestamp()
    if not local_signature_is_valid(
        secret, key, request.args.get("exp", ""), request.args.get("sig", ""), now
    ):
        abort(403)
    try:
        data = current_storage().get(key)
    except (AudioNotFound, StorageError):
        abort(404)
    suffix = "." + key.rsplit(".", 1)[-1].lower() if "." in key else ""
    mimetype = CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


# ---- recording a prompt by phone ---------------------------------------------------------------


def _xml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def _say(parent: Any, text: str, language: str, voice: str | None) -> None:
    code = twilio_language(language)
    parent.say(text, language=code, voice=voice_for(language, voice))


def _session(token: str) -> prompts.CallSession:
    found = prompts.call_session(token)
    if found is None:
        abort(404)
    return found


def _closed(found: prompts.CallSession) -> Response:
    response = VoiceResponse()
    _say(response, TEXTS[_lang(found)]["closed"], found.language, found.voice)
    response.hangup()
    return _xml(response)


def _lang(found: prompts.CallSession) -> str:
    return found.language if found.language in TEXTS else "en"


def _record(response: VoiceResponse, token: str) -> None:
    response.record(
        action=prompts.record_url(prompts.recording_id_from(token) or 0, "recorded"),
        method="POST",
        max_length=prompts.MAX_RECORD_SECONDS,
        play_beep=True,
        finish_on_key="#",
        timeout=5,
    )


def _menu(response: VoiceResponse, found: prompts.CallSession, repeat: int) -> None:
    texts = TEXTS[_lang(found)]
    gather = response.gather(
        num_digits=1, action=prompts.record_url(found.recording_id, "choice"), method="POST", timeout=6
    )
    _say(gather, texts["menu"], found.language, found.voice)
    if repeat + 1 < MENU_REPEATS:
        response.redirect(
            prompts.record_url(found.recording_id, f"recorded?menu={repeat + 1}"), method="POST"
        )
    else:
        response.hangup()


@bp.post("/twilio/record-prompt/<token>")
@twilio_signed
def record_prompt(token: str) -> Response:
    found = _session(token)
    if found.status != prompts.CALLING:
        return _closed(found)
    response = VoiceResponse()
    texts = TEXTS[_lang(found)]
    _say(
        response, texts["again"] if request.args.get("again") else texts["intro"], found.language, found.voice
    )
    _record(response, token)
    # Reached only when nothing was recorded (silence): try once more, then give up.
    if request.args.get("again"):
        response.hangup()
    else:
        _say(response, texts["nothing"], found.language, found.voice)
        response.redirect(prompts.record_url(found.recording_id) + "?again=1", method="POST")
    return _xml(response)


@bp.post("/twilio/record-prompt/<token>/recorded")
@twilio_signed
def record_prompt_recorded(token: str) -> Response:
    found = _session(token)
    menu_repeat = request.args.get("menu", "")
    if menu_repeat.isdigit():
        # The menu again, after a silence: the take is already stored on the session.
        if found.status != prompts.RECORDED:
            return _closed(found)
        response = VoiceResponse()
        _menu(response, found, int(menu_repeat))
        return _xml(response)
    url = request.form.get("RecordingUrl", "")
    duration = request.form.get("RecordingDuration", "")
    seconds = float(duration) if duration.replace(".", "", 1).isdigit() else None
    if not url or not prompts.recorded(found.recording_id, url, request.form.get("RecordingSid"), seconds):
        return _closed(found)
    response = VoiceResponse()
    _say(response, TEXTS[_lang(found)]["take"], found.language, found.voice)
    response.play(url)
    _menu(response, found, 0)
    return _xml(response)


@bp.post("/twilio/record-prompt/<token>/choice")
@twilio_signed
def record_prompt_choice(token: str) -> Response:
    found = _session(token)
    status = prompts.choose(found.recording_id, request.form.get("Digits", ""))
    response = VoiceResponse()
    texts = TEXTS[_lang(found)]
    if status == prompts.KEPT:
        _say(response, texts["kept"], found.language, found.voice)
        response.hangup()
    elif status == prompts.CALLING:
        response.redirect(prompts.record_url(found.recording_id) + "?again=1", method="POST")
    elif status == prompts.RECORDED:
        _menu(response, found, 1)
    else:
        return _closed(found)
    return _xml(response)


@bp.post("/twilio/record-prompt/<token>/status")
@twilio_signed
def record_prompt_status(token: str) -> Response:
    recording_id = prompts.recording_id_from(token)
    if recording_id is not None:
        prompts.call_ended(recording_id, request.form.get("CallStatus", ""))
    return _xml(VoiceResponse())


from . import prompt_dial_in  # noqa: E402,F401  (its routes are on this blueprint)
