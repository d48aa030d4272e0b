"""The emulator's records: calls (legs), queues, conferences, messages, recordings, logged errors."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .parties import CallerScript

# twilio.md §4 "Events → CallStatus".
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
DEFAULT_MAX_QUEUE_SIZE = 1000
MAX_QUEUE_SIZE_LIMIT = 5000


class SidFactory:
    """SIDs are a two-letter prefix and 32 hex digits, drawn from their own seeded generator."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"sids-{seed}")

    def __call__(self, prefix: str) -> str:
        return f"{prefix}{self._rng.getrandbits(128):032x}"


@dataclass(frozen=True)
class Heard:
    """Something a leg's person heard: `kind` is say, play, pause, beep, digits, bridge, ringing."""

    at: datetime
    kind: str
    content: str
    language: str | None = None
    voice: str | None = None


@dataclass(frozen=True)
class EmulatorError:
    """One entry of the emulator's debugger, like Twilio's Monitor > Errors."""

    code: int
    url: str
    call_sid: str | None
    message: str
    at: datetime


@dataclass
class Call:
    sid: str
    account_sid: str
    from_: str
    to: str
    direction: str  # inbound | outbound-api | outbound-dial
    created_at: datetime
    status: str = "queued"
    parent_sid: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    answered_by: str | None = None
    # Where its TwiML comes from.
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    fallback_url: str | None = None
    fallback_method: str = "POST"
    # Status callbacks.
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset()
    sequence: int = 0
    # The person on this leg.
    script: CallerScript = field(default_factory=CallerScript)
    client_identity: str | None = None
    heard: list[Heard] = field(default_factory=list)
    # Runtime state.
    doc_url: str | None = None
    queue_sid: str | None = None
    enqueued_at: datetime | None = None
    bridged_with: str | None = None
    bridged_at: datetime | None = None
    conference_sid: str | None = None
    listening: bool = False
    digit_buffer: list[str] = field(default_factory=list)
    lost_digits: list[str] = field(default_factory=list)
    next_press: int = 0
    press_due_at: datetime | None = None
    interrupt: Callable[[str], None] | None = None
    process: Any = None
    timers: list[Any] = field(default_factory=list)
    patience_timer: Any = None
    # The person's `talk_for` runs from their first bridge or conference join.
    talk_scheduled: bool = False
    extra_params: dict[str, str] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def answered(self) -> bool:
        return self.start_time is not None

    def duration_s(self) -> int:
        if self.start_time is None or self.end_time is None:
            return 0
        return int((self.end_time - self.start_time).total_seconds())


@dataclass
class Queue:
    sid: str
    account_sid: str
    friendly_name: str
    created_at: datetime
    updated_at: datetime
    max_size: int = DEFAULT_MAX_QUEUE_SIZE
    members: list[str] = field(default_factory=list)  # call SIDs, head first


@dataclass
class Participant:
    call_sid: str
    conference_sid: str
    joined_at: datetime
    label: str | None = None
    muted: bool = False
    hold: bool = False
    hold_url: str | None = None
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    coaching: bool = False
    status: str = "connected"


@dataclass
class Conference:
    sid: str
    account_sid: str
    friendly_name: str
    created_at: datetime
    updated_at: datetime
    status: str = "init"  # init | in-progress | completed
    participants: dict[str, Participant] = field(default_factory=dict)
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset()
    sequence: int = 0
    reason_ended: str | None = None


@dataclass
class Message:
    sid: str
    account_sid: str
    from_: str
    to: str
    body: str
    created_at: datetime
    updated_at: datetime
    status: str = "queued"
    status_callback: str | None = None
    messaging_service_sid: str | None = None
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None

    @property
    def num_segments(self) -> int:
        gsm = all(ord(c) < 128 for c in self.body)
        size = 160 if gsm else 70
        if len(self.body) <= size:
            return 1
        multipart = 153 if gsm else 67
        return -(-len(self.body) // multipart)


@dataclass
class Recording:
    sid: str
    account_sid: str
    call_sid: str
    created_at: datetime
    duration_s: int
    wav: bytes
    source: str = "RecordVerb"
    status: str = "completed"
    channels: int = 1
