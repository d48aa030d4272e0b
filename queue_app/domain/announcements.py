"""What a waiting caller hears next.

Twilio fetches the Enqueue waitUrl again each time the document it got ends. Each fetch plans the
next piece from the caller's own state (what they have heard, and when) and the queue's switches:
the first queue message once, their position and expected wait every `announce_interval_seconds`,
the periodic message every `periodic_interval_seconds`, and music in between so that one document
lasts about 20-30 seconds. While operators are rung, the caller has left the Enqueue for the
offer's `<Dial>` (web/offers.py) and hears ringback, not these announcements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .estimates import without_unexplained_growth

MUSIC_AFTER_SPEECH_SECONDS = 20
SHORTEST_MUSIC_SECONDS = 20
LONGEST_MUSIC_SECONDS = 30
# A fetch this close before an announcement is due says it now. Hold music comes in whole tracks
# (10 s by default), so the document planned to end when the next one is due may end a few seconds
# before it; waiting for the next fetch would stretch a 60 s interval to 80 s.
DUE_EARLY_SECONDS = 5


class Part(StrEnum):
    FIRST_QUEUE_MESSAGE = "first_queue_message"
    PERIODIC_MESSAGE = "periodic_message"
    RETURNED_TO_QUEUE = "returned_to_queue"
    POSITION = "position"
    EXPECTED_WAIT = "expected_wait"


@dataclass(frozen=True, slots=True)
class Announcement:
    part: Part
    # The position for POSITION, the estimate in seconds for EXPECTED_WAIT.
    value: int | None = None


@dataclass(frozen=True, slots=True)
class AnnouncementSettings:
    first_message: bool = True
    periodic_message: bool = True
    periodic_interval_seconds: int = 60
    announce_position: bool = True
    announce_expected_wait: bool = True
    announce_interval_seconds: int = 60


@dataclass(frozen=True, slots=True)
class Situation:
    """The caller's place at this instant, from our own queue order."""

    position: int
    estimate_seconds: float | None
    serving_operators: int


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _parse(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def _int(raw: Any) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


_KNOWN_KEYS = frozenset(
    {
        "first_message_at",
        "status_at",
        "periodic_at",
        "position",
        "estimate_seconds",
        "serving_operators",
        "returned_to_queue",
        "joined_at",
    }
)


@dataclass(frozen=True, slots=True)
class AnnouncementState:
    """What the caller has heard; stored as JSON on the call (`Call.announcement_state`)."""

    first_message_at: datetime | None = None
    status_at: datetime | None = None
    periodic_at: datetime | None = None
    position: int | None = None
    estimate_seconds: int | None = None
    serving_operators: int | None = None
    returned_to_queue: bool = False
    # The first waitUrl fetch: the caller is in their Twilio queue (an operator can bridge now).
    joined_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> AnnouncementState:
        data = data or {}
        return cls(
            first_message_at=_parse(data.get("first_message_at")),
            status_at=_parse(data.get("status_at")),
            periodic_at=_parse(data.get("periodic_at")),
            position=_int(data.get("position")),
            estimate_seconds=_int(data.get("estimate_seconds")),
            serving_operators=_int(data.get("serving_operators")),
            returned_to_queue=bool(data.get("returned_to_queue", False)),
            joined_at=_parse(data.get("joined_at")),
            # Keys other features keep here (e.g. caller options) survive a round trip.
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update(
            first_message_at=_iso(self.first_message_at),
            status_at=_iso(self.status_at),
            periodic_at=_iso(self.periodic_at),
            position=self.position,
            estimate_seconds=self.estimate_seconds,
            serving_operators=self.serving_operators,
            returned_to_queue=self.returned_to_queue,
            joined_at=_iso(self.joined_at),
        )
        return data


@dataclass(frozen=True, slots=True)
class WaitPlan:
    announcements: tuple[Announcement, ...]
    music_seconds: int
    state: AnnouncementState
    joined_now: bool = False

    @property
    def changed_state(self) -> bool:
        return bool(self.announcements) or self.joined_now


def returned_to_queue(state: AnnouncementState) -> AnnouncementState:
    """After a missed offer: tell the caller they kept their place, and give their position at once."""
    return replace(state, returned_to_queue=True, status_at=None)


def plan_wait(
    state: AnnouncementState,
    settings: AnnouncementSettings,
    situation: Situation | Callable[[], Situation],
    entered_queue_at: datetime,
    now: datetime,
) -> WaitPlan:
    """What the caller hears next. `situation` may be a function: the hot path then counts the
    queue only when a status announcement is due, which most waitUrl fetches are not."""
    said: list[Announcement] = []
    changes: dict[str, Any] = {} if state.joined_at else {"joined_at": now}  # one `replace`, at the end

    if state.returned_to_queue:
        said.append(Announcement(Part.RETURNED_TO_QUEUE))
        changes["returned_to_queue"] = False

    if settings.first_message and state.first_message_at is None:
        said.append(Announcement(Part.FIRST_QUEUE_MESSAGE))
        changes["first_message_at"] = now

    periodic_due_at = (state.periodic_at or entered_queue_at) + timedelta(
        seconds=settings.periodic_interval_seconds
    )
    # The first queue message already says what the periodic one says; don't stack them.
    early = timedelta(seconds=DUE_EARLY_SECONDS)
    if settings.periodic_message and now + early >= periodic_due_at and not said:
        said.append(Announcement(Part.PERIODIC_MESSAGE))
        changes["periodic_at"] = now
        periodic_due_at = now + timedelta(seconds=settings.periodic_interval_seconds)

    status_due_at = (
        state.status_at + timedelta(seconds=settings.announce_interval_seconds) if state.status_at else now
    )
    if now + early >= status_due_at and (settings.announce_position or settings.announce_expected_wait):
        if callable(situation):
            situation = situation()
        status: list[Announcement] = []
        if settings.announce_position:
            status.append(Announcement(Part.POSITION, situation.position))
        estimate = None
        if settings.announce_expected_wait:
            estimate = without_unexplained_growth(
                situation.estimate_seconds,
                state.estimate_seconds,
                situation.position,
                state.position,
                situation.serving_operators,
                state.serving_operators,
            )
            if estimate is not None:
                status.append(Announcement(Part.EXPECTED_WAIT, round(estimate)))
        if status:
            said.extend(status)
            changes.update(
                status_at=now,
                position=situation.position,
                estimate_seconds=round(estimate) if estimate is not None else None,
                serving_operators=situation.serving_operators,
            )
            status_due_at = now + timedelta(seconds=settings.announce_interval_seconds)

    if said:
        music = MUSIC_AFTER_SPEECH_SECONDS
    else:
        due = [status_due_at]
        if settings.periodic_message:
            due.append(periodic_due_at)
        until_next = (min(due) - now).total_seconds()
        music = int(min(LONGEST_MUSIC_SECONDS, max(SHORTEST_MUSIC_SECONDS, until_next)))
    new = replace(state, **changes) if changes else state
    return WaitPlan(tuple(said), music, new, joined_now=state.joined_at is None)


# --- caller options: press 1 to be called back, 2 to leave a message ------------------------------

OPTIONS_REPEAT_SECONDS = 120
_OPTIONS_OFFERED_AT = "caller_options_offered_at"


@dataclass(frozen=True, slots=True)
class CallerOptions:
    """What a waiting caller may choose instead of waiting, once they have waited `after_seconds`."""

    callback: bool = False  # also False when the caller's number is withheld: we could not call back
    voicemail: bool = False
    after_seconds: int = 120
    repeat_seconds: int = OPTIONS_REPEAT_SECONDS

    @property
    def offered(self) -> bool:
        return self.callback or self.voicemail


@dataclass(frozen=True, slots=True)
class OptionsPlan:
    listen: bool  # wrap the document in a one-key Gather
    offer: bool  # say the choices now
    state: AnnouncementState


def plan_caller_options(
    state: AnnouncementState, options: CallerOptions, entered_queue_at: datetime, now: datetime
) -> OptionsPlan:
    """From `after_seconds` in the queue the keys work on every document; the choices are said then
    and again every `repeat_seconds` (kept in the state's extra keys)."""
    if not options.offered or now < entered_queue_at + timedelta(seconds=options.after_seconds):
        return OptionsPlan(False, False, state)
    offered_at = _parse(state.extra.get(_OPTIONS_OFFERED_AT))
    if offered_at is not None and now < offered_at + timedelta(seconds=options.repeat_seconds):
        return OptionsPlan(True, False, state)
    extra = dict(state.extra)
    extra[_OPTIONS_OFFERED_AT] = now.isoformat()
    return OptionsPlan(True, True, replace(state, extra=extra))
