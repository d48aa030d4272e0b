"""The recording number's call: ask for the PIN, then hand over to the record-prompt TwiML.

URL contract (Twilio-signed, CSRF-exempt, on the prompt_audio blueprint):
    POST /twilio/record-prompt/dial-in           the recording number's Voice URL: <Gather> the PIN
    POST /twilio/record-prompt/dial-in/pin?try=N  the Gather's action: right PIN -> <Redirect> to
                                                  /twilio/record-prompt/<token>; wrong -> try again,
                                                  after MAX_TRIES goodbye
"""

from __future__ import annotations

from flask import Response, current_app, request
from twilio.twiml.voice_response import VoiceResponse

from .. import get_clock
from ..services import prompt_dial_in, prompts
from ..telephony.signatures import twilio_signed
from .prompt_audio import _say, _xml, bp

PIN_TEXTS = {
    "sv": {
        "ask": "Hej! Här spelar du in ett meddelande till Kö. Slå den sexsiffriga pinkoden från webbsidan "
        "och avsluta med fyrkant.",
        "again": "Slå pinkoden igen och avsluta med fyrkant.",
        "wrong": "Den pinkoden stämmer inte.",
        "silence": "Jag hörde ingen pinkod.",
        "goodbye": "Fel pinkod för många gånger. Hej då!",
        "not_here": "Det här numret spelar inte in meddelanden. Hej då!",
    },
    "en": {
        "ask": "Hello! This number records a message for Kö. Enter the six-digit PIN from the web page, "
        "followed by the hash key.",
        "again": "Enter the PIN again, followed by the hash key.",
        "wrong": "That PIN is not right.",
        "silence": "I did not hear a PIN.",
        "goodbye": "Wrong PIN too many times. Goodbye!",
        "not_here": "This number does not record messages. Goodbye!",
    },
}


def _url(path: str) -> str:
    return str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/") + path


def _texts(language: str) -> dict[str, str]:
    return PIN_TEXTS.get(language, PIN_TEXTS["en"])


def _ask(response: VoiceResponse, found: prompt_dial_in.Line, attempt: int, text: str) -> None:
    action = _url(f"/twilio/record-prompt/dial-in/pin?try={attempt}")
    gather = response.gather(
        num_digits=prompt_dial_in.PIN_DIGITS, finish_on_key="#", timeout=10, action=action, method="POST"
    )
    _say(gather, text, found.language, found.voice)
    # No keys at all: the action without Digits, which counts as a try.
    response.redirect(action, method="POST")


@bp.post("/twilio/record-prompt/dial-in")
@twilio_signed
def dial_in() -> Response:
    response = VoiceResponse()
    found = prompt_dial_in.line(request.form.get("To", ""))
    if found is None:
        # Not (or no longer) the recording number: say so in both languages, then hang up.
        for language in ("sv", "en"):
            _say(response, PIN_TEXTS[language]["not_here"], language, None)
        response.hangup()
        return _xml(response)
    _ask(response, found, 1, _texts(found.language)["ask"])
    return _xml(response)


@bp.post("/twilio/record-prompt/dial-in/pin")
@twilio_signed
def dial_in_pin() -> Response:
    response = VoiceResponse()
    found = prompt_dial_in.line(request.form.get("To", ""))
    if found is None:
        response.hangup()
        return _xml(response)
    digits = request.form.get("Digits", "")
    recording_id = (
        prompt_dial_in.enter_pin(
            request.form.get("To", ""), request.form.get("CallSid", ""), digits, get_clock().now()
        )
        if digits
        else None
    )
    if recording_id is not None:
        response.redirect(prompts.record_url(recording_id), method="POST")
        return _xml(response)
    texts = _texts(found.language)
    attempt = int(request.args.get("try", "1")) if request.args.get("try", "").isdigit() else 1
    if attempt >= prompt_dial_in.MAX_TRIES:
        _say(response, texts["goodbye"], found.language, found.voice)
        response.hangup()
        return _xml(response)
    _say(response, texts["wrong"] if digits else texts["silence"], found.language, found.voice)
    _ask(response, found, attempt + 1, texts["again"])
    return _xml(response)
