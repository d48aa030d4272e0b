"""Expected wait: a first estimator, and honest rounding of what is said.

The queue-length estimator: a caller at position n (1 = next) among s serving operators whose mean
handling time (talk + wrap-up) is h waits about n * h / s. That is (k + 1) / (s * mu) with k callers
ahead, the conditional mean wait in the M/M/s model (architecture.md, "Expected wait"), so nothing
beats it while the model holds. Operators who are free right now take callers without delay, so
the callers they will take are not counted.

An estimate is a promise: with no operator serving, or too little history to know h, we return None
and the caller hears no number at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

MIN_HANDLING_SAMPLES = 3
# Beyond this the number means little; the caller hears "more than an hour".
LONGEST_ANNOUNCED_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class HandlingHistory:
    """Mean handling time of recently answered calls in a queue, and how many calls it is over."""

    mean_seconds: float | None
    samples: int

    @classmethod
    def from_durations(cls, durations: list[float], wrap_up_seconds: float = 0) -> HandlingHistory:
        useful = [d for d in durations if d >= 0]
        if not useful:
            return cls(None, 0)
        return cls(sum(useful) / len(useful) + wrap_up_seconds, len(useful))


def queue_length_estimate(
    position: int,
    serving_operators: int,
    history: HandlingHistory,
    free_operators: int = 0,
    min_samples: int = MIN_HANDLING_SAMPLES,
) -> float | None:
    """Seconds until a caller at `position` is answered, or None when we cannot stand behind it."""
    if position < 1 or serving_operators < 1:
        return None
    if history.mean_seconds is None or history.samples < min_samples:
        return None
    waiting_for_a_busy_operator = max(0, position - max(0, free_operators))
    return waiting_for_a_busy_operator * history.mean_seconds / serving_operators


def without_unexplained_growth(
    new_estimate: float | None,
    previous_estimate: float | None,
    position: int,
    previous_position: int | None,
    serving_operators: int,
    previous_serving: int | None,
) -> float | None:
    """A waiting caller's estimate never grows unless something got worse for them.

    Growth is explained when the caller moved back (a priority call went ahead) or fewer operators
    serve. Otherwise the earlier, smaller promise stands (Asterisk's estimate creeps upwards).
    """
    if new_estimate is None or previous_estimate is None:
        return new_estimate
    if previous_position is None or previous_serving is None:
        return new_estimate
    explained = position > previous_position or serving_operators < previous_serving
    if new_estimate > previous_estimate and not explained:
        return previous_estimate
    return new_estimate


class WaitKind(StrEnum):
    LESS_THAN_A_MINUTE = "less_than_a_minute"
    MINUTES = "minutes"
    MORE_THAN_AN_HOUR = "more_than_an_hour"


@dataclass(frozen=True, slots=True)
class SpokenWait:
    kind: WaitKind
    minutes: int = 0


def spoken_wait(seconds: float) -> SpokenWait:
    """Round an estimate to what can honestly be said.

    Under a minute: "less than a minute". Up to ten minutes: the nearest whole minute ("about 3
    minutes"). Up to an hour: the nearest five minutes, since more precision would be a false promise.
    Beyond: "more than an hour".
    """
    if seconds < 60:
        return SpokenWait(WaitKind.LESS_THAN_A_MINUTE)
    if seconds > LONGEST_ANNOUNCED_SECONDS:
        return SpokenWait(WaitKind.MORE_THAN_AN_HOUR)
    minutes = seconds / 60
    if minutes <= 10:
        return SpokenWait(WaitKind.MINUTES, max(1, math.floor(minutes + 0.5)))
    return SpokenWait(WaitKind.MINUTES, min(60, 5 * math.floor(minutes / 5 + 0.5)))


# --- the baseline: Asterisk's smoothed hold time ------------------------------------------------


@dataclass(slots=True)
class AsteriskHoldtime:
    """Asterisk app_queue's hold-time estimator, faithfully, flaws included (anchors.md b4).

    `recalc_holdtime` runs only when a member answers, with the answered caller's wait from queue
    entry in whole seconds: the first sample (no call completed or abandoned yet) replaces the
    average, later ones enter an integer EWMA with weight 1/4: `(3 * holdtime + new) >> 2`.
    Abandoned callers never feed it (survivorship bias). What a caller is told ignores their
    position and the staffing, and takes the absolute value of `holdtime - elapsed`, so once a caller
    has waited longer than the average the announced wait grows again.
    """

    holdtime: int = 0
    calls_completed: int = 0
    calls_abandoned: int = 0

    def answered(self, wait_seconds: float) -> None:
        """recalc_holdtime(qe, newholdtime): a member answered a caller who waited `wait_seconds`."""
        new = int(wait_seconds)
        if self.calls_completed + self.calls_abandoned == 0:
            self.holdtime = new
        else:
            self.holdtime = (3 * self.holdtime + new) >> 2

    def completed(self) -> None:
        """An answered call ended (update_queue: callscompleted++)."""
        self.calls_completed += 1

    def abandoned(self) -> None:
        """A caller hung up while queued (record_abandoned: callsabandoned++)."""
        self.calls_abandoned += 1

    def estimate_seconds(self, elapsed_seconds: float) -> int:
        """The estimate before its rounding to minutes: |holdtime - elapsed|, the `labs()` included."""
        return abs(self.holdtime - int(elapsed_seconds))

    def announced(self, elapsed_seconds: float, round_seconds: int = 0) -> tuple[int, int] | None:
        """(minutes, seconds) as say_position computes them; None when Asterisk says nothing (0 and 0).

        C's integer division truncates towards zero, and `labs()` is applied to the quotient.
        """
        remaining = self.holdtime + 30 - int(elapsed_seconds)
        minutes = abs(int(remaining / 60))
        seconds = 0
        if round_seconds:
            seconds = (abs(remaining) - 60 * minutes) // round_seconds * round_seconds
        if minutes + seconds <= 0:
            return None
        return minutes, seconds
