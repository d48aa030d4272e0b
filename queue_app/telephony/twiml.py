"""TwiML builders: pure functions from plain values to a TwiML string.

Only `twilio.twiml.voice_response.VoiceResponse` writes XML here (the wait document is joined from
elements it wrote), so every piece of user text (a queue or company name, a prompt an admin typed)
is escaped by the library, never by us.
Relative audio URLs ("/twilio/audio/hold.wav") are made absolute with the public base URL, because
Twilio resolves relative URLs against the document and the waitUrl may be fetched via redirects.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

# Twilio language codes and the voices that fit them (twilio.md §3).
LANGUAGE_CODES = {"sv": "sv-SE", "en": "en-GB"}
DEFAULT_VOICES = {"sv-SE": "Polly.Astrid", "en-GB": "Polly.Amy", "en-US": "Polly.Joanna"}


@dataclass(frozen=True, slots=True)
class Utterance:
    """One thing the caller hears: a recorded prompt (`audio_url`) or text read by `voice`."""

    text: str | None = None
    audio_url: str | None = None
    language: str = "sv-SE"
    voice: str | None = None


@dataclass(frozen=True, slots=True)
class Music:
    url: str
    # None: the length is unknown, so the track is played once.
    track_seconds: float | None = None


def twilio_language(language: str | None) -> str:
    """Our language ("sv"/"en") as a Twilio language code; a code passes through unchanged."""
    if language and "-" in language:
        return language
    return LANGUAGE_CODES.get(language or "sv", "sv-SE")


def voice_for(language: str, configured: str | None = None) -> str:
    return configured or DEFAULT_VOICES.get(twilio_language(language), "Polly.Astrid")


def spoken(text: str, language: str, voice: str | None = None) -> Utterance:
    code = twilio_language(language)
    return Utterance(text=text, language=code, voice=voice_for(code, voice))


def absolute(base_url: str, url: str) -> str:
    return url if "://" in url else base_url.rstrip("/") + "/" + url.lstrip("/")


def _add(response: Any, utterances: Sequence[Utterance], base_url: str) -> None:
    for u in utterances:
        if u.audio_url:
            response.play(absolute(base_url, u.audio_url))
        elif u.text:
            response.say(u.text, voice=u.voice or voice_for(u.language), language=u.language)


def queue_name(call_id: int) -> str:
    """The caller's own Twilio queue (Enqueue name, ≤ 64 characters).

    One queue per caller: the operator who answers an offer bridges with exactly this caller
    (`<Dial><Queue>`, which takes a queue's first member), while the order of our queue stays ours.
    """
    return f"koe-caller-{call_id}"


def enqueue(base_url: str, call_id: int, before: Sequence[Utterance] = ()) -> str:
    """The welcome (or nothing), then the caller joins their Twilio queue with our waitUrl and action."""
    response = VoiceResponse()
    _add(response, before, base_url)
    base = base_url.rstrip("/")
    response.enqueue(
        queue_name(call_id),
        wait_url=f"{base}/twilio/wait",
        wait_url_method="POST",
        action=f"{base}/twilio/queue-result",
        method="POST",
    )
    return str(response)


def bridge_from_queue(call_id: int, action: str, bridged_url: str, timeout: int = 10) -> str:
    """The operator's answered leg takes the caller out of their queue: `<Dial><Queue>`.

    The caller hears the queue's announcements until this moment. `timeout`: how long the Dial
    waits should the caller's queue be empty (they hung up just now); then `action` is told.
    `bridged_url` is asked on the caller's side the moment the bridge forms (Queue `url`).
    """
    response = VoiceResponse()
    dial = response.dial(action=action, method="POST", timeout=timeout)
    dial.queue(queue_name(call_id), url=bridged_url, method="POST")
    return str(response)


def wait(
    base_url: str,
    utterances: Sequence[Utterance],
    music: Music | None,
    music_seconds: int,
    listen_action: str | None = None,
) -> str:
    """One waitUrl document: what is said now, then music (or silence) until the next fetch.

    With `listen_action` the whole document is wrapped in `<Gather numDigits="1">`, so a key the
    caller presses (the caller options: 1 call me back, 2 leave a message) stops the audio and is
    posted there. Without a key the Gather falls through, the document ends and Twilio fetches the
    waitUrl again, as it does without one.
    """
    return _wait_document(base_url, tuple(utterances), music, music_seconds, listen_action)


@functools.lru_cache(maxsize=1024)
def _wait_document(
    base_url: str,
    utterances: tuple[Utterance, ...],
    music: Music | None,
    music_seconds: int,
    listen_action: str | None,
) -> str:
    """Remembered: most waitUrl fetches get one of a few documents (music, nothing said).

    An announcing document is mostly made of elements other callers' documents have too (the
    periodic message, "about 3 minutes", the music), so without a Gather it is joined from
    elements the library wrote and this process remembers (`_element`): in a long line every
    caller hears a position of their own, and writing the whole document cost ~30 µs in a tight
    loop, ~68 µs in the request at 10,000 callers (now ~32). `test_twiml` checks that the result is
    what the library writes whole.
    """
    if listen_action:
        return _library_wait_document(base_url, utterances, music, music_seconds, listen_action)
    elements = [_element(base_url, u, None, 0) for u in utterances]
    if music_seconds > 0:
        elements.append(_element(base_url, None, music, music_seconds))
    if not any(elements):  # the library writes an empty document as <Response />
        return _library_wait_document(base_url, utterances, music, music_seconds, None)
    return _RESPONSE_OPEN + "".join(elements) + _RESPONSE_CLOSE


def _library_wait_document(
    base_url: str,
    utterances: tuple[Utterance, ...],
    music: Music | None,
    music_seconds: int,
    listen_action: str | None,
) -> str:
    """The wait document written whole by the library's XML writer."""
    response = VoiceResponse()
    target: Any = response
    if listen_action:
        target = response.gather(num_digits=1, action=listen_action, method="POST", timeout=1)
    _add(target, utterances, base_url)
    _add_music(target, base_url, music, music_seconds)
    return str(response)


def _add_music(target: Any, base_url: str, music: Music | None, music_seconds: int) -> None:
    if music_seconds <= 0:
        return
    if music is None:
        target.pause(length=music_seconds)
        return
    loops = 1
    if music.track_seconds:
        loops = max(1, math.floor(music_seconds / music.track_seconds + 0.5))
    target.play(absolute(base_url, music.url), loop=loops)


@functools.lru_cache(maxsize=4096)
def _element(base_url: str, utterance: Utterance | None, music: Music | None, music_seconds: int) -> str:
    """One element of a wait document (an utterance, or the music), as the library writes it."""
    response = VoiceResponse()
    if utterance is not None:
        _add(response, (utterance,), base_url)
    else:
        _add_music(response, base_url, music, music_seconds)
    document = str(response)
    if not document.startswith(_RESPONSE_OPEN):
        return ""  # nothing to say (an utterance without text or audio): `<Response />`
    return document.removeprefix(_RESPONSE_OPEN).removesuffix(_RESPONSE_CLOSE)


def _around_elements() -> tuple[str, str]:
    """The library's document before and after its elements, read off a document with one."""
    response = VoiceResponse()
    response.pause(length=1)
    before, after = str(response).split('<Pause length="1" />')
    return before, after


_RESPONSE_OPEN, _RESPONSE_CLOSE = _around_elements()


def say_and_hang_up(base_url: str, utterances: Sequence[Utterance]) -> str:
    response = VoiceResponse()
    _add(response, utterances, base_url)
    response.hangup()
    return str(response)


def reject_busy() -> str:
    """The only verb, so the call is never answered (nor billed): the caller hears busy."""
    response = VoiceResponse()
    response.reject(reason="busy")
    return str(response)


def say_and_forward(
    base_url: str,
    utterances: Sequence[Utterance],
    number: str,
    caller_id: str | None = None,
    action: str | None = None,
    timeout: int = 30,
) -> str:
    """What is said (maybe nothing), then the call is forwarded to `number`.

    `caller_id` is the caller's own number, so whoever answers sees who is calling. `action` is
    asked how the forward went, so a forward nobody answers still ends with a message.
    """
    response = VoiceResponse()
    _add(response, utterances, base_url)
    attributes: dict[str, Any] = {"timeout": timeout}
    if caller_id:
        attributes["caller_id"] = caller_id
    if action:
        attributes.update(action=action, method="POST")
    dial = response.dial(**attributes)
    dial.number(number)
    return str(response)


def say_and_leave(base_url: str, utterances: Sequence[Utterance]) -> str:
    """In a waitUrl (or its Gather action): say something, then leave the queue.

    Twilio then asks the Enqueue action with `QueueResult=leave`, whose answer continues the call.
    """
    response = VoiceResponse()
    _add(response, utterances, base_url)
    response.leave()
    return str(response)


def say_only(base_url: str, utterances: Sequence[Utterance]) -> str:
    """Say something and end the document (in a waitUrl: Twilio fetches the waitUrl again)."""
    response = VoiceResponse()
    _add(response, utterances, base_url)
    return str(response)


def record_message(
    base_url: str,
    utterances: Sequence[Utterance],
    action: str,
    status_callback: str,
    max_length: int = 120,
) -> str:
    """The prompt, then a recording of up to `max_length` seconds; `action` continues the call."""
    response = VoiceResponse()
    _add(response, utterances, base_url)
    response.record(
        max_length=max_length,
        action=action,
        method="POST",
        play_beep=True,
        finish_on_key="#",
        recording_status_callback=status_callback,
        recording_status_callback_method="POST",
    )
    return str(response)


def redirect(url: str) -> str:
    response = VoiceResponse()
    response.redirect(url, method="POST")
    return str(response)


def empty() -> str:
    """Nothing to do: the call was moved on on purpose, or has gone."""
    return str(VoiceResponse())
