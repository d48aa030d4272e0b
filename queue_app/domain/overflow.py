"""Overflow: a queue closes by itself when too many callers wait or the wait is too long.

The rule, with X = `max_callers` and Y = `max_wait_seconds` (either may be unset):

- it **closes** when `waiting >= X` or `wait >= Y`, where `wait` is the longer of the longest
  current wait and the expected wait of a caller joining now (when the estimator can say);
- it **reopens** only when all of these hold, so that it does not flap around the limit:
  `waiting <= X - max(1, X // 5)` (at X = 10: at most 8 waiting; at X = 2: at most 1),
  `wait <= 0.8 * Y`, and at least `reopen_after_seconds` (N) have passed since it closed.

Closing refuses new callers only: callers already waiting are never thrown out. The state is a pair
(active, changed_at) stored on the queue; `next_state` is pure and returns the same value when
nothing changes, so the caller can write it with a conditional UPDATE only on a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

REOPEN_WAIT_FRACTION = 0.8
DEFAULT_REOPEN_AFTER_SECONDS = 60


class OverflowCause(StrEnum):
    CALLERS = "overflow_callers"
    WAIT = "overflow_wait"


@dataclass(frozen=True, slots=True)
class OverflowRule:
    max_callers: int | None = None
    max_wait_seconds: int | None = None
    reopen_after_seconds: int = DEFAULT_REOPEN_AFTER_SECONDS

    @property
    def enabled(self) -> bool:
        return bool(self.max_callers and self.max_callers > 0) or bool(
            self.max_wait_seconds and self.max_wait_seconds > 0
        )

    @property
    def reopen_callers(self) -> int | None:
        """At most this many waiting before the queue may reopen."""
        if not self.max_callers or self.max_callers <= 0:
            return None
        return self.max_callers - max(1, self.max_callers // 5)

    @property
    def reopen_wait_seconds(self) -> float | None:
        if not self.max_wait_seconds or self.max_wait_seconds <= 0:
            return None
        return REOPEN_WAIT_FRACTION * self.max_wait_seconds


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """The queue at one instant: callers waiting, and how long the wait is."""

    waiting: int
    longest_wait_seconds: float = 0.0
    expected_wait_seconds: float | None = None  # for a caller joining now; None: unknown

    @property
    def wait_seconds(self) -> float:
        return max(self.longest_wait_seconds, self.expected_wait_seconds or 0.0)


@dataclass(frozen=True, slots=True)
class OverflowState:
    active: bool = False
    changed_at: datetime | None = None


def overflow_cause(rule: OverflowRule, load: QueueLoad) -> OverflowCause | None:
    """Why the queue would close now (callers first), or None."""
    if rule.max_callers and rule.max_callers > 0 and load.waiting >= rule.max_callers:
        return OverflowCause.CALLERS
    if rule.max_wait_seconds and rule.max_wait_seconds > 0 and load.wait_seconds >= rule.max_wait_seconds:
        return OverflowCause.WAIT
    return None


def has_eased(rule: OverflowRule, load: QueueLoad) -> bool:
    """Both measures are comfortably below their limits (the reopening thresholds)."""
    callers = rule.reopen_callers
    if callers is not None and load.waiting > callers:
        return False
    wait = rule.reopen_wait_seconds
    return wait is None or load.wait_seconds <= wait


def next_state(rule: OverflowRule, state: OverflowState, load: QueueLoad, now: datetime) -> OverflowState:
    """The overflow state at `now`; the same object when nothing changes."""
    if not rule.enabled:
        return OverflowState(False, now) if state.active else state
    if not state.active:
        return OverflowState(True, now) if overflow_cause(rule, load) is not None else state
    held_long_enough = (
        state.changed_at is None or (now - state.changed_at).total_seconds() >= rule.reopen_after_seconds
    )
    if held_long_enough and has_eased(rule, load):
        return OverflowState(False, now)
    return state
