"""The emulator: Twilio's state (calls, queues, conferences, messages, recordings, errors) and the
operations on it that TwiML, the REST API and the simulated people share.

Bind it to an app in virtual time with `WsgiTransport(app)` and the app's `ManualClock`; run it in
real time with `Emulator.real_time(...)` and an `HttpTransport`. Nothing here blocks: every delay is
an event on the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..clock import ManualClock
from .callbacks import CallbackDispatcher, SentCallback
from .clock import RealTimeScheduler, Scheduler
from .model import (
    DEFAULT_MAX_QUEUE_SIZE,
    Call,
    Conference,
    EmulatorError,
    Heard,
    Message,
    Participant,
    Queue,
    Recording,
    SidFactory,
)
from .parties import UNKNOWN_NUMBER, UNREGISTERED_CLIENT, CallerScript, ClientDevice, PhoneNumber
from .transport import FormData, Transport
from .webhooks import Webhooks

log = logging.getLogger("koe.emulator")

API_VERSION = "2010-04-01"
# The usual wording (twilio.md §1, exact wording unconfirmed): an option.
APPLICATION_ERROR_MESSAGE = "We're sorry, an application error has occurred. Goodbye."
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
AppTick = Callable[[datetime], "datetime | None"]


@dataclass
class Options:
    """Behaviour where Twilio's documentation is silent or says (unconfirmed): every one a switch."""

    # <Say>: about 150 words a minute, i.e. ~0.065 s per character; at least half a second.
    say_seconds_per_char: float = 0.065
    say_min_seconds: float = 0.5
    # <Play> of a file that cannot be fetched and measured (MP3, unreachable URL).
    play_default_seconds: float = 10.0
    # One pass of Twilio's default hold playlist when <Enqueue> has no waitUrl.
    wait_music_seconds: float = 30.0
    beep_seconds: float = 0.5
    ringing_after_s: float = 0.5
    unregistered_client_after_s: float = 0.5
    application_error_message: str = APPLICATION_ERROR_MESSAGE
    application_error_language: str = "en-US"
    # twilio.md §3 Whisper: the DialCallStatus when the callee hangs up in the whisper is unconfirmed.
    # The callee answered, so "completed" with DialBridged=false is the default.
    whisper_rejected_dial_status: str = "completed"
    # Whether the Dial action is requested (reply ignored) after the caller hung up. Unconfirmed.
    dial_action_on_caller_hangup: bool = True
    # twilio.md §3 Enqueue/§9: whether a Calls update with Url fires the Enqueue action. Unconfirmed.
    enqueue_action_on_redirect: bool = True
    # Status callbacks.
    callback_jitter: float = 0.0
    reorder_callbacks: bool = False
    duplicate_callbacks: bool = False
    # twilio.md §1: one retry on connect failure by default.
    webhook_retries: int = 1
    webhook_retry_policy: str = "ct"
    # Messages: queued -> sent -> delivered.
    sms_sent_after_s: float = 1.0
    sms_delivered_after_s: float = 3.0
    # Whether recording media needs HTTP basic auth (an account setting, default unconfirmed).
    recordings_require_auth: bool = False
    # Where RecordingUrl and resource `uri`s point (the REST base of this emulator).
    api_base_url: str = "http://localhost/emulator"


@dataclass
class IncomingNumber:
    number: str
    voice_url: str
    voice_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    fallback_url: str | None = None
    fallback_method: str = "POST"
    sid: str = ""


@dataclass
class ApiKey:
    sid: str
    secret: str


@dataclass
class EmulatorState:
    calls: dict[str, Call] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    conferences: dict[str, Conference] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)


class Emulator:
    def __init__(
        self,
        clock: ManualClock | None,
        account_sid: str,
        auth_token: str,
        transport: Transport,
        seed: int = 0,
        app_tick: AppTick | None = None,
        scheduler: Scheduler | None = None,
        **options: Any,
    ) -> None:
        self.scheduler = scheduler or Scheduler(clock or ManualClock(), seed)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.transport = transport
        self.options = Options(**options)
        self.sid = SidFactory(seed)
        self.state = EmulatorState()
        self.numbers: dict[str, IncomingNumber] = {}
        self.clients: dict[str, ClientDevice] = {}
        self.phones: dict[str, PhoneNumber] = {}
        self.api_keys: dict[str, ApiKey] = {}
        self.errors: list[EmulatorError] = []
        self.callbacks_sent: list[SentCallback] = []
        self.requests_made = 0
        self.webhooks = Webhooks(
            transport,
            auth_token,
            self._record_error,
            self.options.webhook_retries,
            self.options.webhook_retry_policy,
        )
        self.callbacks = CallbackDispatcher(
            self.scheduler,
            self._send_callback,
            self.options.callback_jitter,
            self.options.reorder_callbacks,
            self.options.duplicate_callbacks,
        )
        self.app_tick = app_tick
        self._activity = False
        self._ticking = False
        self._tick_event: Any = None
        self._queue_waiters: dict[str, list[str]] = {}
        self.scheduler.after_event = self._after_event
        self._play_lengths: dict[str, float] = {}

    @classmethod
    def real_time(cls, account_sid: str, auth_token: str, transport: Transport, **kwargs: Any) -> Emulator:
        """An emulator whose events run at wall-clock time in a daemon thread (the live demo)."""
        scheduler = RealTimeScheduler(seed=kwargs.pop("seed", 0))
        emulator = cls(None, account_sid, auth_token, transport, scheduler=scheduler, **kwargs)
        scheduler.start()
        return emulator

    # ---- configuration -------------------------------------------------------------------------

    def add_number(
        self,
        number: str,
        voice_url: str,
        status_callback: str | None = None,
        status_callback_events: Iterable[str] = ("completed",),
        fallback_url: str | None = None,
        voice_method: str = "POST",
        status_callback_method: str = "POST",
    ) -> IncomingNumber:
        """A number of this account: calls to it fetch `voice_url`."""
        config = IncomingNumber(
            number,
            voice_url,
            voice_method,
            status_callback,
            status_callback_method,
            frozenset(status_callback_events),
            fallback_url,
            sid=self.sid("PN"),
        )
        self.numbers[number] = config
        return config

    def register_client(self, identity: str, device: ClientDevice | None = None) -> ClientDevice:
        """A browser Device registered under `identity`; unknown identities are unregistered."""
        self.clients[identity] = device or ClientDevice()
        return self.clients[identity]

    def register_number(self, number: str, phone: PhoneNumber | None = None) -> PhoneNumber:
        """A phone outside Twilio; unknown numbers ring and nobody answers."""
        self.phones[number] = phone or PhoneNumber()
        return self.phones[number]

    def add_api_key(self, sid: str, secret: str) -> None:
        self.api_keys[sid] = ApiKey(sid, secret)

    # ---- time ----------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.scheduler.now()

    def advance(self, seconds: float) -> datetime:
        with self.scheduler.lock:
            return self.scheduler.advance(seconds)

    def run_until(self, at: datetime) -> None:
        with self.scheduler.lock:
            self.scheduler.run_until(at)

    def run_until_idle(self, max_seconds: float = 24 * 3600) -> datetime:
        with self.scheduler.lock:
            return self.scheduler.run_until_idle(max_seconds)

    def later(self, seconds: float, callback: Callable[[], None]) -> Any:
        return self.scheduler.call_later(seconds, callback)

    # ---- the app's worker in virtual time --------------------------------------------------------

    def note_activity(self) -> None:
        self._activity = True

    def _after_event(self) -> None:
        if self._activity and self.app_tick is not None and not self._ticking:
            self._tick()
        self._activity = False

    def _tick(self) -> None:
        assert self.app_tick is not None
        self._ticking = True
        try:
            wanted = self.app_tick(self.now())
        finally:
            self._ticking = False
        self._activity = False
        if wanted is None:
            return
        at = max(wanted, self.now() + timedelta(milliseconds=1))
        if self._tick_event is not None and not self._tick_event.canceled:
            if self._tick_event.at <= at:
                return
            self._tick_event.cancel()
        self._tick_event = self.scheduler.call_at(at, self._tick, background=True)

    def tick_now(self) -> None:
        """Run the app's tick at once (e.g. after a test changed the database)."""
        if self.app_tick is not None:
            self._tick()

    # ---- errors and webhooks -----------------------------------------------------------------

    def _record_error(self, code: int, url: str, call_sid: str | None, message: str) -> None:
        log.warning("emulator error %s %s call=%s: %s", code, url, call_sid, message)
        self.errors.append(EmulatorError(code, url, call_sid, message, self.now()))

    def record_error(self, code: int, url: str, call_sid: str | None, message: str) -> None:
        self._record_error(code, url, call_sid, message)

    def request(self, url: str, method: str, form: FormData, call_sid: str | None = None) -> Any:
        self.note_activity()
        self.requests_made += 1
        return self.webhooks.request(url, method, form, call_sid)

    def fire_and_forget(self, url: str, method: str, form: FormData, call_sid: str | None) -> None:
        """A request whose reply is ignored (an action after the caller hung up), sent at once."""
        self.later(0, lambda: self.request(url, method, form, call_sid))

    def _send_callback(self, url: str, method: str, form: FormData, call_sid: str | None) -> None:
        self.callbacks_sent.append(SentCallback(self.now(), url, form))
        self.request(url, method, form, call_sid)

    # ---- calls ---------------------------------------------------------------------------------

    def call_params(self, call: Call) -> FormData:
        """The parameters Twilio sends with every request about a call (twilio.md §1)."""
        form: FormData = [
            ("AccountSid", call.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", call.sid),
            ("CallStatus", call.status),
            ("Called", call.to),
            ("Caller", call.from_),
            ("Direction", call.direction),
            ("From", call.from_),
            ("To", call.to),
        ]
        if call.parent_sid:
            form.append(("ParentCallSid", call.parent_sid))
        form.extend(call.extra_params.items())
        return form

    def new_call(self, from_: str, to: str, direction: str, status: str, **fields: Any) -> Call:
        call = Call(
            self.sid("CA"), self.account_sid, from_, to, direction, self.now(), status=status, **fields
        )
        if to.startswith("client:"):
            call.client_identity = to.removeprefix("client:")
        self.state.calls[call.sid] = call
        return call

    def place_call(self, from_: str, to: str, caller: CallerScript | None = None) -> CallHandle:
        """A caller rings one of the account's numbers (`add_number`)."""
        from .executor import start_inbound

        with self.scheduler.lock:
            number = self.numbers.get(to)
            call = self.new_call(from_, to, "inbound", "ringing", script=caller or CallerScript())
            if number is None:
                self._record_error(13224, to, call.sid, f"{to} is not a number of this account")
                self.end_call(call, "failed")
                return CallHandle(self, call)
            call.url, call.method = number.voice_url, number.voice_method
            call.fallback_url, call.fallback_method = number.fallback_url, number.fallback_method
            call.status_callback = number.status_callback
            call.status_callback_method = number.status_callback_method
            call.status_callback_events = number.status_callback_events
            self.status_event(call, "initiated")
            self.status_event(call, "ringing")
            start_inbound(self, call)
            return CallHandle(self, call)

    def call(self, sid: str) -> CallHandle:
        return CallHandle(self, self.state.calls[sid])

    @property
    def calls(self) -> list[Call]:
        return list(self.state.calls.values())

    def status_event(self, call: Call, event: str) -> None:
        """Send `event` to the call's status callback if it subscribed (§4); numbers the sequence."""
        if not call.status_callback:
            return
        events = call.status_callback_events or frozenset({"completed"})
        if event not in events:
            return
        status = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}.get(event)
        form = [(k, status if k == "CallStatus" and status else v) for k, v in self.call_params(call)]
        form += [
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", str(call.sequence)),
            ("Timestamp", rfc2822(self.now())),
        ]
        call.sequence += 1
        if event == "completed":
            duration = str(call.duration_s())
            form += [("CallDuration", duration), ("Duration", str(-(-call.duration_s() // 60)))]
        self.callbacks.dispatch(
            call.sid, call.status_callback, call.status_callback_method, form, event == "completed", call.sid
        )

    def set_ringing(self, call: Call) -> None:
        if call.status in ("queued", "initiated"):
            call.status = "ringing"
            self.status_event(call, "ringing")

    def mark_answered(self, call: Call) -> None:
        if call.answered or call.ended:
            return
        call.start_time = self.now()
        call.status = "in-progress"
        self.status_event(call, "answered")

    def end_call(self, call: Call, status: str = "completed") -> None:
        """The leg is over: stop its TwiML, leave queue/bridge/conference, send `completed`."""
        if call.ended:
            return
        if status == "completed" and not call.answered:
            status = "canceled" if call.direction != "inbound" else "completed"
        was_queued = call.status == "queued"
        call.status = status
        call.end_time = self.now()
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        call.listening = False
        if call.process is not None:
            call.process.stop()
        if call.queue_sid:
            self.remove_from_queue(call)
        if call.bridged_with:
            self.unbridge(call)
        if call.conference_sid:
            self.leave_conference(call, "participant-hung-up")
        if call.patience_timer is not None:
            call.patience_timer.cancel()
        if not (status == "canceled" and was_queued):  # twilio.md §1: a canceled queued call is silent
            self.status_event(call, "completed")
        self.note_activity()

    def hang_up(self, call: Call) -> None:
        """The person on this leg hangs up."""
        if call.ended:
            return
        hook, call.interrupt = call.interrupt, None
        if hook is not None:
            hook("hangup")
        self.end_call(call, "completed")

    def redirect(self, call: Call, url: str | None, method: str = "POST", twiml: str | None = None) -> None:
        """A REST update with Url or Twiml: the call leaves whatever it was doing and runs that."""
        from .executor import restart

        hook, call.interrupt = call.interrupt, None
        if hook is not None:
            hook("redirected")
        if call.process is not None:
            call.process.stop()
        if call.queue_sid:
            self.remove_from_queue(call)
        if call.bridged_with:
            self.unbridge(call, redirected=True)
        if call.conference_sid:
            self.leave_conference(call, "participant-updated-via-api")
        restart(self, call, url, method, twiml)

    def press(self, call: Call, digits: str) -> None:
        """Keys pressed on this leg's phone; only a listening Gather/Record hears them."""
        if call.ended:
            return
        if not call.listening:
            call.lost_digits.extend(digits)
            return
        call.digit_buffer.extend(digits)
        call.heard.append(Heard(self.now(), "pressed", digits))
        if call.process is not None:
            call.process.wake("digits")

    def is_client_on_a_call(self, identity: str) -> bool:
        return any(
            c.client_identity == identity and c.status == "in-progress" for c in self.state.calls.values()
        )

    def ring_outcome(self, to: str) -> Any:
        if to.startswith("client:"):
            identity = to.removeprefix("client:")
            device = self.clients.get(identity, UNREGISTERED_CLIENT)
            return device.ring(self.is_client_on_a_call(identity), self.options.unregistered_client_after_s)
        return self.phones.get(to, UNKNOWN_NUMBER).ring()

    def party_script(self, to: str) -> CallerScript:
        if to.startswith("client:"):
            return self.clients.get(to.removeprefix("client:"), UNREGISTERED_CLIENT).script
        return self.phones.get(to, UNKNOWN_NUMBER).script

    # ---- bridges -------------------------------------------------------------------------------

    def bridge(self, a: Call, b: Call) -> None:
        now = self.now()
        a.bridged_with, b.bridged_with = b.sid, a.sid
        a.bridged_at = b.bridged_at = now
        a.heard.append(Heard(now, "bridge", b.to if b.direction == "outbound-dial" else b.from_))
        b.heard.append(Heard(now, "bridge", a.from_))
        for leg in (a, b):
            if leg.patience_timer is not None:
                leg.patience_timer.cancel()
                leg.patience_timer = None
            if leg.script.talk_for is not None:
                leg.talk_scheduled = True
                leg.timers.append(self.later(leg.script.talk_for, lambda leg=leg: self.hang_up(leg)))

    def unbridge(self, call: Call, redirected: bool = False) -> None:
        other = self.state.calls.get(call.bridged_with or "")
        call.bridged_with = None
        if other is None or other.bridged_with != call.sid:
            return
        other.bridged_with = None
        if other.process is not None:
            other.process.wake("bridge_end", {"by": call.sid, "redirected": redirected})

    # ---- queues --------------------------------------------------------------------------------

    def queue_by_name(self, name: str, create: bool = False, max_size: int | None = None) -> Queue | None:
        for queue in self.state.queues.values():
            if queue.friendly_name == name:
                return queue
        if not create:
            return None
        return self.create_queue(name, max_size or DEFAULT_MAX_QUEUE_SIZE)

    def create_queue(self, name: str, max_size: int = DEFAULT_MAX_QUEUE_SIZE) -> Queue:
        now = self.now()
        queue = Queue(self.sid("QU"), self.account_sid, name, now, now, max_size)
        self.state.queues[queue.sid] = queue
        return queue

    def enqueue(self, call: Call, queue: Queue) -> None:
        queue.members.append(call.sid)
        call.queue_sid = queue.sid
        call.enqueued_at = self.now()
        for dialer_sid in self._queue_waiters.pop(queue.sid, []):
            dialer = self.state.calls.get(dialer_sid)
            if dialer is not None and dialer.process is not None:
                dialer.process.wake("queue_joined", queue.sid)

    def wait_for_queue(self, queue: Queue, dialer: Call) -> None:
        self._queue_waiters.setdefault(queue.sid, []).append(dialer.sid)

    def remove_from_queue(self, call: Call) -> None:
        queue = self.state.queues.get(call.queue_sid or "")
        if queue is not None and call.sid in queue.members:
            queue.members.remove(call.sid)
            queue.updated_at = self.now()
        call.queue_sid = None

    def queue_time_s(self, call: Call) -> int:
        return int((self.now() - call.enqueued_at).total_seconds()) if call.enqueued_at else 0

    def average_wait_s(self, queue: Queue) -> int:
        waits = [self.queue_time_s(self.state.calls[sid]) for sid in queue.members]
        return int(sum(waits) / len(waits)) if waits else 0

    def queue_params(self, call: Call, queue: Queue) -> FormData:
        position = queue.members.index(call.sid) + 1 if call.sid in queue.members else 0
        return [
            ("QueuePosition", str(position)),
            ("QueueSid", queue.sid),
            ("QueueTime", str(self.queue_time_s(call))),
            ("AvgQueueTime", str(self.average_wait_s(queue))),
            ("CurrentQueueSize", str(len(queue.members))),
            ("MaxQueueSize", str(queue.max_size)),
        ]

    def dequeue_member(self, call: Call, url: str, method: str = "POST") -> None:
        """REST Members update: the member leaves the queue and runs `url` (twilio.md §5)."""
        self.redirect(call, url, method)

    # ---- conferences ---------------------------------------------------------------------------

    def conference_by_name(self, name: str) -> Conference | None:
        for conference in self.state.conferences.values():
            if conference.friendly_name == name and conference.status != "completed":
                return conference
        return None

    def join_conference(self, call: Call, name: str, attrs: dict[str, Any]) -> Conference:
        conference = self.conference_by_name(name)
        now = self.now()
        if conference is None:
            conference = Conference(self.sid("CF"), self.account_sid, name, now, now)
            conference.status_callback = attrs.get("statusCallback") or None
            conference.status_callback_method = attrs.get("statusCallbackMethod", "POST")
            events = str(attrs.get("statusCallbackEvent", "")).replace(",", " ").split()
            conference.status_callback_events = frozenset(events)
            self.state.conferences[conference.sid] = conference
        participant = Participant(
            call.sid,
            conference.sid,
            now,
            label=attrs.get("participantLabel") or None,
            muted=bool(attrs.get("muted", False)),
            start_conference_on_enter=bool(attrs.get("startConferenceOnEnter", True)),
            end_conference_on_exit=bool(attrs.get("endConferenceOnExit", False)),
            coaching=bool(attrs.get("coaching", False)),
        )
        conference.participants[call.sid] = participant
        call.conference_sid = conference.sid
        if call.script.talk_for is not None and not call.talk_scheduled:
            call.talk_scheduled = True
            call.timers.append(self.later(call.script.talk_for, lambda: self.hang_up(call)))
        call.heard.append(Heard(now, "conference", name))
        self.conference_event(conference, "participant-join", participant)
        if participant.start_conference_on_enter and conference.status == "init":
            conference.status = "in-progress"
            self.conference_event(conference, "conference-start")
            for other_sid in conference.participants:
                other = self.state.calls.get(other_sid)
                if other is not None and other.sid != call.sid and other.process is not None:
                    other.process.wake("conference_started")
        return conference

    def leave_conference(self, call: Call, reason: str) -> None:
        conference = self.state.conferences.get(call.conference_sid or "")
        call.conference_sid = None
        if conference is None or call.sid not in conference.participants:
            return
        participant = conference.participants.pop(call.sid)
        self.conference_event(conference, "participant-leave", participant, reason=reason)
        if call.process is not None and not call.ended:
            call.process.wake("conference_left")
        if participant.end_conference_on_exit or not conference.participants:
            self.end_conference(conference, call.sid, reason)

    def end_conference(self, conference: Conference, by: str | None, reason: str) -> None:
        if conference.status == "completed":
            return
        conference.status = "completed"
        conference.reason_ended = reason
        conference.updated_at = self.now()
        for sid in list(conference.participants):
            leg = self.state.calls[sid]
            participant = conference.participants.pop(sid)
            leg.conference_sid = None
            self.conference_event(conference, "participant-leave", participant, reason="conference-ended")
            if leg.process is not None and not leg.ended:
                leg.process.wake("conference_left")
        self.conference_event(conference, "conference-end", None, by=by, reason=reason)

    def conference_event(
        self,
        conference: Conference,
        event: str,
        participant: Participant | None = None,
        reason: str | None = None,
        by: str | None = None,
    ) -> None:
        if not conference.status_callback:
            return
        short = event.split("-", 1)[1] if event.startswith(("participant-", "conference-")) else event
        if event.startswith("announcement-"):
            short = "announcement"  # statusCallbackEvent "announcement": announcement-end|fail
        if conference.status_callback_events and short not in conference.status_callback_events:
            return
        form: FormData = [
            ("AccountSid", self.account_sid),
            ("ConferenceSid", conference.sid),
            ("FriendlyName", conference.friendly_name),
            ("SequenceNumber", str(conference.sequence)),
            ("StatusCallbackEvent", event),
            ("Timestamp", rfc2822(self.now())),
        ]
        conference.sequence += 1
        if participant is not None:
            form += [
                ("CallSid", participant.call_sid),
                ("Coaching", _bool(participant.coaching)),
                ("EndConferenceOnExit", _bool(participant.end_conference_on_exit)),
                ("Hold", _bool(participant.hold)),
                ("Muted", _bool(participant.muted)),
                ("StartConferenceOnEnter", _bool(participant.start_conference_on_enter)),
            ]
            if participant.label:
                form.append(("ParticipantLabel", participant.label))
            if event == "participant-leave":
                leg = self.state.calls.get(participant.call_sid)
                form += [("ParticipantCallStatus", leg.status if leg else "completed")]
                form += [("ReasonParticipantLeft", reason or "participant-hung-up")]
        if event == "conference-end":
            form += [("ReasonConferenceEnded", reason or ""), ("CallSidEndingConference", by or "")]
        # Like call status callbacks: may come late, twice or out of order (the Options switches).
        url = conference.status_callback
        self.callbacks.dispatch(conference.sid, url, "POST", form, event == "conference-end", None)

    # ---- messages ------------------------------------------------------------------------------

    def send_message(
        self, from_: str, to: str, body: str, status_callback: str | None, messaging_service_sid: str | None
    ) -> Message:
        now = self.now()
        message = Message(self.sid("SM"), self.account_sid, from_, to, body, now, now)
        message.status_callback = status_callback
        message.messaging_service_sid = messaging_service_sid
        self.state.messages[message.sid] = message
        phone = self.phones.get(to)
        fails = phone is not None and phone.mode == "failed"

        def sent() -> None:
            message.status, message.date_sent, message.updated_at = "sent", self.now(), self.now()
            self._message_callback(message)

        def delivered() -> None:
            message.updated_at = self.now()
            if fails:
                message.status, message.error_code = "undelivered", 30003
                message.error_message = "Unreachable destination handset"
            else:
                message.status = "delivered"
            self._message_callback(message)

        self.later(self.options.sms_sent_after_s, sent)
        self.later(self.options.sms_delivered_after_s, delivered)
        return message

    @property
    def outbox(self) -> list[Message]:
        return list(self.state.messages.values())

    def _message_callback(self, message: Message) -> None:
        if not message.status_callback:
            return
        form: FormData = [
            ("AccountSid", message.account_sid),
            ("ApiVersion", API_VERSION),
            ("From", message.from_),
            ("MessageSid", message.sid),
            ("MessageStatus", message.status),
            ("SmsSid", message.sid),
            ("SmsStatus", message.status),
            ("To", message.to),
        ]
        if message.error_code:
            form.append(("ErrorCode", str(message.error_code)))
        if message.status in ("delivered", "undelivered"):
            form.append(("RawDlrDoneDate", self.now().strftime("%y%m%d%H%M")))
        self.callbacks_sent.append(SentCallback(self.now(), message.status_callback, form))
        self.request(message.status_callback, "POST", form, None)

    # ---- recordings ----------------------------------------------------------------------------

    def recording_url(self, sid: str) -> str:
        return f"{self.options.api_base_url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{sid}"

    def add_recording(self, call: Call, duration_s: int, wav: bytes) -> Recording:
        recording = Recording(self.sid("RE"), self.account_sid, call.sid, self.now(), duration_s, wav)
        self.state.recordings[recording.sid] = recording
        return recording

    # ---- audio lengths -------------------------------------------------------------------------

    def play_length(self, url: str) -> float:
        """Seconds of audio at `url`: measured once when it is a WAV file we can fetch."""
        from .audio import wav_duration

        if url not in self._play_lengths:
            length: float | None = None
            # Twilio fetches <Play> URLs without the standard parameters (twilio.md §3).
            outcome = self.webhooks.request(url, "GET", [], None, log_errors=False)
            if outcome.ok and outcome.response is not None:
                length = wav_duration(outcome.response.body)
            self._play_lengths[url] = length or self.options.play_default_seconds
        return self._play_lengths[url]

    def say_length(self, text: str) -> float:
        return max(self.options.say_min_seconds, len(text) * self.options.say_seconds_per_char)


class CallHandle:
    """A test's view of one call: what its person heard, its status, and their hands on the phone."""

    def __init__(self, emulator: Emulator, call: Call) -> None:
        self.emulator = emulator
        self.call = call

    def __repr__(self) -> str:
        return f"<CallHandle {self.sid} {self.status}>"

    @property
    def sid(self) -> str:
        return self.call.sid

    @property
    def status(self) -> str:
        return self.call.status

    @property
    def heard(self) -> list[tuple[datetime, str, str, str | None]]:
        """(virtual time, kind, text or url, language or voice) in the order they were heard."""
        return [(h.at, h.kind, h.content, h.language or h.voice) for h in self.call.heard]

    @property
    def heard_texts(self) -> list[str]:
        return [h.content for h in self.call.heard if h.kind == "say"]

    def heard_text_contains(self, fragment: str) -> bool:
        return any(fragment in text for text in self.heard_texts)

    def heard_play_of(self, fragment: str) -> bool:
        return any(fragment in h.content for h in self.call.heard if h.kind == "play")

    @property
    def bridged_with(self) -> CallHandle | None:
        sid = self.call.bridged_with
        return CallHandle(self.emulator, self.emulator.state.calls[sid]) if sid else None

    @property
    def children(self) -> list[CallHandle]:
        return [CallHandle(self.emulator, c) for c in self.emulator.calls if c.parent_sid == self.sid]

    def hang_up(self) -> None:
        with self.emulator.scheduler.lock:
            self.emulator.hang_up(self.call)

    def press(self, digits: str) -> None:
        with self.emulator.scheduler.lock:
            self.emulator.press(self.call, digits)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 600.0, step: float = 0.5) -> bool:
        """Advance virtual time in small steps until `predicate()` holds; False after `timeout` s."""
        waited = 0.0
        while not predicate():
            if waited >= timeout:
                return False
            self.emulator.advance(step)
            waited += step
        return True

    def wait_until_heard(self, fragment: str, timeout: float = 600.0) -> bool:
        return self.wait_until(lambda: self.heard_text_contains(fragment), timeout)

    def wait_until_status(self, *statuses: str, timeout: float = 600.0) -> bool:
        return self.wait_until(lambda: self.call.status in statuses, timeout)


def rfc2822(at: datetime) -> str:
    return at.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _bool(value: bool) -> str:
    return "true" if value else "false"
