"""The call and operator state machines: which transitions are allowed, nothing else.

A callback that would make an illegal transition (a duplicate, a late one) is recorded and ignored
by the service that received it; `can_move` is how it finds out.
"""

from __future__ import annotations

from enum import StrEnum


class Call(StrEnum):
    ARRIVED = "arrived"
    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTED = "connected"
    TRANSFERRING = "transferring"
    CAMPED_ON = "camped_on"
    CALLBACK_PENDING = "callback_pending"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    CLOSED = "closed"
    REJECTED = "rejected"


FINAL_CALL_STATES = frozenset({Call.COMPLETED, Call.ABANDONED, Call.OVERFLOWED, Call.CLOSED, Call.REJECTED})

_CALL_MOVES: dict[Call, frozenset[Call]] = {
    Call.ARRIVED: frozenset({Call.WAITING, Call.ABANDONED, Call.OVERFLOWED, Call.CLOSED, Call.REJECTED}),
    Call.WAITING: frozenset(
        {Call.OFFERED, Call.ABANDONED, Call.OVERFLOWED, Call.CLOSED, Call.CALLBACK_PENDING}
    ),
    # Back to WAITING after a missed offer; the caller keeps their place. A callback's offer (the
    # operator's outbound leg) goes back to CALLBACK_PENDING instead.
    Call.OFFERED: frozenset({Call.CONNECTED, Call.WAITING, Call.ABANDONED, Call.CALLBACK_PENDING}),
    # A callback whose callee did not answer: retried later, or given up (abandoned) after the last try.
    Call.CONNECTED: frozenset({Call.TRANSFERRING, Call.COMPLETED, Call.CALLBACK_PENDING, Call.ABANDONED}),
    Call.TRANSFERRING: frozenset(
        {Call.COMPLETED, Call.CAMPED_ON, Call.WAITING, Call.OFFERED, Call.ABANDONED, Call.CONNECTED}
    ),
    Call.CAMPED_ON: frozenset({Call.TRANSFERRING, Call.WAITING, Call.OFFERED, Call.ABANDONED}),
    Call.CALLBACK_PENDING: frozenset({Call.OFFERED, Call.COMPLETED, Call.ABANDONED}),
}


def can_move(current: str, target: str) -> bool:
    """May a call in `current` move to `target`? Staying put is not a move."""
    return Call(target) in _CALL_MOVES.get(Call(current), frozenset())


def is_final(state: str) -> bool:
    return Call(state) in FINAL_CALL_STATES


class Operator(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


_OPERATOR_MOVES: dict[Operator, frozenset[Operator]] = {
    Operator.OFFLINE: frozenset({Operator.AVAILABLE, Operator.PAUSED}),
    Operator.AVAILABLE: frozenset({Operator.RINGING, Operator.PAUSED, Operator.OFFLINE}),
    Operator.RINGING: frozenset({Operator.ON_CALL, Operator.AVAILABLE, Operator.PAUSED, Operator.OFFLINE}),
    Operator.ON_CALL: frozenset({Operator.WRAP_UP, Operator.AVAILABLE}),
    Operator.WRAP_UP: frozenset({Operator.AVAILABLE, Operator.PAUSED, Operator.OFFLINE, Operator.WRAP_UP}),
    Operator.PAUSED: frozenset({Operator.AVAILABLE, Operator.OFFLINE}),
}


def operator_can_move(current: str, target: str) -> bool:
    return Operator(target) in _OPERATOR_MOVES.get(Operator(current), frozenset())


# Twilio's CallStatus values in the order a call passes through them; a callback never moves a
# call backwards (twilio.md §4: sort by SequenceNumber and never move a call backwards).
TWILIO_STATUS_ORDER = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "completed": 4,
    "busy": 4,
    "no-answer": 4,
    "failed": 4,
    "canceled": 4,
}
