"""A caller's way from arrival to the end of the call: one transaction per webhook.

- `answer_incoming`: the number's Voice URL. Finds the queue, records the call (once, however often
  Twilio retries), decides what happens (today always: welcome, then the queue) and says what to play.
- `next_wait`: the Enqueue waitUrl, the hot path. Two small indexed reads, at most one write.
- `record_queue_result`: the Enqueue action. A caller who hung up is abandoned, exactly once.
- `return_to_queue`: after a missed offer the caller goes back with the place they had.
- `record_status`: status callbacks, idempotent on CallSid + SequenceNumber, never backwards.

Webhooks only record facts; outbound REST calls are the worker's. After commit we wake the
dispatcher (`services.dispatch.wake(organisation_id)`, when that module has it), and a call that ends
while an operator is attached is handed to `services.operators.on_call_ended(session, call, now)`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..domain import prompts_text
from ..domain.announcements import (
    AnnouncementSettings,
    AnnouncementState,
    Part,
    Situation,
    plan_wait,
    returned_to_queue,
)
from ..domain.estimates import HandlingHistory, queue_length_estimate, spoken_wait
from ..domain.prompts_text import Phrase
from ..domain.states import Call as CallState
from ..domain.states import Operator as OperatorState
from ..domain.states import can_move, is_final
from ..extensions import db
from ..models import (
    Call,
    CallEvent,
    OperatorStatus,
    Organisation,
    PhoneNumber,
    Prompt,
    PromptKind,
    Queue,
    QueueLogin,
)
from ..telephony.twiml import Music, Utterance, spoken, twilio_language

log = logging.getLogger("koe.calls")

HOLD_MUSIC = Music("/twilio/audio/hold.wav", track_seconds=10.0)
FINAL_TWILIO_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# The caller is in our queue order in these states: waiting, or at the head while being rung.
IN_QUEUE_STATES = (CallState.WAITING.value, CallState.OFFERED.value)
SERVING_OPERATOR_STATES = (
    OperatorState.AVAILABLE.value,
    OperatorState.RINGING.value,
    OperatorState.ON_CALL.value,
    OperatorState.WRAP_UP.value,
)
HISTORY_CALLS = 50
QUEUE_FACTS_TTL = timedelta(seconds=30)


# --- values in and out --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncomingCall:
    call_sid: str
    from_number: str
    to_number: str

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> IncomingCall:
        return cls(
            call_sid=form.get("CallSid", ""),
            from_number=form.get("From", "") or "unknown",
            to_number=form.get("To", ""),
        )


class ArrivalKind(StrEnum):
    ENQUEUE = "enqueue"
    UNKNOWN_NUMBER = "unknown_number"  # no such number: nothing to attach the call to
    NO_QUEUE = "no_queue"  # the organisation's number leads to no queue: recorded as rejected
    ENDED = "ended"  # a retried or late webhook for a call that is already over
    UNKNOWN_CALL = "unknown_call"


@dataclass(frozen=True, slots=True)
class Arrival:
    """What to do with a caller arriving at (or returning to) a queue."""

    kind: ArrivalKind
    call_id: int | None = None
    queue_id: int | None = None
    say: tuple[Utterance, ...] = ()
    created: bool = False

    @property
    def enqueue(self) -> bool:
        return self.kind is ArrivalKind.ENQUEUE


@dataclass(frozen=True, slots=True)
class WaitAnswer:
    """One waitUrl document; `gone` means the call is unknown or over: apologise and hang up."""

    say: tuple[Utterance, ...]
    music: Music | None = None
    music_seconds: int = 0
    gone: bool = False
    position: int | None = None


@dataclass(frozen=True, slots=True)
class QueueResultAnswer:
    outcome: str
    say: tuple[Utterance, ...] = ()
    hang_up: bool = False  # False: answer an empty document


@dataclass(frozen=True, slots=True)
class StatusCallback:
    call_sid: str
    call_status: str
    sequence: int | None
    data: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> StatusCallback:
        raw = form.get("SequenceNumber")
        sequence = int(raw) if raw is not None and raw.strip().isdigit() else None
        kept = ("CallStatus", "SequenceNumber", "Timestamp", "CallDuration", "Duration", "SipResponseCode")
        return cls(
            call_sid=form.get("CallSid", ""),
            call_status=form.get("CallStatus", ""),
            sequence=sequence,
            data={k: form[k] for k in kept if k in form},
        )


# --- small helpers shared by the use cases ------------------------------------------------------


def _insert_once(session: Session, model: type[Any], values: dict[str, Any], unique: str) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True if the row is new. Safe against concurrent retries."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
    statement = (
        insert(table).values(**values).on_conflict_do_nothing(index_elements=[unique]).returning(table.c.id)
    )
    return session.execute(statement).first() is not None


def _record(
    session: Session,
    call: Call,
    kind: str,
    now: datetime,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    source: str = "twilio",
) -> bool:
    values = {
        "organisation_id": call.organisation_id,
        "call_id": call.id,
        "at": now,
        "kind": kind,
        "source": source,
        "data": data or {},
    }
    if dedupe_key is None:
        session.add(CallEvent(**values))
        return True
    return _insert_once(session, CallEvent, values | {"dedupe_key": dedupe_key}, "dedupe_key")


def _move(session: Session, call: Call, target: CallState, now: datetime, **values: Any) -> bool:
    """Move the call if the state machine allows it, with a conditional UPDATE (claimed once)."""
    current = call.state
    if current == target or not can_move(current, target):
        return False
    result = session.execute(
        update(Call)
        .where(Call.id == call.id, Call.state == current)
        .values(state=target.value, version=Call.version + 1, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(call)
        return False
    _record(session, call, "state_changed", now, {"from": current, "to": target.value}, source="app")
    return True


def _end_call(session: Session, call: Call, now: datetime, reason: str) -> bool:
    """The caller is gone: abandoned if nobody had answered, completed if they were talking."""
    if is_final(call.state) or call.state == CallState.CALLBACK_PENDING:
        # A caller who asked to be called back hangs up on purpose; the callback keeps their place.
        return False
    was = call.state
    talking = was in (CallState.CONNECTED, CallState.TRANSFERRING)
    target = CallState.COMPLETED if talking else CallState.ABANDONED
    if not _move(session, call, target, now, ended_at=now, outcome_reason=reason):
        return False
    _record(
        session, call, "call_ended", now, {"state": target.value, "reason": reason}, f"ended:{call.call_sid}"
    )
    # Operators attached to the call (talking, or ringing for it) are the operators service's to
    # free; it is idempotent, so the Dial action reporting the same end changes nothing twice.
    hook = _optional_hook("queue_app.services.operators", "on_call_ended")
    if hook is not None:
        hook(session, call, now)
    elif was != CallState.WAITING:
        attached = session.scalar(
            select(func.count()).select_from(OperatorStatus).where(OperatorStatus.current_call_id == call.id)
        )
        if attached:
            log.warning(
                "call ended with an operator attached, no on_call_ended hook call_sid=%s", call.call_sid
            )
    return True


def _optional_hook(module: str, name: str) -> Callable[..., Any] | None:
    """A function another part of the product may provide; absent until it lands."""
    if importlib.util.find_spec(module) is None:
        return None
    return getattr(importlib.import_module(module), name, None)


def _wake_dispatcher(organisation_id: int) -> None:
    hook = _optional_hook("queue_app.services.dispatch", "wake")
    if hook is not None:
        hook(organisation_id)


def _call_by_sid(session: Session, call_sid: str) -> Call | None:
    return session.scalars(select(Call).where(Call.call_sid == call_sid)).one_or_none()


# --- prompts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptContent:
    text: str | None
    audio_url: str | None
    duration: float | None


def _audio_url(prompt: Prompt) -> str | None:
    key = prompt.audio_key
    if not key:
        return None
    if key.startswith(("http://", "https://", "/")):
        return key
    resolve = _optional_hook("queue_app.storage", "audio_url")
    return str(resolve(key)) if resolve is not None else None


def _load_prompts(session: Session, queue: Queue, kinds: tuple[str, ...]) -> dict[str, PromptContent]:
    """The queue's own prompt of each kind in its language, else the organisation's."""
    rows = session.scalars(
        select(Prompt).where(
            Prompt.organisation_id == queue.organisation_id,
            Prompt.kind.in_(kinds),
            Prompt.language == queue.language,
            or_(Prompt.queue_id == queue.id, Prompt.queue_id.is_(None)),
        )
    ).all()
    chosen: dict[str, Prompt] = {}
    for row in rows:
        if row.kind not in chosen or row.queue_id is not None:
            chosen[row.kind] = row
    return {
        kind: PromptContent(p.text, _audio_url(p), p.audio_duration_seconds) for kind, p in chosen.items()
    }


def _utterance(
    content: PromptContent | None, default_text: str, language: str, voice: str | None
) -> Utterance:
    if content is not None and content.audio_url:
        return Utterance(audio_url=content.audio_url, language=twilio_language(language))
    text = content.text if content is not None and content.text else default_text
    return spoken(text, language, voice)


def _voice(queue: Queue, organisation: Organisation | None) -> str | None:
    if queue.voice:
        return queue.voice
    if organisation is not None and organisation.default_voice and organisation.locale == queue.language:
        return organisation.default_voice
    return None


def _bilingual(phrase: Phrase) -> tuple[Utterance, ...]:
    return tuple(spoken(text, language) for language, text in prompts_text.bilingual(phrase))


def apology() -> tuple[Utterance, ...]:
    """What a caller hears when something went wrong on our side, in Swedish and English."""
    return _bilingual(Phrase.TECHNICAL_ERROR)


# --- arrival ------------------------------------------------------------------------------------


def _arrival_decision(queue: Queue, now: datetime) -> ArrivalKind:
    """Where opening hours, closures, overflow and 'no operator logged in' will decide (issue 5).

    They belong in the pure domain (domain/hours.py and an overflow rule) and are called here with
    a snapshot of the queue and `now`; until then every caller of a known queue is enqueued.
    """
    return ArrivalKind.ENQUEUE


def answer_incoming(incoming: IncomingCall, now: datetime) -> Arrival:
    """A call arrives at one of our numbers. Idempotent on CallSid: a retry finds the same call."""
    with db.transaction() as session:
        number = session.scalars(
            select(PhoneNumber).where(PhoneNumber.number == incoming.to_number)
        ).one_or_none()
        if number is None:
            # No organisation to attach the call to, so no row: the webhook log line is the record.
            log.warning("call to unknown number call_sid=%s to=%s", incoming.call_sid, incoming.to_number)
            return Arrival(ArrivalKind.UNKNOWN_NUMBER, say=_bilingual(Phrase.UNKNOWN_NUMBER))
        queue = session.get(Queue, number.queue_id) if number.queue_id is not None else None
        created = _insert_once(
            session,
            Call,
            {
                "organisation_id": number.organisation_id,
                "queue_id": queue.id if queue else None,
                "call_sid": incoming.call_sid,
                "from_number": incoming.from_number,
                "to_number": incoming.to_number,
                "state": CallState.ARRIVED.value,
                "arrived_at": now,
            },
            "call_sid",
        )
        call = _call_by_sid(session, incoming.call_sid)
        assert call is not None
        if created:
            _record(session, call, "arrived", now, {"from": incoming.from_number, "to": incoming.to_number})

        if queue is None:
            if _move(
                session, call, CallState.REJECTED, now, ended_at=now, outcome_reason="number_without_queue"
            ):
                log.warning("number without a queue call_sid=%s to=%s", call.call_sid, incoming.to_number)
            return Arrival(ArrivalKind.NO_QUEUE, call.id, say=_bilingual(Phrase.UNKNOWN_NUMBER))
        if is_final(call.state):
            return Arrival(ArrivalKind.ENDED, call.id, queue.id, say=_bilingual(Phrase.GOODBYE))

        decision = _arrival_decision(queue, now)
        if decision is ArrivalKind.ENQUEUE and call.state == CallState.ARRIVED:
            _move(session, call, CallState.WAITING, now, entered_queue_at=now)
        greeting: tuple[Utterance, ...] = ()
        if queue.welcome_enabled:
            organisation = session.get(Organisation, queue.organisation_id)
            prompts = _load_prompts(session, queue, (PromptKind.WELCOME.value,))
            default = prompts_text.welcome(queue.language, organisation.name if organisation else "")
            greeting = (
                _utterance(
                    prompts.get(PromptKind.WELCOME.value),
                    default,
                    queue.language,
                    _voice(queue, organisation),
                ),
            )
        arrival = Arrival(decision, call.id, queue.id, greeting, created)
        organisation_id = call.organisation_id
    if arrival.enqueue and created:
        _wake_dispatcher(organisation_id)
    return arrival


def return_to_queue(call_sid: str, now: datetime) -> Arrival:
    """Back to the queue after a missed offer: no welcome, the same place (entered_queue_at kept)."""
    with db.transaction() as session:
        call = _call_by_sid(session, call_sid)
        if call is None or call.queue_id is None:
            log.warning("re-enqueue of an unknown call call_sid=%s", call_sid)
            return Arrival(ArrivalKind.UNKNOWN_CALL, say=apology())
        if is_final(call.state):
            return Arrival(ArrivalKind.ENDED, call.id, call.queue_id, say=_bilingual(Phrase.GOODBYE))
        if call.state != CallState.WAITING and not _move(session, call, CallState.WAITING, now):
            _record(session, call, "requeued_in_state", now, {"state": call.state}, source="app")
        state = AnnouncementState.from_json(call.announcement_state)
        call.announcement_state = returned_to_queue(state).to_json()
        if call.entered_queue_at is None:
            call.entered_queue_at = now
        _record(session, call, "returned_to_queue", now)
        arrival = Arrival(ArrivalKind.ENQUEUE, call.id, call.queue_id)
        organisation_id = call.organisation_id
    _wake_dispatcher(organisation_id)
    return arrival


# --- waiting ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueFacts:
    """What changes slowly about a queue: its prompts and handling history."""

    prompts: dict[str, PromptContent]
    history: HandlingHistory
    voice: str | None
    loaded_at: datetime


class QueueFactsCache:
    """Per process, a few seconds old at most, so the waitUrl does not reload them on every fetch."""

    def __init__(self, ttl: timedelta = QUEUE_FACTS_TTL) -> None:
        self.ttl = ttl
        self._facts: dict[int, QueueFacts] = {}
        self._lock = threading.Lock()

    def get(self, queue_id: int, now: datetime, load: Callable[[], QueueFacts]) -> QueueFacts:
        with self._lock:
            facts = self._facts.get(queue_id)
        if facts is not None and timedelta(0) <= now - facts.loaded_at < self.ttl:
            return facts
        facts = load()
        with self._lock:
            self._facts[queue_id] = facts
        return facts

    def clear(self) -> None:
        with self._lock:
            self._facts.clear()


def _load_queue_facts(session: Session, queue: Queue, now: datetime) -> QueueFacts:
    kinds = (
        PromptKind.FIRST_QUEUE_MESSAGE.value,
        PromptKind.PERIODIC_MESSAGE.value,
        PromptKind.HOLD_MUSIC.value,
    )
    rows = session.execute(
        select(Call.answered_at, Call.ended_at)
        .where(Call.queue_id == queue.id, Call.answered_at.is_not(None), Call.ended_at.is_not(None))
        .order_by(Call.ended_at.desc())
        .limit(HISTORY_CALLS)
    ).all()
    durations = [(ended - answered).total_seconds() for answered, ended in rows]
    organisation = session.get(Organisation, queue.organisation_id)
    return QueueFacts(
        prompts=_load_prompts(session, queue, kinds),
        history=HandlingHistory.from_durations(durations, queue.wrap_up_seconds),
        voice=_voice(queue, organisation),
        loaded_at=now,
    )


def _situation_query(call: Call, entered: datetime) -> Any:
    ahead = (
        select(func.count())
        .select_from(Call)
        .where(
            Call.queue_id == call.queue_id,
            Call.state.in_(IN_QUEUE_STATES),
            Call.id != call.id,
            or_(
                Call.priority > call.priority,
                and_(
                    Call.priority == call.priority,
                    or_(
                        Call.entered_queue_at < entered,
                        and_(Call.entered_queue_at == entered, Call.id < call.id),
                    ),
                ),
            ),
        )
        .scalar_subquery()
    )
    operators = (
        select(OperatorStatus.state)
        .join(QueueLogin, QueueLogin.user_id == OperatorStatus.user_id)
        .where(QueueLogin.queue_id == call.queue_id, OperatorStatus.state.in_(SERVING_OPERATOR_STATES))
    ).subquery()
    serving = select(func.count()).select_from(operators).scalar_subquery()
    free = (
        select(func.count())
        .select_from(operators)
        .where(operators.c.state == OperatorState.AVAILABLE.value)
        .scalar_subquery()
    )
    return select(ahead, serving, free)


def next_wait(call_sid: str, now: datetime, cache: QueueFactsCache | None = None) -> WaitAnswer:
    """What a waiting caller hears next, from their own stored state and our queue order."""
    with db.transaction() as session:
        row = session.execute(
            select(Call, Queue).join(Queue, Call.queue_id == Queue.id).where(Call.call_sid == call_sid)
        ).one_or_none()
        if row is None:
            log.warning("waitUrl for an unknown call call_sid=%s", call_sid)
            return WaitAnswer(say=apology(), gone=True)
        call, queue = row
        if is_final(call.state):
            return WaitAnswer(say=_bilingual(Phrase.GOODBYE), gone=True)

        def load() -> QueueFacts:
            return _load_queue_facts(session, queue, now)

        facts = cache.get(queue.id, now, load) if cache is not None else load()
        entered = call.entered_queue_at or call.arrived_at
        ahead, serving, free = session.execute(_situation_query(call, entered)).one()
        position = int(ahead) + 1
        estimate = queue_length_estimate(position, int(serving), facts.history, free_operators=int(free))
        settings = AnnouncementSettings(
            first_message=queue.first_message_enabled,
            periodic_message=queue.periodic_message_enabled,
            periodic_interval_seconds=queue.periodic_interval_seconds,
            announce_position=queue.announce_position,
            announce_expected_wait=queue.announce_expected_wait,
            announce_interval_seconds=queue.announce_interval_seconds,
        )
        plan = plan_wait(
            AnnouncementState.from_json(call.announcement_state),
            settings,
            Situation(position, estimate, int(serving)),
            entered,
            now,
        )
        say = tuple(
            _announcement_utterance(a.part, a.value, queue.language, facts) for a in plan.announcements
        )
        if plan.changed_state:
            values: dict[str, Any] = {"announcement_state": plan.state.to_json()}
            if call.first_estimate_seconds is None and plan.state.estimate_seconds is not None:
                values["first_estimate_seconds"] = plan.state.estimate_seconds
            session.execute(update(Call).where(Call.id == call.id).values(**values))
        music = _hold_music(facts.prompts.get(PromptKind.HOLD_MUSIC.value))
        return WaitAnswer(say=say, music=music, music_seconds=plan.music_seconds, position=position)


def _hold_music(content: PromptContent | None) -> Music:
    if content is not None and content.audio_url:
        return Music(content.audio_url, content.duration)
    return HOLD_MUSIC


def _announcement_utterance(part: Part, value: int | None, language: str, facts: QueueFacts) -> Utterance:
    if part is Part.POSITION:
        return spoken(prompts_text.position(language, value or 1), language, facts.voice)
    if part is Part.EXPECTED_WAIT:
        return spoken(prompts_text.expected_wait(language, spoken_wait(value or 0)), language, facts.voice)
    if part is Part.RETURNED_TO_QUEUE:
        return spoken(prompts_text.fixed(language, Phrase.RETURNED_TO_QUEUE), language, facts.voice)
    phrase = Phrase.FIRST_QUEUE_MESSAGE if part is Part.FIRST_QUEUE_MESSAGE else Phrase.PERIODIC_MESSAGE
    default = prompts_text.fixed(language, phrase)
    return _utterance(facts.prompts.get(part.value), default, language, facts.voice)


# --- the Enqueue action -------------------------------------------------------------------------

# The dispatcher (or a transfer) took the call out of the queue on purpose; it acts, not us.
MOVED_ON_PURPOSE = frozenset({"bridged", "bridging-in-process", "redirected", "redirected-from-bridged"})


def record_queue_result(
    call_sid: str, result: str, queue_time: str | None, now: datetime
) -> QueueResultAnswer:
    with db.transaction() as session:
        call = _call_by_sid(session, call_sid)
        if call is None:
            log.warning("queue result for an unknown call call_sid=%s result=%s", call_sid, result)
            if result in MOVED_ON_PURPOSE or result == "hangup":
                return QueueResultAnswer("unknown_call")
            return QueueResultAnswer("unknown_call", apology(), hang_up=True)
        key = f"queue_result:{call_sid}:{result}:{queue_time or ''}"
        fresh = _record(session, call, "queue_result", now, {"result": result, "queue_time": queue_time}, key)
        language = call.queue.language if call.queue is not None else "sv"

        if result in MOVED_ON_PURPOSE:
            return QueueResultAnswer(result if fresh else "duplicate")
        if result == "hangup":
            ended = _end_call(session, call, now, "hung_up_in_queue")
            return QueueResultAnswer("abandoned" if ended else "already_ended")
        if result == "queue-full":
            # Twilio's queue (1000 callers) is full: the caller never got in.
            _move(session, call, CallState.OVERFLOWED, now, ended_at=now, outcome_reason="twilio_queue_full")
            return QueueResultAnswer(
                "queue_full", (spoken(prompts_text.fixed(language, Phrase.QUEUE_FULL), language),), True
            )
        if result == "leave":
            # Nothing in Kö sends <Leave/> yet; when callback or voicemail do, they answer here.
            _end_call(session, call, now, "left_queue")
            return QueueResultAnswer(
                "left", (spoken(prompts_text.fixed(language, Phrase.GOODBYE), language),), True
            )
        # error / system-error / anything new: our waitUrl or Twilio failed the caller.
        log.error("queue failed the caller call_sid=%s result=%s", call_sid, result)
        _end_call(session, call, now, f"queue_{result}")
        return QueueResultAnswer(
            "queue_error", (spoken(prompts_text.fixed(language, Phrase.TECHNICAL_ERROR), language),), True
        )


# --- status callbacks ---------------------------------------------------------------------------


def record_status(callback: StatusCallback, now: datetime) -> str:
    """Record a status callback once; a final status ends the call. Returns the outcome's name."""
    with db.transaction() as session:
        call = _call_by_sid(session, callback.call_sid)
        if call is None:
            log.info(
                "status for an unknown call call_sid=%s status=%s", callback.call_sid, callback.call_status
            )
            return "unknown_call"
        marker = callback.sequence if callback.sequence is not None else callback.call_status
        key = f"status:{callback.call_sid}:{marker}"
        if not _record(session, call, "twilio_status", now, dict(callback.data), key):
            return "duplicate"
        if callback.sequence is not None:
            if callback.sequence <= call.last_status_sequence:
                return "late"  # recorded, but an older fact than one already applied
            session.execute(
                update(Call)
                .where(Call.id == call.id, Call.last_status_sequence < callback.sequence)
                .values(last_status_sequence=callback.sequence)
            )
        if callback.call_status not in FINAL_TWILIO_STATUSES:
            return "recorded"
        if is_final(call.state):
            return "already_final"
        return "ended" if _end_call(session, call, now, f"status_{callback.call_status}") else "not_applied"
