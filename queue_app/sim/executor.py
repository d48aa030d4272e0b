"""Running TwiML on a call leg with Twilio's semantics (twilio.md §3).

Each leg runs a generator: it yields how long it wants to wait (None: until woken) and is resumed
with a signal from another part of the emulator (digits, a child answered, the bridge ended) or None
when its time is up. So a verb reads top-down like the documentation describes it, and nothing ever
blocks: every wait is an event on the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from .audio import tone_wav
from .model import Call, Heard
from .transport import FormData
from .twiml import WAIT_URL_VERBS, WHISPER_VERBS, Node, TwimlError, parse

if TYPE_CHECKING:
    from .emulator import Emulator

log = logging.getLogger("koe.emulator")

Signal = tuple[str, Any]
Step = Generator[float | None, Signal | None, Any]
DEFAULT_WAIT_MUSIC = "http://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3"
SPIN_LIMIT = 20  # documents fetched at one virtual instant before the emulator lets a second pass
LOOP_FOREVER = 1000  # twilio.md §3: loop="0" repeats until hang-up or 1000 times


class LegEnded(Exception):
    """The leg hung up (or was hung up) while its TwiML was waiting."""


class Interrupted(Exception):
    def __init__(self, signal: Signal) -> None:
        super().__init__(signal[0])
        self.signal = signal


@dataclass(frozen=True)
class Next:
    """Fetch a new document: Redirect, or an action."""

    url: str
    method: str = "POST"
    params: tuple[tuple[str, str], ...] = ()


END = "end"  # the document stopped the call (Hangup, Reject)


@dataclass
class Document:
    url: str
    verbs: list[Node]


class LegProcess:
    """Drives one leg's generator with the scheduler."""

    def __init__(self, emulator: Emulator, call: Call, gen: Step) -> None:
        self.emulator = emulator
        self.call = call
        self.gen = gen
        self.timer: Any = None
        self.running = False
        self.done = False
        self.stop_requested = False

    def start(self) -> None:
        self.emulator.later(0, lambda: self._resume(None))

    def wake(self, kind: str, data: Any = None) -> None:
        if not self.done:
            self.emulator.later(0, lambda: self._resume((kind, data)))

    def stop(self) -> None:
        if self.running:
            self.stop_requested = True
        else:
            self._close()

    def _close(self) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        self.gen.close()

    def _resume(self, signal: Signal | None) -> None:
        if self.done:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.running = True
        try:
            wait = self.gen.send(signal)
        except (StopIteration, LegEnded):
            self.done = True
            return
        finally:
            self.running = False
        if self.stop_requested:
            self._close()
            return
        if wait is not None:
            self.timer = self.emulator.later(wait, lambda: self._resume(None))


def run(emulator: Emulator, call: Call, steps: Callable[[LegRunner], Step]) -> LegProcess:
    runner = LegRunner(emulator, call)
    process = LegProcess(emulator, call, _guard(runner, steps(runner)))
    call.process = process
    process.start()
    return process


def _guard(runner: LegRunner, gen: Step) -> Step:
    try:
        yield from gen
    except LegEnded:
        return


def start_inbound(emulator: Emulator, call: Call) -> None:
    script = call.script
    if script.patience is not None:
        call.patience_timer = emulator.later(script.patience, lambda: _impatient(emulator, call))
    assert call.url is not None
    url, method = call.url, call.method
    run(emulator, call, lambda r: r.main(url, method))


def _impatient(emulator: Emulator, call: Call) -> None:
    if call.bridged_with is None and call.conference_sid is None:
        emulator.hang_up(call)


def restart(emulator: Emulator, call: Call, url: str | None, method: str, twiml: str | None) -> None:
    if call.ended:
        return
    if twiml is not None:
        run(emulator, call, lambda r: r.main_twiml(twiml))
    elif url:
        run(emulator, call, lambda r: r.main(url, method))


def start_outbound(
    emulator: Emulator, call: Call, ring_timeout: float, conference: tuple[str, dict[str, Any]] | None = None
) -> None:
    run(emulator, call, lambda r: r.outbound(ring_timeout, conference))


class LegRunner:
    def __init__(self, emulator: Emulator, call: Call) -> None:
        self.emu = emulator
        self.call = call
        self.interrupts: set[str] = set()
        self.allowed: frozenset[str] | None = None  # restricts verbs (waitUrl, whisper)

    # ---- waiting -------------------------------------------------------------------------------

    def wait(self, seconds: float | None, accept: frozenset[str] | set[str] = frozenset()) -> Step:
        deadline = None if seconds is None else self.emu.now() + timedelta(seconds=seconds)
        while True:
            remaining = None if deadline is None else max(0.0, (deadline - self.emu.now()).total_seconds())
            signal = yield remaining
            if self.call.ended:
                raise LegEnded
            if signal is None:
                if deadline is None or self.emu.now() >= deadline:
                    return None
                continue
            if signal[0] in self.interrupts:
                raise Interrupted(signal)
            if signal[0] in accept:
                return signal

    def hear(self, kind: str, content: str, language: str | None = None, voice: str | None = None) -> None:
        self.call.heard.append(Heard(self.emu.now(), kind, content, language, voice))

    def answer(self) -> None:
        self.emu.mark_answered(self.call)

    # ---- fetching documents --------------------------------------------------------------------

    def params(self, extra: FormData | tuple[tuple[str, str], ...] = ()) -> FormData:
        return self.emu.call_params(self.call) + list(extra)

    def fetch(self, url: str, method: str, extra: FormData | tuple[tuple[str, str], ...] = ()) -> Any:
        """A document, or (code, message) when the request or its TwiML failed."""
        outcome = self.emu.request(url, method, self.params(extra), self.call.sid)
        if not outcome.ok:
            return (outcome.code, outcome.message)
        response = outcome.response
        ctype = response.content_type.split(";")[0].strip().lower()
        if ctype.startswith("audio/"):
            return Document(url, [Node("Play", text=url)])
        if not ctype:
            self.emu.record_error(12300, url, self.call.sid, "Invalid Content-Type: none")
            return (12300, "no Content-Type")
        if ctype not in ("text/xml", "application/xml", "text/html", "text/plain"):
            self.emu.record_error(12300, url, self.call.sid, f"Invalid Content-Type: {ctype}")
            return (12300, f"Content-Type {ctype}")
        try:
            return Document(url, parse(response.body))
        except TwimlError as exc:
            if ctype == "text/plain":
                return Document(url, [Node("Say", text=response.text.strip())])
            self.emu.record_error(12100, url, self.call.sid, f"Document parse failure: {exc}")
            return (12100, str(exc))

    def fetch_or_fail(self, url: str, method: str, extra: Any = ()) -> Step:
        """Fetch a call-flow document; on failure apply Twilio's treatment (fallback URL, else the
        application-error message and hang-up) and return None."""
        result = self.fetch(url, method, extra)
        if isinstance(result, Document):
            return result
        code, _message = result
        call = self.call
        if call.fallback_url and url != call.fallback_url:
            fallback = self.fetch(
                call.fallback_url,
                call.fallback_method,
                [*extra, ("ErrorCode", str(code)), ("ErrorUrl", url)],
            )
            if isinstance(fallback, Document):
                return fallback
        yield from self.application_error()
        return None

    def application_error(self) -> Step:
        self.answer()
        options = self.emu.options
        text = options.application_error_message
        self.hear("say", text, options.application_error_language, "woman")
        yield from self.wait(self.emu.say_length(text))
        self.emu.end_call(self.call, "completed")

    # ---- the call's main loop ------------------------------------------------------------------

    def main(self, url: str, method: str = "POST", extra: Any = ()) -> Step:
        target: Next | None = Next(url, method, tuple(extra))
        instant, same_instant = self.emu.now(), 0
        while target is not None and not self.call.ended:
            same_instant = same_instant + 1 if self.emu.now() == instant else 0
            instant = self.emu.now()
            if same_instant >= SPIN_LIMIT:
                # An app that redirects in a loop without any audio would spin forever in virtual
                # time; let a second pass (the real network would make it take time too).
                yield from self.wait(1.0)
            doc = yield from self.fetch_or_fail(target.url, target.method, target.params)
            if doc is None:
                return
            target = yield from self.run_document(doc)
        if not self.call.ended:
            self.emu.end_call(self.call, "completed")

    def main_twiml(self, twiml: str) -> Step:
        try:
            doc = Document(self.call.url or "", parse(twiml))
        except TwimlError as exc:
            self.emu.record_error(12100, "Twiml", self.call.sid, f"Document parse failure: {exc}")
            yield from self.application_error()
            return
        target = yield from self.run_document(doc)
        if target is not None and not self.call.ended:
            yield from self.main(target.url, target.method, target.params)
        elif not self.call.ended:
            self.emu.end_call(self.call, "completed")

    def run_document(self, doc: Document) -> Step:
        """Run verbs top-down; returns the next document to fetch, or None when this one ends."""
        self.call.doc_url = doc.url
        for verb in doc.verbs:
            if self.call.ended:
                return None
            if self.allowed is not None and verb.name not in self.allowed:
                raise TwimlError(f"<{verb.name}> is not allowed here")
            if (
                not self.call.answered
                and verb.name not in ("Reject", "Pause")
                and not (verb.name == "Dial" and verb.flag("answerOnBridge"))
            ):
                self.answer()
            handler = getattr(self, "verb_" + verb.name.lower(), None)
            if handler is None:
                log.info("emulator skips unsupported verb <%s>", verb.name)
                continue
            result = yield from handler(verb, doc.url)
            if result == END:
                return None
            if isinstance(result, Next):
                return result
        return None

    def resolve(self, url: str, doc_url: str) -> str:
        return urljoin(doc_url, url) if doc_url else url

    # ---- audio verbs ---------------------------------------------------------------------------

    def loops(self, verb: Node) -> int:
        count = int(verb.number("loop", 1))
        return LOOP_FOREVER if count <= 0 else count

    def verb_say(self, verb: Node, doc_url: str, interruptible: bool = False) -> Step:
        text = verb.text
        language = verb.get("language", "en-US")
        voice = verb.attrs.get("voice")
        for _ in range(self.loops(verb)):
            self.hear("say", text, language, voice)
            if (yield from self.audio_wait(self.emu.say_length(text), interruptible)):
                return "interrupted"
            self.after_hearing(text)
        return None

    def verb_play(self, verb: Node, doc_url: str, interruptible: bool = False) -> Step:
        if verb.attrs.get("digits"):
            digits = verb.get("digits")
            self.hear("digits", digits)
            seconds = sum(0.5 if d == "w" else 1.0 if d == "W" else 0.1 for d in digits)
            yield from self.wait(seconds)
            return None
        url = self.resolve(verb.text, doc_url)
        for _ in range(self.loops(verb)):
            self.hear("play", url)
            if (yield from self.audio_wait(self.emu.play_length(url), interruptible)):
                return "interrupted"
            self.after_hearing(url)
        return None

    def verb_pause(self, verb: Node, doc_url: str, interruptible: bool = False) -> Step:
        length = verb.number("length", 1)
        self.hear("pause", f"{length:g}")
        if (yield from self.audio_wait(length, interruptible)):
            return "interrupted"
        return None

    def audio_wait(self, seconds: float, interruptible: bool) -> Step:
        """Wait while audio plays; True if a key press interrupted it (only inside a Gather)."""
        if interruptible and self.call.digit_buffer:
            return True
        accept = frozenset({"digits"}) if interruptible else frozenset()
        signal = yield from self.wait(seconds, accept)
        return signal is not None

    def after_hearing(self, text: str) -> None:
        wanted = self.call.script.hang_up_after_hearing
        if wanted and wanted in text:
            self.emu.hang_up(self.call)
            raise LegEnded

    # ---- input ---------------------------------------------------------------------------------

    def listen(self) -> None:
        call = self.call
        call.listening = True
        call.digit_buffer.clear()
        self.arm_script_press()

    def arm_script_press(self) -> None:
        """Schedule the caller's next scripted key press for the Gather that just started."""
        call = self.call
        script = call.script
        if call.next_press >= len(script.presses):
            return
        step = script.presses[call.next_press]
        origin = call.press_due_at if (step.relative and call.press_due_at) else call.created_at
        due = max(
            origin + timedelta(seconds=step.after), self.emu.now() + timedelta(seconds=script.reaction_s)
        )
        index = call.next_press

        def press() -> None:
            if call.listening and call.next_press == index and not call.ended:
                call.next_press += 1
                call.press_due_at = self.emu.now()
                self.emu.press(call, step.digits)

        call.timers.append(self.emu.scheduler.call_at(due, press))

    def verb_gather(self, verb: Node, doc_url: str) -> Step:
        call = self.call
        num_digits = int(verb.number("numDigits", 0)) or None
        timeout = verb.number("timeout", 5)
        finish = verb.attrs.get("finishOnKey", "#")
        self.listen()
        try:
            for child in verb.children:
                handler = getattr(self, "verb_" + child.name.lower())
                if (yield from handler(child, doc_url, interruptible=True)) == "interrupted":
                    break
            digits = ""
            finished = False
            while not finished:
                while call.digit_buffer and not finished:
                    key = call.digit_buffer.pop(0)
                    if finish and key == finish:
                        finished = True
                    else:
                        digits += key
                        finished = num_digits is not None and len(digits) >= num_digits
                if finished:
                    break
                if (yield from self.wait(timeout, frozenset({"digits"}))) is None:
                    break
        finally:
            call.listening = False
        action = self.resolve(verb.get("action"), doc_url) if verb.get("action") else doc_url
        method = verb.get("method", "POST")
        if digits:
            return Next(action, method, (("Digits", digits),))
        if verb.flag("actionOnEmptyResult"):
            return Next(action, method, ())
        return None

    def verb_record(self, verb: Node, doc_url: str) -> Step:
        call = self.call
        timeout = verb.number("timeout", 5)
        max_length = verb.number("maxLength", 3600) or 3600
        finish = verb.attrs.get("finishOnKey", "1234567890*#")
        action = self.resolve(verb.get("action"), doc_url) if verb.get("action") else doc_url
        method = verb.get("method", "POST")
        if verb.flag("playBeep", True):
            self.hear("beep", "")
            yield from self.wait(self.emu.options.beep_seconds)
        started = self.emu.now()
        speak = min(call.script.speak_for, max_length)

        def spoken() -> float:
            return min(speak, (self.emu.now() - started).total_seconds())

        def finish_recording(digits: str) -> tuple[tuple[str, str], ...] | None:
            seconds = round(spoken())
            if seconds <= 0:
                return None
            recording = self.emu.add_recording(call, seconds, tone_wav(seconds))
            url = self.emu.recording_url(recording.sid)
            callback = verb.get("recordingStatusCallback")
            if callback:
                form = [
                    ("AccountSid", call.account_sid),
                    ("CallSid", call.sid),
                    ("RecordingChannels", "1"),
                    ("RecordingDuration", str(seconds)),
                    ("RecordingSid", recording.sid),
                    ("RecordingSource", "RecordVerb"),
                    ("RecordingStatus", "completed"),
                    ("RecordingUrl", url),
                ]
                target = self.resolve(callback, doc_url)
                cb_method = verb.get("recordingStatusCallbackMethod", "POST")
                self.emu.later(1.0, lambda: self.emu.request(target, cb_method, form, call.sid))
            params = [
                ("RecordingDuration", str(seconds)),
                ("RecordingSid", recording.sid),
                ("RecordingUrl", url),
            ]
            if digits:
                params.append(("Digits", digits))
            return tuple(params)

        def on_interrupt(reason: str) -> None:
            if reason == "hangup":
                params = finish_recording("hangup")
                if params is not None:
                    self.emu.fire_and_forget(action, method, self.params(params), call.sid)

        call.interrupt = on_interrupt
        self.listen()
        ended_by = ""
        try:
            limit = min(max_length, speak + timeout) if timeout > 0 else max_length
            deadline = started + timedelta(seconds=limit)
            while True:
                remaining = (deadline - self.emu.now()).total_seconds()
                if remaining <= 0:
                    break
                if (yield from self.wait(remaining, frozenset({"digits"}))) is None:
                    break
                keys = [k for k in call.digit_buffer if k in finish]
                call.digit_buffer.clear()
                if keys:
                    ended_by = keys[0]
                    break
        finally:
            call.listening = False
            call.interrupt = None
        params = finish_recording(ended_by)
        if params is None:
            # Nothing was recorded: Twilio goes on with the next verb (the documentation's example
            # follows <Record> with "I did not receive a recording"),
            # https://www.twilio.com/docs/voice/twiml/record
            return None
        return Next(action, method, params)

    # ---- small verbs ---------------------------------------------------------------------------

    def verb_redirect(self, verb: Node, doc_url: str) -> Step:
        return Next(self.resolve(verb.text, doc_url), verb.get("method", "POST"))
        yield  # pragma: no cover

    def verb_hangup(self, verb: Node, doc_url: str) -> Step:
        self.answer()
        self.emu.end_call(self.call, "completed")
        return END
        yield  # pragma: no cover

    def verb_reject(self, verb: Node, doc_url: str) -> Step:
        # twilio.md §3: unanswered, the call ends busy or no-answer according to the reason.
        status = "busy" if verb.get("reason", "rejected") == "busy" else "no-answer"
        self.emu.end_call(self.call, "completed" if self.call.answered else status)
        return END
        yield  # pragma: no cover

    def verb_leave(self, verb: Node, doc_url: str) -> Step:
        if "leave" in self.interrupts:
            raise Interrupted(("leave", None))
        return None
        yield  # pragma: no cover

    # ---- Enqueue -------------------------------------------------------------------------------

    def verb_enqueue(self, verb: Node, doc_url: str) -> Step:
        emu, call = self.emu, self.call
        name = verb.text
        max_size = int(verb.number("maxQueueSize", 0)) or None
        queue = emu.queue_by_name(name, create=True, max_size=max_size)
        assert queue is not None
        action = self.resolve(verb.get("action"), doc_url) if verb.get("action") else ""
        method = verb.get("method", "POST")
        if len(queue.members) >= queue.max_size:
            return self.enqueue_result(action, method, "queue-full", None, 0)
        wait_url_attr = verb.attrs.get("waitUrl")
        wait_url = self.resolve(wait_url_attr, doc_url) if wait_url_attr else wait_url_attr
        wait_method = verb.get("waitUrlMethod", "POST" if wait_url_attr else "GET")
        emu.enqueue(call, queue)

        def on_interrupt(reason: str) -> None:
            queue_time = emu.queue_time_s(call)
            emu.remove_from_queue(call)
            if not action or (reason == "redirected" and not emu.options.enqueue_action_on_redirect):
                return
            result = "hangup" if reason == "hangup" else "redirected"
            params = [("QueueResult", result), ("QueueSid", queue.sid), ("QueueTime", str(queue_time))]
            emu.fire_and_forget(action, method, self.params(params), call.sid)

        call.interrupt = on_interrupt
        saved = self.interrupts
        self.interrupts = {"bridge", "leave"}
        result = "error"
        bridge: Signal | None = None
        try:
            yield from self.wait_loop(queue, wait_url, wait_method)
        except Interrupted as exc:
            if exc.signal[0] == "leave":
                result = "leave"
            else:
                bridge = exc.signal
        except TwimlError as exc:
            emu.record_error(12100, wait_url or "", call.sid, f"waitUrl: {exc}")
            result = "error"
        finally:
            self.interrupts = saved
            call.interrupt = None
        queue_time = emu.queue_time_s(call)
        emu.remove_from_queue(call)
        if bridge is not None:
            result = yield from self.be_bridged_from_queue(queue, bridge[1], queue_time)
        return self.enqueue_result(action, method, result, queue.sid, queue_time)

    def enqueue_result(
        self, action: str, method: str, result: str, queue_sid: str | None, queue_time: int
    ) -> Any:
        if not action or self.call.ended:
            return None
        params: list[tuple[str, str]] = [("QueueResult", result)]
        if queue_sid:
            params += [("QueueSid", queue_sid), ("QueueTime", str(queue_time))]
        return Next(action, method, tuple(params))

    def wait_loop(self, queue: Any, wait_url: str | None, wait_method: str) -> Step:
        """twilio.md §3: when the waitUrl document ends, Twilio requests it again with fresh values."""
        if wait_url == "":
            yield from self.wait(None)
        while True:
            if wait_url is None:
                self.hear("play", DEFAULT_WAIT_MUSIC)
                yield from self.wait(self.emu.options.wait_music_seconds)
                continue
            target: Next | None = Next(wait_url, wait_method)
            started = self.emu.now()
            while target is not None:
                extra = self.emu.queue_params(self.call, queue) + list(target.params)
                result = self.fetch(target.url, target.method, extra)
                if not isinstance(result, Document):
                    raise TwimlError(f"waitUrl failed with {result[0]}")
                saved = self.allowed
                self.allowed = WAIT_URL_VERBS
                try:
                    target = yield from self.run_document(result)
                finally:
                    self.allowed = saved
                if self.call.ended:
                    raise LegEnded
            if self.emu.now() == started:
                # A document that takes no time would spin; Twilio would hammer the app too, but in
                # virtual time we let a second pass so that the run still advances.
                yield from self.wait(1.0)

    def be_bridged_from_queue(self, queue: Any, info: dict[str, Any], queue_time: int) -> Step:
        """A `<Dial><Queue>` picked this caller: run its url TwiML, then talk until the bridge ends."""
        emu, call = self.emu, self.call
        dialer = emu.state.calls[info["dialer"]]

        def on_interrupt(reason: str) -> None:
            if dialer.process is not None and not call.bridged_with:
                dialer.process.wake("member_gone", call.sid)

        call.interrupt = on_interrupt
        if info.get("url"):
            extra = [
                ("DequeingCallSid", dialer.sid),
                ("QueueSid", queue.sid),
                ("QueueTime", str(queue_time)),
            ]
            doc = self.fetch(info["url"], info.get("method", "POST"), extra)
            if isinstance(doc, Document):
                saved = self.allowed
                self.allowed = frozenset({"Play", "Say", "Pause", "Redirect"})
                try:
                    yield from self.run_document(doc)
                except TwimlError:
                    pass
                finally:
                    self.allowed = saved
        if dialer.ended:
            call.interrupt = None
            return "bridging-in-process"
        dialer.process.wake("member_ready", call.sid)
        yield from self.wait(None, frozenset({"bridge_end"}))
        call.interrupt = None
        return "bridged"

    # ---- Dial ----------------------------------------------------------------------------------

    def verb_dial(self, verb: Node, doc_url: str) -> Step:
        nouns = verb.children or [Node("Number", text=verb.text)]
        action = self.resolve(verb.get("action"), doc_url) if verb.get("action") else ""
        method = verb.get("method", "POST")
        timeout = max(5.0, min(600.0, verb.number("timeout", 30)))
        kinds = {noun.name for noun in nouns}
        if "Queue" in kinds:
            params = yield from self.dial_queue(nouns[0], timeout, doc_url, action, method)
        elif "Conference" in kinds:
            params = yield from self.dial_conference(nouns[0], doc_url)
        else:
            params = yield from self.dial_parties(verb, nouns, timeout, doc_url, action, method)
        if params is None:  # the caller hung up; handled by the interrupt hook
            return END
        if not action or self.call.ended:
            return None
        return Next(action, method, tuple(params))

    def dial_parties(
        self, verb: Node, nouns: list[Node], timeout: float, doc_url: str, action: str, method: str
    ) -> Step:
        emu, call = self.emu, self.call
        caller_id = verb.get("callerId") or call.from_
        children: list[Call] = []
        for noun in nouns[:10]:
            if noun.name == "Client":
                identity = noun.text or next((c.text for c in noun.children if c.name == "Identity"), "")
                to = f"client:{identity}"
            elif noun.name == "Number":
                to = noun.text
            else:
                log.info("emulator cannot dial <%s>", noun.name)
                continue
            child = emu.new_call(
                caller_id,
                to,
                "outbound-dial",
                "initiated",
                parent_sid=call.sid,
                script=emu.party_script(to),
            )
            child.status_callback = self.resolve(noun.get("statusCallback"), doc_url) or None
            child.status_callback_method = noun.get("statusCallbackMethod", "POST")
            events = noun.get("statusCallbackEvent").replace(",", " ").split()
            child.status_callback_events = frozenset(events or ["completed"])
            for parameter in noun.children:
                if parameter.name == "Parameter":
                    child.extra_params[parameter.get("name")] = parameter.get("value")
            whisper = self.resolve(noun.get("url"), doc_url) if noun.get("url") else None
            emu.status_event(child, "initiated")
            children.append(child)
            run(emu, child, lambda r, w=whisper, m=noun.get("method", "POST"): r.dialled(call.sid, w, m))
        started = emu.now()
        answered: Call | None = None
        state = {"bridged": False}

        def dial_params(status: str, child: Call | None, bridged: bool, duration: int | None) -> FormData:
            params: FormData = [("DialBridged", "true" if bridged else "false"), ("DialCallStatus", status)]
            if child is not None:
                params.append(("DialCallSid", child.sid))
            if duration is not None:
                params.append(("DialCallDuration", str(duration)))
            return params

        def on_interrupt(reason: str) -> None:
            for child in children:
                if child.bridged_with == call.sid:
                    emu.unbridge(call)
                if not child.ended:
                    emu.end_call(child, "completed" if child.answered else "canceled")
            if reason == "hangup" and action and emu.options.dial_action_on_caller_hangup:
                bridged_child = answered if state["bridged"] else None
                duration = bridged_child.duration_s() if bridged_child else None
                status = "completed" if bridged_child else "canceled"
                form = self.params(dial_params(status, bridged_child, state["bridged"], duration))
                emu.fire_and_forget(action, method, form, call.sid)

        call.interrupt = on_interrupt
        try:
            outcome = yield from self.ring_children(children, timeout)
            if isinstance(outcome, str):
                return dial_params(outcome, None, False, None)
            answered = outcome
            if answered.ended:  # hung up in the whisper
                return dial_params(emu.options.whisper_rejected_dial_status, answered, False, None)
            self.answer()
            emu.bridge(call, answered)
            state["bridged"] = True
            answered.process.wake("bridged")
            signal = yield from self.wait(None, frozenset({"bridge_end"}))
            redirected = bool(signal and signal[1] and signal[1].get("redirected"))
            duration = int((emu.now() - (answered.bridged_at or started)).total_seconds())
            if call.bridged_with:
                emu.unbridge(call)
            return dial_params("completed", answered, True, None if redirected else duration)
        finally:
            call.interrupt = None

    def ring_children(self, children: list[Call], timeout: float) -> Step:
        """Wait for the first child to answer (and pass its whisper); the others are canceled.
        Returns the winning child, or the DialCallStatus when nobody was reached."""
        emu = self.emu
        deadline = emu.now() + timedelta(seconds=timeout)
        winner: Call | None = None
        while True:
            if winner is None and all(c.ended for c in children):
                statuses = {c.status for c in children}
                for status in ("busy", "failed"):
                    if statuses == {status}:
                        return status
                return "no-answer" if children else "failed"
            remaining = None if winner else max(0.0, (deadline - emu.now()).total_seconds())
            signal = yield from self.wait(
                remaining, frozenset({"child_answered", "child_ready", "child_ended"})
            )
            if signal is None:
                for child in children:
                    emu.end_call(child, "no-answer")
                return "no-answer"
            kind, sid = signal
            child = emu.state.calls[sid]
            if kind == "child_answered" and winner is None:
                winner = child
                for other in children:
                    if other is not child and not other.ended:
                        emu.end_call(other, "canceled")
                child.process.wake("won")
            elif kind == "child_answered":
                emu.end_call(child, "completed")
            elif (kind == "child_ready" and child is winner) or (kind == "child_ended" and child is winner):
                return child

    def dialled(self, parent_sid: str, whisper: str | None, whisper_method: str) -> Step:
        """A `<Dial>`ed leg: ring, answer (or not), run the whisper, then talk until the bridge ends."""
        emu, call = self.emu, self.call
        parent = emu.state.calls[parent_sid]
        outcome = emu.ring_outcome(call.to)
        told = False
        try:
            ring_at = 0.0
            if outcome.rings:
                ring_at = emu.options.ringing_after_s
                if outcome.result != "silent":
                    ring_at = min(ring_at, outcome.after_s)
                yield from self.wait(ring_at)
                emu.set_ringing(call)
            if outcome.result == "silent":
                yield from self.wait(None)
            yield from self.wait(max(0.0, outcome.after_s - ring_at))
            if outcome.result != "answer":
                emu.end_call(call, outcome.result)
                return
            emu.mark_answered(call)
            told = True
            parent.process.wake("child_answered", call.sid)
            yield from self.wait(None, frozenset({"won"}))
            told = False
            if whisper:
                self.allowed = WHISPER_VERBS
                target: Next | None = Next(whisper, whisper_method)
                try:
                    while target is not None and not call.ended:
                        doc = self.fetch(target.url, target.method, target.params)
                        if not isinstance(doc, Document):
                            emu.end_call(call, "completed")
                            break
                        target = yield from self.run_document(doc)
                except TwimlError as exc:
                    emu.record_error(12100, whisper, call.sid, f"whisper: {exc}")
                    emu.end_call(call, "completed")
                self.allowed = None
            if call.ended:
                return
            told = True
            parent.process.wake("child_ready", call.sid)
            yield from self.wait(None, frozenset({"bridge_end"}))
            emu.end_call(call, "completed")
        finally:
            if call.ended and not told and parent.process is not None:
                parent.process.wake("child_ended", call.sid)

    def dial_queue(self, noun: Node, timeout: float, doc_url: str, action: str, method: str) -> Step:
        emu, call = self.emu, self.call
        queue = emu.queue_by_name(noun.text)
        if queue is None:
            emu.record_error(13225, noun.text, call.sid, f"Dial->Queue: no queue named {noun.text}")
            return [("DialCallStatus", "failed")]
        deadline = emu.now() + timedelta(seconds=timeout)
        while not queue.members:
            emu.wait_for_queue(queue, call)
            remaining = (deadline - emu.now()).total_seconds()
            if remaining <= 0 or (yield from self.wait(remaining, frozenset({"queue_joined"}))) is None:
                return [("DialCallStatus", "no-answer"), ("QueueSid", queue.sid)]
        member = emu.state.calls[queue.members[0]]
        queue_time = emu.queue_time_s(member)
        emu.remove_from_queue(member)
        url = self.resolve(noun.get("url"), doc_url) if noun.get("url") else None
        member.process.wake("bridge", {"dialer": call.sid, "url": url, "method": noun.get("method", "POST")})

        bridged = {"at": emu.now(), "yes": False}

        def result() -> FormData:
            duration = int((emu.now() - bridged["at"]).total_seconds())
            return [
                ("DialCallDuration", str(duration)),
                ("DialCallSid", member.sid),
                ("DialCallStatus", "completed"),
                ("QueueSid", queue.sid),
                ("QueueTime", str(queue_time)),
            ]

        def on_interrupt(reason: str) -> None:
            if call.bridged_with:
                emu.unbridge(call, redirected=reason == "redirected")
            if reason == "hangup" and bridged["yes"] and action and emu.options.dial_action_on_caller_hangup:
                emu.fire_and_forget(action, method, self.params(result()), call.sid)

        call.interrupt = on_interrupt
        try:
            signal = yield from self.wait(None, frozenset({"member_ready", "member_gone"}))
            if member.ended or signal is None or signal[0] != "member_ready":
                return [("DialCallStatus", "no-answer"), ("QueueSid", queue.sid)]
            emu.bridge(call, member)
            bridged.update(at=emu.now(), yes=True)
            yield from self.wait(None, frozenset({"bridge_end"}))
            if call.bridged_with:
                emu.unbridge(call)
        finally:
            call.interrupt = None
        return result()

    def dial_conference(self, noun: Node, doc_url: str) -> Step:
        emu, call = self.emu, self.call
        attrs: dict[str, Any] = dict(noun.attrs)
        for flag, default in (
            ("startConferenceOnEnter", True),
            ("endConferenceOnExit", False),
            ("muted", False),
            ("coaching", False),
        ):
            attrs[flag] = noun.flag(flag, default)
        if attrs.get("statusCallback"):
            attrs["statusCallback"] = self.resolve(attrs["statusCallback"], doc_url)
        conference = emu.join_conference(call, noun.text, attrs)
        self.interrupts = set()
        if conference.status == "init":
            wait_url = noun.attrs.get("waitUrl")
            if wait_url:
                doc = self.fetch(self.resolve(wait_url, doc_url), noun.get("waitMethod", "POST"))
                if isinstance(doc, Document):
                    self.interrupts = {"conference_started", "conference_left"}
                    self.allowed = frozenset({"Play", "Say", "Pause", "Redirect"})
                    try:
                        yield from self.run_document(doc)
                    except Interrupted as exc:
                        if exc.signal[0] == "conference_left":
                            return [("DialCallStatus", "answered")]
                    finally:
                        self.allowed = None
                        self.interrupts = set()
        if call.conference_sid:
            yield from self.wait(None, frozenset({"conference_left"}))
        return [("ConferenceSid", conference.sid), ("DialCallStatus", "answered")]

    # ---- outbound REST calls -------------------------------------------------------------------

    def outbound(self, ring_timeout: float, conference: tuple[str, dict[str, Any]] | None = None) -> Step:
        """A REST-created call: ring the far end; once answered, run its TwiML."""
        emu, call = self.emu, self.call
        yield from self.wait(0)
        call.status = "initiated"
        emu.status_event(call, "initiated")
        outcome = emu.ring_outcome(call.to)
        if not outcome.rings:
            emu.end_call(call, outcome.result)
            return
        yield from self.wait(emu.options.ringing_after_s)
        emu.set_ringing(call)
        if outcome.result == "silent" or outcome.after_s > ring_timeout:
            yield from self.wait(ring_timeout)
            emu.end_call(call, "no-answer")
            return
        yield from self.wait(max(0.0, outcome.after_s - emu.options.ringing_after_s))
        if outcome.result != "answer":
            emu.end_call(call, outcome.result)
            return
        emu.mark_answered(call)
        if conference is not None:
            emu.join_conference(call, conference[0], conference[1])
            if call.conference_sid:
                yield from self.wait(None, frozenset({"conference_left"}))
            emu.end_call(call, "completed")
            return
        if call.twiml is not None:
            yield from self.main_twiml(call.twiml)
        elif call.url:
            yield from self.main(call.url, call.method)
