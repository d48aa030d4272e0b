"""A caller's way from arrival to the end of the call: one transaction per webhook.

- `answer_incoming`: the number's Voice URL. Finds the queue, records the call (once, however often
  Twilio retries) and decides what happens (`domain.arrival`: closed, no operator, overflow, or
  welcome and the queue); a retry replays the decision it made the first time.
- `next_wait`: the Enqueue waitUrl, the hot path. Two small indexed reads, at most one write. After
  `caller_options_after_seconds` the document listens for one key (`choose_option`).
- `choose_option`: 1 = call me back (the call keeps its place as `callback_pending`), 2 = leave a
  message (`<Leave/>`, then the Enqueue action answers `<Record>`; `record_voicemail`).
- `record_queue_result`: the Enqueue action. A caller who hung up is abandoned, exactly once, and
  becomes a missed call; a caller who left continues with what they chose (or the closing message).
- `record_forward_result`: the action of a forward; a forward nobody took ends with the message.
- `return_to_queue`: after a missed offer the caller goes back with the place they had.
- `record_status`: status callbacks, idempotent on CallSid + SequenceNumber, never backwards.

Webhooks only record facts; outbound REST calls are the worker's. After commit we wake the
dispatcher (`services.dispatch.wake(organisation_id)`, when that module has it), and a call that ends
while an operator is attached is handed to `services.operators.on_call_ended(session, call, now)`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import JSON, Connection, and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..db import UTCDateTime, hot_rows, hot_write
from ..domain import prompts_text
from ..domain.announcements import (
    MUSIC_AFTER_SPEECH_SECONDS,
    AnnouncementSettings,
    AnnouncementState,
    CallerOptions,
    Part,
    Situation,
    plan_caller_options,
    plan_wait,
    returned_to_queue,
)
from ..domain.arrival import (
    ArrivalDecision,
    ArrivalSettings,
    LiveSituation,
    Message,
    Outcome,
    Treatment,
    closed_message,
    decide_arrival,
)
from ..domain.estimates import (
    DEPARTED_CALLS,
    HandlingHistory,
    PastCall,
    queue_length_estimate,
    spoken_wait,
)
from ..domain.hours import HoursStatus
from ..domain.overflow import OverflowRule, OverflowState, QueueLoad
from ..domain.prompts_text import Phrase
from ..domain.states import Call as CallState
from ..domain.states import Operator as OperatorState
from ..domain.states import can_move, is_final
from ..extensions import db
from ..models import (
    Call,
    CallEvent,
    MissedCall,
    Offer,
    OfferState,
    OperatorStatus,
    Organisation,
    PhoneNumber,
    Prompt,
    PromptKind,
    Queue,
    QueueLogin,
    Recording,
)
from ..telephony.twiml import Music, Utterance, spoken, twilio_language
from .schedules import queue_hours_status
from .wait_writes import WaitWrites

log = logging.getLogger("koe.calls")
T = TypeVar("T")

HOLD_MUSIC = Music("/twilio/audio/hold.wav", track_seconds=10.0)
FINAL_TWILIO_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# The caller is in our queue order in these states: waiting, at the head while being rung, or
# waiting for a callback (their place is kept, so callers behind them count them).
IN_QUEUE_STATES = (CallState.WAITING.value, CallState.OFFERED.value, CallState.CALLBACK_PENDING.value)
SERVING_OPERATOR_STATES = (
    OperatorState.AVAILABLE.value,
    OperatorState.RINGING.value,
    OperatorState.ON_CALL.value,
    OperatorState.WRAP_UP.value,
)
QUEUE_FACTS_TTL = timedelta(seconds=30)
# Loading a 10,000-caller line takes its process ~17 ms, during which it answers no waitUrl fetch:
# every 5 s keeps such pauses under the 99th percentile of fetches (bench/waiturl.py), and five
# seconds is nothing beside a position that deep.
LINE_TTL = timedelta(seconds=5)
# How many operators serve a queue, counted for its status announcements: read on every fetch it
# cost PostgreSQL about as much as the rest of the read; a second old it is still the truth.
OPERATORS_TTL = timedelta(seconds=1)
LineKey = tuple[int, datetime, int]  # a place in a queue's line (see _line_key)


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
    CLOSED = "closed"  # opening hours, holiday, closure: the closing message, hang-up or forward
    NO_OPERATOR = "no_operator"  # nobody logged in: forwarded or the closing message
    OVERFLOW = "overflow"  # the queue closed itself (too many wait, or too long): busy or forward
    UNKNOWN_NUMBER = "unknown_number"  # no such number: nothing to attach the call to
    NO_QUEUE = "no_queue"  # the organisation's number leads to no queue: recorded as rejected
    ENDED = "ended"  # a retried or late webhook for a call that is already over
    UNKNOWN_CALL = "unknown_call"


@dataclass(frozen=True, slots=True)
class Forward:
    number: str
    caller_id: str | None = None  # the caller's own number, so whoever answers sees who calls


@dataclass(frozen=True, slots=True)
class Arrival:
    """What to do with a caller arriving at (or returning to) a queue.

    Enqueue: `say` (the welcome), then the queue. Otherwise `busy` (reject unanswered), or `say`
    then `forward` (Dial), or `say` then hang up.
    """

    kind: ArrivalKind
    call_id: int | None = None
    queue_id: int | None = None
    say: tuple[Utterance, ...] = ()
    created: bool = False
    forward: Forward | None = None
    busy: bool = False

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
    listen: bool = False  # wrap in a one-key Gather: the caller options are open
    leave: bool = False  # say, then <Leave/>: the Enqueue action continues the call


@dataclass(frozen=True, slots=True)
class OptionAnswer:
    """The answer to a key pressed while waiting (still inside the waitUrl)."""

    outcome: str
    say: tuple[Utterance, ...] = ()
    leave: bool = False
    hang_up: bool = False


@dataclass(frozen=True, slots=True)
class QueueResultAnswer:
    outcome: str
    say: tuple[Utterance, ...] = ()
    hang_up: bool = False  # False: answer an empty document (unless forward or record)
    forward: Forward | None = None
    record: bool = False  # say, then <Record> a voicemail


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
    never_bridged = was == CallState.CONNECTED and _never_bridged(session, call.id)
    talking = was in (CallState.CONNECTED, CallState.TRANSFERRING) and not never_bridged
    target = CallState.COMPLETED if talking else CallState.ABANDONED
    if not _move(session, call, target, now, ended_at=now, outcome_reason=reason):
        return False
    _record(
        session, call, "call_ended", now, {"state": target.value, "reason": reason}, f"ended:{call.call_sid}"
    )
    if (
        target is CallState.ABANDONED
        and call.queue_id is not None
        and (was in IN_QUEUE_STATES or never_bridged)
    ):
        # Someone gave up waiting: the switchboard owes them a call (once, whatever else reports it).
        _add_missed_call(session, call, "abandoned", now)
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


def _never_bridged(session: Session, call_id: int) -> bool:
    """Taken on an operator's own leg whose bridge never formed: the caller hung up while the
    operator waited for the welcome to end. They never talked to anyone: abandoned, not answered."""
    row = session.execute(
        select(Offer.leg_sid, Offer.bridged_at)
        .where(Offer.call_id == call_id, Offer.state == OfferState.ACCEPTED.value)
        .order_by(Offer.id.desc())
        .limit(1)
    ).first()
    return row is not None and row.leg_sid is not None and row.bridged_at is None


def _add_missed_call(session: Session, call: Call, reason: str, now: datetime) -> bool:
    values = {
        "organisation_id": call.organisation_id,
        "call_id": call.id,
        "queue_id": call.queue_id,
        "reason": reason,
        "created_at": now,
    }
    return _insert_once(session, MissedCall, values, "call_id")


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


def utterance(
    content: PromptContent | None, default_text: str, language: str, voice: str | None
) -> Utterance:
    """A recorded or written prompt when there is one, else `default_text` read in `language`."""
    return _utterance(content, default_text, language, voice)


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

_OUTCOME_KINDS = {
    Outcome.ENQUEUE: ArrivalKind.ENQUEUE,
    Outcome.CLOSED: ArrivalKind.CLOSED,
    Outcome.NO_OPERATOR: ArrivalKind.NO_OPERATOR,
    Outcome.OVERFLOW: ArrivalKind.OVERFLOW,
}


def _arrival_settings(queue: Queue) -> ArrivalSettings:
    return ArrivalSettings(
        closed_action=queue.closed_action,
        closed_forward_number=queue.closed_forward_number,
        overflow=OverflowRule(queue.overflow_max_callers, queue.overflow_max_wait_seconds),
        overflow_action=queue.overflow_action,
        overflow_forward_number=queue.overflow_forward_number,
        no_operator_action=queue.no_operator_action,
        no_operator_forward_number=queue.no_operator_forward_number,
    )


def _load_query(queue_id: int) -> Any:
    """One round trip: callers in the queue, the oldest one's start, and who is logged in."""
    in_queue = (Call.queue_id == queue_id, Call.state.in_(IN_QUEUE_STATES))
    waiting = select(func.count()).select_from(Call).where(*in_queue).scalar_subquery()
    oldest = select(func.min(func.coalesce(Call.entered_queue_at, Call.arrived_at))).where(*in_queue)
    logins = (
        select(OperatorStatus.state)
        .join(QueueLogin, QueueLogin.user_id == OperatorStatus.user_id)
        .where(QueueLogin.queue_id == queue_id, OperatorStatus.state != OperatorState.OFFLINE.value)
    ).subquery()
    logged_in = select(func.count()).select_from(logins).scalar_subquery()
    serving = (
        select(func.count())
        .select_from(logins)
        .where(logins.c.state.in_(SERVING_OPERATOR_STATES))
        .scalar_subquery()
    )
    free = (
        select(func.count())
        .select_from(logins)
        .where(logins.c.state == OperatorState.AVAILABLE.value)
        .scalar_subquery()
    )
    return select(waiting, oldest.scalar_subquery(), logged_in, serving, free)


def live_situation(
    session: Session, queue: Queue, now: datetime, cache: QueueFactsCache | None = None
) -> LiveSituation:
    """The queue as a new caller meets it: load, operators logged in, and its overflow state."""
    waiting, oldest, logged_in, serving, free = session.execute(_load_query(queue.id)).one()
    longest = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    expected = None
    if queue.overflow_max_wait_seconds:

        def load() -> QueueFacts:
            return _load_queue_facts(session, queue, now)

        facts = cache.get(queue.id, now, load) if cache is not None else load()
        expected = queue_length_estimate(
            int(waiting) + 1, int(serving), facts.history, free_operators=int(free)
        )
    return LiveSituation(
        QueueLoad(int(waiting), longest, expected),
        int(logged_in),
        OverflowState(queue.overflow_active, queue.overflow_changed_at),
    )


def _arrival_decision(
    session: Session, queue: Queue, now: datetime, cache: QueueFactsCache | None = None
) -> tuple[ArrivalDecision, LiveSituation]:
    """Opening hours, then 'no operator', then overflow (domain/arrival.py), all at `now`."""
    hours = queue_hours_status(session, queue.id, now)
    situation = live_situation(session, queue, now, cache)
    return decide_arrival(hours, _arrival_settings(queue), situation, now), situation


def _save_overflow(
    session: Session, queue: Queue, call: Call, before: OverflowState, after: OverflowState, now: datetime
) -> None:
    if after == before:
        return
    # Conditional: of two arrivals racing to flip it, one does; the other's caller is decided alike.
    result = session.execute(
        update(Queue)
        .where(Queue.id == queue.id, Queue.overflow_active == before.active)
        .values(overflow_active=after.active, overflow_changed_at=after.changed_at)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        kind = "overflow_started" if after.active else "overflow_ended"
        _record(session, call, kind, now, {"queue_id": queue.id}, source="app")
        log.info("%s queue_id=%s call_sid=%s", kind, queue.id, call.call_sid)


def _caller_id(number: str) -> str | None:
    """The caller's number as the forward's caller ID, when it is a real (E.164) number."""
    return number if number.startswith("+") and number[1:].isdigit() else None


def _message(
    session: Session,
    queue: Queue,
    message: Message | None,
    closure_message: str | None,
    default: bool,
) -> tuple[Utterance, ...]:
    """A closure's own words; else the recorded prompt of this kind; else (if `default`) ours.

    Our default texts end in goodbye, so they are said only before a hang-up, never before a forward.
    """
    organisation = session.get(Organisation, queue.organisation_id)
    voice = _voice(queue, organisation)
    if closure_message:
        return (spoken(closure_message, queue.language, voice),)
    if message is None:
        return ()
    content = _load_prompts(session, queue, (message.value,)).get(message.value)
    if content is not None and (content.audio_url or content.text):
        return (_utterance(content, "", queue.language, voice),)
    if not default:
        return ()
    return (spoken(prompts_text.fixed(queue.language, Phrase(message.value)), queue.language, voice),)


def outcome_arrival(session: Session, queue: Queue, call: Call, decision: ArrivalDecision) -> Arrival:
    """What the caller hears for a decision other than 'enqueue'."""
    kind = _OUTCOME_KINDS[decision.outcome]
    if decision.treatment is Treatment.BUSY:
        return Arrival(kind, call.id, queue.id, busy=True)
    forwarding = decision.treatment is Treatment.FORWARD and decision.forward_to is not None
    say = _message(session, queue, decision.message, decision.closure_message, default=not forwarding)
    forward = Forward(decision.forward_to, _caller_id(call.from_number)) if forwarding else None
    return Arrival(kind, call.id, queue.id, say, forward=forward)  # type: ignore[arg-type]


def _final_state(decision: ArrivalDecision) -> CallState:
    if decision.outcome is Outcome.CLOSED:
        return CallState.CLOSED
    if decision.outcome is Outcome.NO_OPERATOR and decision.treatment is Treatment.MESSAGE:
        return CallState.CLOSED
    return CallState.OVERFLOWED


def _decision_data(decision: ArrivalDecision) -> dict[str, Any]:
    return {
        "outcome": decision.outcome.value,
        "treatment": decision.treatment.value,
        "reason": decision.reason,
        "message": decision.message.value if decision.message else None,
        "closure_message": decision.closure_message,
        "forward_to": decision.forward_to,
    }


def _replayed_decision(session: Session, call: Call) -> ArrivalDecision | None:
    """The decision recorded for this call, so a retried webhook hears what the first one did."""
    event = session.scalars(
        select(CallEvent).where(CallEvent.call_id == call.id, CallEvent.kind == "arrival_decided")
    ).first()
    if event is None:
        return None
    data = event.data or {}
    try:
        return ArrivalDecision(
            outcome=Outcome(data["outcome"]),
            treatment=Treatment(data["treatment"]),
            reason=str(data.get("reason") or ""),
            message=Message(data["message"]) if data.get("message") else None,
            closure_message=data.get("closure_message"),
            forward_to=data.get("forward_to"),
        )
    except (KeyError, ValueError):
        return None


def answer_incoming(incoming: IncomingCall, now: datetime, cache: QueueFactsCache | None = None) -> Arrival:
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
            replayed = _replayed_decision(session, call)
            if replayed is not None and not replayed.enqueue:
                return outcome_arrival(session, queue, call, replayed)
            return Arrival(ArrivalKind.ENDED, call.id, queue.id, say=_bilingual(Phrase.GOODBYE))

        if call.state == CallState.ARRIVED:
            decision, situation = _arrival_decision(session, queue, now, cache)
            _save_overflow(session, queue, call, situation.overflow, decision.overflow, now)
            _record(session, call, "arrival_decided", now, _decision_data(decision), source="app")
            if not decision.enqueue:
                _move(
                    session, call, _final_state(decision), now, ended_at=now, outcome_reason=decision.reason
                )
                return outcome_arrival(session, queue, call, decision)
            _move(session, call, CallState.WAITING, now, entered_queue_at=now)
        # Else a retry for a caller already in the queue: welcome them into it again.
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
        arrival = Arrival(ArrivalKind.ENQUEUE, call.id, queue.id, greeting, created)
        organisation_id = call.organisation_id
    if created:
        _wake_dispatcher(organisation_id)
    return arrival


def closing_arrival(session: Session, queue: Queue, call: Call, hours: HoursStatus | None) -> Arrival:
    """The closing treatment of a caller whose queue closed while they waited.

    `hours` is the queue's status now; when it has reopened meanwhile (or is unknown) the reason
    stored on the call chooses the message.
    """
    reason = (
        hours.reason if hours is not None and not hours.open else (call.outcome_reason or "outside_hours")
    )
    closure_message = hours.closure_message if hours is not None and hours.reason == "closure" else None
    settings = _arrival_settings(queue)
    forward_to = (settings.closed_forward_number or "").strip() if settings.closed_action == "forward" else ""
    decision = ArrivalDecision(
        Outcome.CLOSED,
        Treatment.FORWARD if forward_to else Treatment.MESSAGE,
        reason,
        closed_message(reason),
        closure_message,
        forward_to or None,
    )
    return outcome_arrival(session, queue, call, decision)


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
        call.version = Call.version + 1  # a waitUrl write made from the row before must not undo this
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
        self._lines: dict[int, tuple[datetime, list[LineKey]]] = {}
        self._operators: dict[int, tuple[datetime, tuple[int, int]]] = {}
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

    def line(self, queue_id: int, now: datetime, load: Callable[[], list[LineKey]]) -> list[LineKey]:
        """The queue's whole line, sorted, reloaded when older than LINE_TTL."""
        cached = self.fresh_line(queue_id, now)
        if cached is not None:
            return cached
        line = load()
        with self._lock:
            self._lines[queue_id] = (now, line)
        return line

    def fresh_line(self, queue_id: int, now: datetime) -> list[LineKey] | None:
        """The snapshot of the queue's line if one younger than LINE_TTL is here, else None."""
        with self._lock:
            cached = self._lines.get(queue_id)
        if cached is not None and timedelta(0) <= now - cached[0] < LINE_TTL:
            return cached[1]
        return None

    def operators(self, queue_id: int, now: datetime, load: Callable[[], tuple[int, int]]) -> tuple[int, int]:
        """(serving, free) operators of the queue, counted at most OPERATORS_TTL ago."""
        with self._lock:
            cached = self._operators.get(queue_id)
        if cached is not None and timedelta(0) <= now - cached[0] < OPERATORS_TTL:
            return cached[1]
        counts = load()
        with self._lock:
            self._operators[queue_id] = (now, counts)
        return counts

    def clear(self) -> None:
        with self._lock:
            self._facts.clear()
            self._lines.clear()
            self._operators.clear()


def _load_queue_facts(session: Session, queue: Queue, now: datetime) -> QueueFacts:
    kinds = (
        PromptKind.FIRST_QUEUE_MESSAGE.value,
        PromptKind.PERIODIC_MESSAGE.value,
        PromptKind.HOLD_MUSIC.value,
        PromptKind.CALLBACK_OFFER.value,
    )
    organisation = session.get(Organisation, queue.organisation_id)
    return QueueFacts(
        prompts=_load_prompts(session, queue, kinds),
        history=HandlingHistory.from_calls(_recent_calls(session, queue.id), queue.wrap_up_seconds),
        voice=_voice(queue, organisation),
        loaded_at=now,
    )


def _recent_calls(session: Session, queue_id: int) -> list[PastCall]:
    """The queue's last calls to have left it, answered (and ended) or abandoned, oldest first."""
    rows = session.execute(
        select(
            func.coalesce(Call.entered_queue_at, Call.arrived_at),
            Call.answered_at,
            Call.ended_at,
            Call.answered_by_id,
        )
        .where(
            Call.queue_id == queue_id,
            Call.ended_at.is_not(None),
            or_(
                Call.answered_at.is_not(None),
                and_(Call.state == CallState.ABANDONED.value, Call.entered_queue_at.is_not(None)),
            ),
        )
        .order_by(Call.ended_at.desc())
        .limit(DEPARTED_CALLS)
    ).all()
    return [
        PastCall(entered, answered, ended, operator) for entered, answered, ended, operator in reversed(rows)
    ]


def _in_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)  # our own enum values, never input


# The waitUrl's read: the call and its queue's switches, by the unique CallSid. A text statement,
# so no ORM work per fetch; the same SQL on SQLite and PostgreSQL, sent through the driver itself
# on PostgreSQL (`hot_rows`), its row read by _WAIT_FIELDS' names.
_IN_QUEUE = _in_list(IN_QUEUE_STATES)
_CALL_COLUMNS = (
    "id", "state", "queue_id", "priority", "arrived_at", "entered_queue_at", "announcement_state",
    "first_estimate_seconds", "from_number", "outcome_reason", "version",
)  # fmt: skip
_QUEUE_COLUMNS = (
    "language", "first_message_enabled", "periodic_message_enabled", "periodic_interval_seconds",
    "announce_position", "announce_expected_wait", "announce_interval_seconds",
    "callback_enabled", "voicemail_enabled", "caller_options_after_seconds",
)  # fmt: skip
_WAIT_FIELDS = (*_CALL_COLUMNS, *_QUEUE_COLUMNS)
_WAIT_READ = text(
    f"""
SELECT {", ".join("c." + name for name in _CALL_COLUMNS)},
       {", ".join("q." + name for name in _QUEUE_COLUMNS)}
FROM calls c JOIN queues q ON q.id = c.queue_id
WHERE c.call_sid = :call_sid
"""
).columns(arrived_at=UTCDateTime(), entered_queue_at=UTCDateTime(), announcement_state=JSON())
# (serving, free): the operators logged in to the queue, and of them those free to answer now.
_OPERATOR_COUNTS = text(
    f"""
SELECT count(*) FILTER (WHERE s.state IN ({_in_list(SERVING_OPERATOR_STATES)})),
       count(*) FILTER (WHERE s.state = '{OperatorState.AVAILABLE.value}')
FROM queue_logins l JOIN operator_statuses s ON s.user_id = l.user_id
WHERE l.queue_id = :queue_id
"""
)

# A queue's line in our order (the partial index ix_calls_queue_line, read in order, no sort): the
# first EXACT_POSITIONS places when a status announcement is due.
_QUEUE_LINE = f"""
SELECT priority, entered_queue_at, id FROM calls
WHERE queue_id = :queue_id AND state IN ({_IN_QUEUE})
ORDER BY priority DESC, entered_queue_at, id
"""
_QUEUE_HEAD = text(_QUEUE_LINE + "LIMIT :limit").columns(entered_queue_at=UTCDateTime())
# The whole line as `_line_key`s, made by the database: no Python work per row for 10,000 callers.
# Its order is the key's: NULL entered_queue_at last, as the latest instant (and as the index has it).
_WHOLE_LINE = text(
    f"""
SELECT -c.priority AS key_priority,
       COALESCE(c.entered_queue_at, '{datetime.max.isoformat(" ")}') AS key_entered, c.id AS key_id
FROM calls c
WHERE c.queue_id = :queue_id AND c.state IN ({_IN_QUEUE})
ORDER BY c.priority DESC, c.entered_queue_at NULLS LAST, c.id
"""
).columns(key_entered=UTCDateTime())
EXACT_POSITIONS = 50
SNAPSHOT_TRUSTED_FROM = 2 * EXACT_POSITIONS  # 0-based place in the snapshot
# Guarded by the version read with the row: a call the dispatcher changed since keeps what it wrote.
_WAIT_WRITE = text(
    "UPDATE calls SET announcement_state = :state,"
    " first_estimate_seconds = COALESCE(first_estimate_seconds, :estimate)"
    " WHERE id = :id AND version = :version"
).bindparams(bindparam("state", type_=JSON()))

# `_WAIT_WRITE` for a whole batch on PostgreSQL, its rows in one JSON array, their ids again as an
# array: with that condition the plan finds the rows by the primary key (without it, a sequential
# scan of all calls), and the join visits the batch in its order, so the rows are locked in the order
# of their ids (`WaitWrites.flush`).
_WAIT_WRITE_BATCH = text(
    "UPDATE calls SET announcement_state = v.state,"
    " first_estimate_seconds = COALESCE(calls.first_estimate_seconds, v.estimate)"
    " FROM json_to_recordset(CAST(:batch AS JSON))"
    " AS v(id BIGINT, version INTEGER, state JSON, estimate INTEGER)"
    " WHERE calls.id = ANY(CAST(:ids AS BIGINT[])) AND calls.id = v.id AND calls.version = v.version"
)


def next_wait(
    call_sid: str, now: datetime, cache: QueueFactsCache | None = None, behind: WaitWrites | None = None
) -> WaitAnswer:
    """What a waiting caller hears next, from their own stored state and our queue order.

    The busiest request of the app (every waiting caller, every document's end): one read, and a
    write only when the caller heard something new. The write touches only the announcement columns
    and only the version of the row it read, so it needs no lock against the dispatcher.
    With `behind` the write is handed to it (`wait_writes`), except the first fetch's: the
    dispatcher bridges a caller only once they are in their Twilio queue (`joined_at`).
    """
    return _once_more_if_dropped(lambda: _next_wait(call_sid, now, cache, behind))


def _once_more_if_dropped(action: Callable[[], T]) -> T:
    """`action`, run again once if the pool handed it a connection the server had dropped."""
    try:
        return action()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        return action()


def _next_wait(
    call_sid: str, now: datetime, cache: QueueFactsCache | None, behind: WaitWrites | None
) -> WaitAnswer:
    with db.hot_connection() as connection:
        rows = hot_rows(connection, _WAIT_READ, {"call_sid": call_sid})
        row: Mapping[str, Any] | None = dict(zip(_WAIT_FIELDS, rows[0], strict=True)) if rows else None
        if row is None:
            log.warning("waitUrl for an unknown call call_sid=%s", call_sid)
            return WaitAnswer(say=apology(), gone=True)
        if _left_the_queue_row(row):
            # Our REST redirect did not reach the caller (closed while waiting), or the caller chose
            # an option: leave, and the Enqueue action continues the call.
            return WaitAnswer(say=(), leave=True)
        if is_final(row["state"]):
            return WaitAnswer(say=_bilingual(Phrase.GOODBYE), gone=True)
        if behind is not None:
            row = behind.overlay(row)
        answer, write = _plan_wait_answer(connection, row, now, cache)
        if write is None:
            return answer
        if behind is not None and (row["announcement_state"] or {}).get("joined_at"):
            behind.put(write)
        else:
            hot_write(connection, _WAIT_WRITE, write, json=("state",))
        return answer


def write_heard(batch: Sequence[Mapping[str, Any]]) -> None:
    """Write what waiting callers heard (`WaitWrites`' batches), retried once on a dropped connection.

    On PostgreSQL one statement writes the whole batch, sent as one JSON document: per row, a
    fraction of what a pipelined UPDATE costs the writer thread and the server."""

    def write() -> None:
        with db.hot_connection() as connection:
            if connection.dialect.name == "postgresql":
                ids = [heard["id"] for heard in batch]
                hot_write(connection, _WAIT_WRITE_BATCH, {"batch": json.dumps(batch), "ids": ids})
            else:
                connection.execute(_WAIT_WRITE, [dict(heard) for heard in batch])

    _once_more_if_dropped(write)


def _queue_facts_for(queue_id: int, now: datetime, cache: QueueFactsCache | None) -> QueueFacts:
    def load() -> QueueFacts:
        # A read: on SQLite the writer's BEGIN IMMEDIATE would queue this behind the dispatcher.
        with db.reading() as session:
            queue = session.get(Queue, queue_id)
            assert queue is not None
            return _load_queue_facts(session, queue, now)

    return cache.get(queue_id, now, load) if cache is not None else load()


def _line_key(priority: int, entered: datetime | None, call_id: int) -> LineKey:
    """Sorts like our queue order: higher priority first, then who came first, then the id."""
    return (-priority, entered or datetime.max.replace(tzinfo=UTC), call_id)


def _position(
    connection: Connection,
    row: Mapping[str, Any],
    entered: datetime,
    now: datetime,
    cache: QueueFactsCache | None,
) -> int:
    """Exact within the first EXACT_POSITIONS places; deeper, from this process's snapshot of the line
    (at most LINE_TTL old), so no fetch counts thousands of rows for "you are number 4,987".

    A caller the fresh snapshot places beyond SNAPSHOT_TRUSTED_FROM, under the key they still have,
    is placed by it without reading the head: EXACT_POSITIONS callers would have to leave ahead of
    them within LINE_TTL for them to belong at the head. A caller whose key is not in the snapshot
    (they joined or their priority changed since) is placed by the exact read first.
    """
    mine = _line_key(row["priority"], entered, row["id"])
    snapshot = cache.fresh_line(row["queue_id"], now) if cache is not None else None
    if snapshot is not None:
        at = bisect_left(snapshot, mine)
        if at >= SNAPSHOT_TRUSTED_FROM and at < len(snapshot) and snapshot[at] == mine:
            return at + 1
    head = hot_rows(connection, _QUEUE_HEAD, {"queue_id": row["queue_id"], "limit": EXACT_POSITIONS})
    ahead = sum(1 for p, e, i in head if _line_key(p, e, i) < mine)
    if ahead < EXACT_POSITIONS:
        return ahead + 1

    def load() -> list[LineKey]:
        return list(hot_rows(connection, _WHOLE_LINE, {"queue_id": row["queue_id"]}))  # type: ignore[arg-type]

    line = cache.line(row["queue_id"], now, load) if cache is not None else load()
    return max(bisect_left(line, mine), EXACT_POSITIONS) + 1


def _situation(
    connection: Connection,
    row: Mapping[str, Any],
    entered: datetime,
    now: datetime,
    facts: QueueFacts,
    cache: QueueFactsCache | None,
) -> Situation:
    position = _position(connection, row, entered, now, cache)
    serving, free = _operator_counts(connection, row["queue_id"], now, cache)
    estimate = queue_length_estimate(position, serving, facts.history, free_operators=free)
    return Situation(position, estimate, serving)


def _operator_counts(
    connection: Connection, queue_id: int, now: datetime, cache: QueueFactsCache | None
) -> tuple[int, int]:
    def load() -> tuple[int, int]:
        [(serving, free)] = hot_rows(connection, _OPERATOR_COUNTS, {"queue_id": queue_id})
        return int(serving), int(free)

    return cache.operators(queue_id, now, load) if cache is not None else load()


def _plan_wait_answer(
    connection: Connection, row: Mapping[str, Any], now: datetime, cache: QueueFactsCache | None
) -> tuple[WaitAnswer, dict[str, Any] | None]:
    facts = _queue_facts_for(row["queue_id"], now, cache)
    language = row["language"]
    entered = row["entered_queue_at"] or row["arrived_at"]
    settings = AnnouncementSettings(
        first_message=bool(row["first_message_enabled"]),
        periodic_message=bool(row["periodic_message_enabled"]),
        periodic_interval_seconds=row["periodic_interval_seconds"],
        announce_position=bool(row["announce_position"]),
        announce_expected_wait=bool(row["announce_expected_wait"]),
        announce_interval_seconds=row["announce_interval_seconds"],
    )
    plan = plan_wait(
        AnnouncementState.from_json(row["announcement_state"] or {}),
        settings,
        lambda: _situation(connection, row, entered, now, facts, cache),
        entered,
        now,
    )
    say = tuple(_announcement_utterance(a.part, a.value, language, facts) for a in plan.announcements)
    options = CallerOptions(
        callback=bool(row["callback_enabled"]) and _caller_id(row["from_number"]) is not None,
        voicemail=bool(row["voicemail_enabled"]),
        after_seconds=row["caller_options_after_seconds"],
    )
    offer = plan_caller_options(plan.state, options, entered, now)
    if offer.offer:
        say += _options_utterances(options, language, facts)
    write = None
    if plan.changed_state or offer.offer:
        first_estimate = None if row["first_estimate_seconds"] is not None else plan.state.estimate_seconds
        state = offer.state.to_json()
        write = {"id": row["id"], "version": row["version"], "state": state, "estimate": first_estimate}
    music = _hold_music(facts.prompts.get(PromptKind.HOLD_MUSIC.value))
    music_seconds = plan.music_seconds
    if offer.offer and not plan.changed_state:
        music_seconds = MUSIC_AFTER_SPEECH_SECONDS
    answer = WaitAnswer(say=say, music=music, music_seconds=music_seconds, listen=offer.listen)
    return answer, write


def _left_the_queue_row(row: Mapping[str, Any]) -> bool:
    """Still fetching the waitUrl, though no longer waiting: closed, or an option was chosen."""
    if row["state"] in (CallState.CLOSED, CallState.CALLBACK_PENDING):
        return row["entered_queue_at"] is not None
    return row["state"] == CallState.ABANDONED and row["outcome_reason"] == VOICEMAIL_REASON


def _options_utterances(options: CallerOptions, language: str, facts: QueueFacts) -> tuple[Utterance, ...]:
    recorded = facts.prompts.get(PromptKind.CALLBACK_OFFER.value)
    if recorded is not None and (recorded.audio_url or recorded.text):
        return (_utterance(recorded, "", language, facts.voice),)
    phrases = [Phrase.OPTION_CALLBACK] if options.callback else []
    if options.voicemail:
        phrases.append(Phrase.OPTION_VOICEMAIL)
    return tuple(spoken(prompts_text.fixed(language, p), language, facts.voice) for p in phrases)


def hold_music(session: Session, queue: Queue | None) -> Music:
    """The queue's hold music (its own prompt, else the organisation's, else the built-in track)."""
    if queue is None:
        return HOLD_MUSIC
    kind = PromptKind.HOLD_MUSIC.value
    return _hold_music(_load_prompts(session, queue, (kind,)).get(kind))


def prompt_of(session: Session, queue: Queue, kind: PromptKind) -> PromptContent | None:
    """The queue's own prompt of `kind` in its language, else the organisation's; None if unset."""
    return _load_prompts(session, queue, (kind.value,)).get(kind.value)


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
            return _after_leaving(session, call, now)
        # error / system-error / anything new: our waitUrl or Twilio failed the caller.
        log.error("queue failed the caller call_sid=%s result=%s", call_sid, result)
        _end_call(session, call, now, f"queue_{result}")
        return QueueResultAnswer(
            "queue_error", (spoken(prompts_text.fixed(language, Phrase.TECHNICAL_ERROR), language),), True
        )


def _after_leaving(session: Session, call: Call, now: datetime) -> QueueResultAnswer:
    """The caller left the queue by `<Leave/>`: continue with what they chose, or the closing."""
    queue = call.queue
    language = queue.language if queue is not None else "sv"
    if call.state == CallState.CALLBACK_PENDING:
        return QueueResultAnswer("callback_pending", hang_up=True)  # the confirmation was said
    if call.state == CallState.ABANDONED and call.outcome_reason == VOICEMAIL_REASON and queue is not None:
        prompts = _load_prompts(session, queue, (PromptKind.VOICEMAIL.value,))
        default = prompts_text.fixed(language, Phrase.VOICEMAIL_PROMPT)
        organisation = session.get(Organisation, queue.organisation_id)
        prompt = _utterance(
            prompts.get(PromptKind.VOICEMAIL.value), default, language, _voice(queue, organisation)
        )
        return QueueResultAnswer("voicemail", (prompt,), record=True)
    if call.state == CallState.CLOSED and queue is not None:
        arrival = closing_arrival(session, queue, call, queue_hours_status(session, queue.id, now))
        return QueueResultAnswer(
            "closed", arrival.say, hang_up=arrival.forward is None, forward=arrival.forward
        )
    _end_call(session, call, now, "left_queue")
    return QueueResultAnswer("left", (spoken(prompts_text.fixed(language, Phrase.GOODBYE), language),), True)


# --- caller options while waiting ---------------------------------------------------------------

VOICEMAIL_REASON = "voicemail"


def choose_option(call_sid: str, digits: str, now: datetime) -> OptionAnswer:
    """A key pressed while waiting (the waitUrl's Gather): 1 call me back, 2 leave a message."""
    with db.transaction() as session:
        call = _call_by_sid(session, call_sid)
        if call is None or call.queue is None:
            log.warning("caller option for an unknown call call_sid=%s", call_sid)
            return OptionAnswer("unknown_call", apology(), hang_up=True)
        queue = call.queue
        language = queue.language
        organisation = session.get(Organisation, queue.organisation_id)
        voice = _voice(queue, organisation)
        if call.state != CallState.WAITING:
            # Being rung right now (the dispatcher moves them on) or already gone: nothing to do.
            return OptionAnswer("not_waiting")
        choice = digits.strip()[:1]
        _record(session, call, "caller_option", now, {"digits": choice}, source="twilio")
        if choice == "1" and queue.callback_enabled and _caller_id(call.from_number) is not None:
            if not _move(session, call, CallState.CALLBACK_PENDING, now, callback_number=call.from_number):
                return OptionAnswer("not_waiting")
            # The dispatcher offers it in its queue order (entered_queue_at is kept) as an outbound
            # call to the operator, who is then connected to `callback_number` (services/callbacks.py).
            # Until that call is answered the switchboard's shared list shows whom it owes a call.
            _add_missed_call(session, call, "callback", now)
            organisation_id = call.organisation_id
            confirmation = spoken(prompts_text.fixed(language, Phrase.CALLBACK_CONFIRMED), language, voice)
            answer = OptionAnswer("callback_pending", (confirmation,), leave=True)
        elif choice == "2" and queue.voicemail_enabled:
            if not _move(
                session, call, CallState.ABANDONED, now, ended_at=now, outcome_reason=VOICEMAIL_REASON
            ):
                return OptionAnswer("not_waiting")
            _add_missed_call(session, call, VOICEMAIL_REASON, now)
            return OptionAnswer("voicemail", leave=True)
        else:
            invalid = spoken(prompts_text.fixed(language, Phrase.INVALID_CHOICE), language, voice)
            return OptionAnswer("invalid_choice", (invalid,))
    _wake_dispatcher(organisation_id)
    return answer


@dataclass(frozen=True, slots=True)
class RecordingReport:
    """A Record action or recording status callback."""

    call_sid: str
    recording_sid: str | None
    url: str | None
    duration: float | None
    status: str | None = None

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> RecordingReport:
        raw = form.get("RecordingDuration", "")
        try:
            duration = float(raw) if raw else None
        except ValueError:
            duration = None
        return cls(
            call_sid=form.get("CallSid", ""),
            recording_sid=form.get("RecordingSid") or None,
            url=form.get("RecordingUrl") or None,
            duration=duration,
            status=form.get("RecordingStatus") or None,
        )


def _attach_recording(session: Session, call: Call, report: RecordingReport) -> Recording:
    """One voicemail recording per call, whichever of the action and the callback comes first."""
    row = None
    if report.recording_sid:
        row = session.scalars(
            select(Recording).where(Recording.recording_sid == report.recording_sid)
        ).first()
    if row is None:
        row = session.scalars(
            select(Recording).where(Recording.call_id == call.id, Recording.purpose == "voicemail")
        ).first()
    if row is None:
        row = Recording(organisation_id=call.organisation_id, call_id=call.id, purpose="voicemail")
        session.add(row)
    if report.recording_sid and row.recording_sid is None:
        row.recording_sid = report.recording_sid
    if report.url:
        row.twilio_url = report.url
    if report.duration is not None:
        row.duration_seconds = report.duration
    if report.status:
        row.status = report.status
    return row


def record_voicemail(report: RecordingReport, now: datetime) -> QueueResultAnswer:
    """The Record action: the message is attached to the call; thank the caller and hang up."""
    with db.transaction() as session:
        call = _call_by_sid(session, report.call_sid)
        if call is None:
            log.warning("voicemail for an unknown call call_sid=%s", report.call_sid)
            return QueueResultAnswer("unknown_call", hang_up=True)
        _attach_recording(session, call, report)
        _add_missed_call(session, call, VOICEMAIL_REASON, now)
        _record(session, call, "voicemail_recorded", now, {"duration": report.duration}, source="twilio")
        language = call.queue.language if call.queue is not None else "sv"
        thanks = spoken(prompts_text.fixed(language, Phrase.VOICEMAIL_THANKS), language)
        return QueueResultAnswer("voicemail_recorded", (thanks,), hang_up=True)


def record_recording_status(report: RecordingReport, now: datetime) -> str:
    with db.transaction() as session:
        call = _call_by_sid(session, report.call_sid)
        if call is None:
            log.info("recording status for an unknown call call_sid=%s", report.call_sid)
            return "unknown_call"
        _attach_recording(session, call, report)
        return "recorded"


# --- forwards -----------------------------------------------------------------------------------

FORWARD_TAKEN = frozenset({"completed", "answered"})


def _reason_message(reason: str | None) -> Message:
    if reason == "no_operator":
        return Message.NO_OPERATOR
    if reason and reason.startswith("overflow"):
        return Message.OVERFLOW
    return closed_message(reason or "outside_hours")


def record_forward_result(call_sid: str, dial_status: str, now: datetime) -> QueueResultAnswer:
    """The forward's Dial action: taken -> the call is over; not taken -> the message, then hang up."""
    with db.transaction() as session:
        call = _call_by_sid(session, call_sid)
        if call is None:
            log.warning("forward result for an unknown call call_sid=%s", call_sid)
            return QueueResultAnswer("unknown_call", hang_up=True)
        _record(session, call, "forward_result", now, {"status": dial_status}, f"forward:{call_sid}")
        if dial_status in FORWARD_TAKEN or call.queue is None:
            return QueueResultAnswer("forwarded", hang_up=True)
        log.info("forward not taken call_sid=%s status=%s", call_sid, dial_status)
        say = _message(session, call.queue, _reason_message(call.outcome_reason), None, default=True)
        return QueueResultAnswer("forward_failed", say, hang_up=True)


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
