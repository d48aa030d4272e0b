"""The figures a call-centre manager reads after a day, computed from plain records (no database).

`simulate.py` reads the app's books (Call rows and events) into `CallRecord`s and operator log-in
intervals, and everything here is arithmetic on those: so the definitions can be read and tested
with hand-made numbers.

Definitions (the ones used in the README's "Simulating a day"):
- offered: every call the product recorded; each one is exactly one of answered (an operator picked
  up), abandoned (the caller hung up before that), overflowed (sent away by the queue's overflow
  rule) or other (closed, rejected, not ended...), so answered + abandoned + overflowed + other =
  offered always.
- wait: from entering the queue to being answered (answered calls) or hanging up (abandoned).
- service level: answered within N seconds / offered (the strict form: abandoned and overflowed calls
  count against it).
- mean and 90th percentile wait: over answered calls; the percentile is the nearest-rank one (the
  smallest wait that at least 90 % of answered callers did not exceed).
- occupancy: talk time / logged-in time, over all operators.
- RASE of an estimator: sqrt(mean((announced - actual)^2)) / mean(actual) over the callers it was
  measured on, i.e. the root-mean-square error relative to the mean real wait.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

ANSWERED = "answered"
ABANDONED = "abandoned"
OVERFLOWED = "overflowed"
OTHER = "other"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as the product's books tell it."""

    state: str
    arrived_at: datetime
    entered_queue_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    first_estimate_seconds: float | None = None

    @property
    def outcome(self) -> str:
        if self.answered_at is not None:
            return ANSWERED
        if self.state == "abandoned":
            return ABANDONED
        if self.state == "overflowed":
            return OVERFLOWED
        return OTHER

    @property
    def queue_start(self) -> datetime:
        return self.entered_queue_at or self.arrived_at

    @property
    def wait_seconds(self) -> float | None:
        """Answered: time to answer; abandoned: time until hanging up; else None."""
        if self.answered_at is not None:
            return max(0.0, (self.answered_at - self.queue_start).total_seconds())
        if self.state == "abandoned" and self.ended_at is not None:
            return max(0.0, (self.ended_at - self.queue_start).total_seconds())
        return None

    @property
    def talk_seconds(self) -> float:
        if self.answered_at is None or self.ended_at is None:
            return 0.0
        return max(0.0, (self.ended_at - self.answered_at).total_seconds())


@dataclass(frozen=True, slots=True)
class Books:
    offered: int
    answered: int
    abandoned: int
    overflowed: int
    other: int

    @property
    def balanced(self) -> bool:
        return self.answered + self.abandoned + self.overflowed + self.other == self.offered


def tally(records: Iterable[CallRecord]) -> Books:
    counts = {ANSWERED: 0, ABANDONED: 0, OVERFLOWED: 0, OTHER: 0}
    offered = 0
    for record in records:
        offered += 1
        counts[record.outcome] += 1
    return Books(offered, counts[ANSWERED], counts[ABANDONED], counts[OVERFLOWED], counts[OTHER])


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    if not values:
        return None
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[rank - 1]


def service_level(answered_waits: Sequence[float], offered: int, threshold_seconds: float) -> float | None:
    """Answered within `threshold_seconds` / offered."""
    if offered <= 0:
        return None
    return sum(1 for w in answered_waits if w <= threshold_seconds) / offered


def occupancy(talk_seconds: float, logged_in_seconds: float) -> float | None:
    if logged_in_seconds <= 0:
        return None
    return talk_seconds / logged_in_seconds


def rase(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Relative root-mean-square error of `(announced, actual)` pairs; None without pairs or waits."""
    items = list(pairs)
    if not items:
        return None
    actual_mean = sum(actual for _, actual in items) / len(items)
    if actual_mean <= 0:
        return None
    mse = sum((announced - actual) ** 2 for announced, actual in items) / len(items)
    return math.sqrt(mse) / actual_mean


def mean_error(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Mean of announced - actual (the bias: positive means the promise was too long)."""
    items = list(pairs)
    return sum(a - b for a, b in items) / len(items) if items else None


def interval_seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    return sum(max(0.0, (end - start).total_seconds()) for start, end in intervals)
