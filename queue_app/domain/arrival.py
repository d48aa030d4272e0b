"""What happens to a caller who arrives at a queue: enqueue, closed, no operator, or overflow.

Pure: the service hands in the opening-hours status, the queue's settings and the live situation,
all taken at one instant, and applies the decision.

Precedence, strongest first:

1. **Closed** (opening hours, holiday, temporary closure, custom day): the closing message for that
   reason (a temporary closure's own message wins), then hang up or forward to
   `closed_forward_number`, per `closed_action`.
2. **No operator logged in**, per `no_operator_action`: `forward` to `no_operator_forward_number`,
   `close` (the no-operator message, then hang up), or `queue` (go on to the overflow check).
   Checked before overflow as Asterisk checks `joinempty` before `maxlen` (anchors b5): an unstaffed
   switchboard sends callers where the admin chose, however long its queue is.
3. **Overflow** (`domain.overflow`: X callers wait or the wait reaches Y, with hysteresis):
   `busy` (`<Reject reason="busy"/>` as the first verb, so the call is never answered) or `forward`
   to `overflow_forward_number`.
4. Otherwise the caller is enqueued.

A forward whose number is missing degrades to the message of its outcome and a hang-up: the caller
always hears why, never a dead line. A busy overflow says nothing (it is never answered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .hours import HoursStatus
from .overflow import OverflowRule, OverflowState, QueueLoad, next_state, overflow_cause


class Outcome(StrEnum):
    ENQUEUE = "enqueue"
    CLOSED = "closed"
    NO_OPERATOR = "no_operator"
    OVERFLOW = "overflow"


class Treatment(StrEnum):
    ENQUEUE = "enqueue"
    MESSAGE = "message"  # say the outcome's message, then hang up
    FORWARD = "forward"  # say the outcome's message if one was recorded, then <Dial> the number
    BUSY = "busy"  # <Reject reason="busy"/>: unanswered


class Message(StrEnum):
    """Which message the caller hears; the names are the prompt kinds an admin can record."""

    CLOSED_HOURS = "closed_hours"
    CLOSED_HOLIDAY = "closed_holiday"
    CLOSED_CLOSURE = "closed_closure"
    OVERFLOW = "overflow"
    NO_OPERATOR = "no_operator"


_CLOSED_MESSAGES = {
    "outside_hours": Message.CLOSED_HOURS,
    "exception": Message.CLOSED_HOURS,
    "holiday": Message.CLOSED_HOLIDAY,
    "closure": Message.CLOSED_CLOSURE,
}


@dataclass(frozen=True, slots=True)
class ArrivalSettings:
    closed_action: str = "hangup"  # hangup | forward
    closed_forward_number: str | None = None
    overflow: OverflowRule = field(default_factory=OverflowRule)
    overflow_action: str = "busy"  # busy | forward
    overflow_forward_number: str | None = None
    no_operator_action: str = "queue"  # queue | forward | close
    no_operator_forward_number: str | None = None


@dataclass(frozen=True, slots=True)
class LiveSituation:
    load: QueueLoad
    logged_in_operators: int
    overflow: OverflowState = field(default_factory=OverflowState)


@dataclass(frozen=True, slots=True)
class ArrivalDecision:
    outcome: Outcome
    treatment: Treatment
    reason: str  # what is stored as the call's outcome_reason
    message: Message | None = None
    closure_message: str | None = None  # a temporary closure's own words
    forward_to: str | None = None
    # The queue's overflow state after this arrival; differs from the input when it changed.
    overflow: OverflowState = field(default_factory=OverflowState)

    @property
    def enqueue(self) -> bool:
        return self.treatment is Treatment.ENQUEUE


def closed_message(reason: str) -> Message:
    return _CLOSED_MESSAGES.get(reason, Message.CLOSED_HOURS)


def _number(raw: str | None) -> str | None:
    number = (raw or "").strip()
    return number or None


def _send(
    outcome: Outcome,
    reason: str,
    message: Message,
    action: str,
    number: str | None,
    overflow: OverflowState,
    closure_message: str | None = None,
) -> ArrivalDecision:
    forward_to = _number(number) if action == "forward" else None
    treatment = Treatment.FORWARD if forward_to else Treatment.MESSAGE
    return ArrivalDecision(outcome, treatment, reason, message, closure_message, forward_to, overflow)


def decide_arrival(
    hours: HoursStatus, settings: ArrivalSettings, situation: LiveSituation, now: datetime
) -> ArrivalDecision:
    """The decision for a caller arriving at `now`."""
    overflow = next_state(settings.overflow, situation.overflow, situation.load, now)

    if not hours.open:
        return _send(
            Outcome.CLOSED,
            hours.reason,
            closed_message(hours.reason),
            settings.closed_action,
            settings.closed_forward_number,
            overflow,
            hours.closure_message if hours.reason == "closure" else None,
        )

    if situation.logged_in_operators < 1 and settings.no_operator_action in ("forward", "close"):
        return _send(
            Outcome.NO_OPERATOR,
            "no_operator",
            Message.NO_OPERATOR,
            settings.no_operator_action,
            settings.no_operator_forward_number,
            overflow,
        )

    if overflow.active:
        cause = overflow_cause(settings.overflow, situation.load)
        reason = cause.value if cause is not None else "overflow"
        if settings.overflow_action == "forward":
            return _send(
                Outcome.OVERFLOW,
                reason,
                Message.OVERFLOW,
                "forward",
                settings.overflow_forward_number,
                overflow,
            )
        return ArrivalDecision(Outcome.OVERFLOW, Treatment.BUSY, reason, overflow=overflow)

    return ArrivalDecision(Outcome.ENQUEUE, Treatment.ENQUEUE, "enqueued", overflow=overflow)


def closing_treatment(closing_while_waiting: str, logged_in_operators: int) -> str:
    """What happens to callers already waiting when their queue closes: "serve" or "close".

    `serve` keeps them in the queue to be answered, but only while someone is logged in to answer
    them: once the last operator has logged out, they get the closing treatment too, so nobody is
    left waiting forever.
    """
    if closing_while_waiting == "serve" and logged_in_operators > 0:
        return "serve"
    return "close"
