"""Expected wait: the estimator, and honest rounding of what is said.

The queue-length estimator: a caller at position n (1 = next) among s serving operators whose mean
handling time (talk + wrap-up) is h waits about n * h / s. That is (k + 1) / (s * mu) with k callers
ahead, the conditional mean wait in the M/M/s model (architecture.md, "Expected wait"), so nothing
beats it while the model holds. Three corrections make it hold better where it matters:

- Callers ahead hang up. With exponential patience (rate theta, learnt from the recent books as
  abandonments per second of waiting) the caller moves up one place at rate s * mu + j * theta while
  j - 1 callers are ahead; the caller's own patience counts too, since the promise is judged by the
  callers who are answered. At a peak, when the queue is long, this is what a plain n * h / s misses.
- Every offer rings before someone answers: an operator's cycle is handling + ring, and the caller
  waits through one more ring at the head. The ring is learnt from the books too (an operator's next
  answer after coming free while a caller waited).
- A recent window (the last 100 answered calls, the last 200 departures): the queue's own recent
  service, not a long average.

Operators who are free right now take callers without delay, so the callers they will take are not
counted. An estimate is a promise: with no operator serving, or too little history to know h, we
return None and the caller hears no number at all; and a waiting caller's estimate never grows unless
something got worse for them (`without_unexplained_growth`).

`bench/estimator_replay.py` replays candidates on simulated days in seconds; `flask simulate`
measures the chosen one through the whole product, beside Asterisk's (below).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MIN_HANDLING_SAMPLES = 3
# Beyond this the number means little; the caller hears "more than an hour".
LONGEST_ANNOUNCED_SECONDS = 3600
# The recent window: the last this many answered calls give the handling time, and the last this
# many calls that left the queue (answered or abandoned) the abandonment rate and the ring time.
HANDLING_CALLS = 100
DEPARTED_CALLS = 200
# A gap longer than this between an operator's calls is a pause, not the next offer's ring.
LONGEST_OFFER_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PastCall:
    """A call that left the queue recently: answered (and since ended), or abandoned at `ended_at`."""

    entered_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    operator: int | None = None

    @property
    def waited(self) -> float:
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return max(0.0, (end - self.entered_at).total_seconds())

    @property
    def talk_seconds(self) -> float | None:
        if self.answered_at is None:
            return None
        return (self.ended_at - self.answered_at).total_seconds()


@dataclass(frozen=True, slots=True)
class HandlingHistory:
    """What the recent past says about a queue's service.

    - `mean_seconds`: mean handling time of recently answered calls (talk + wrap-up), over `samples`.
    - `abandon_rate`: callers who hang up per second of waiting (1 / the mean patience).
    - `offer_seconds`: from an operator coming free to the next waiting caller being answered: the
      dispatch and the ring, which every caller waits through once more at the head of the queue.
    """

    mean_seconds: float | None
    samples: int
    abandon_rate: float = 0.0
    offer_seconds: float = 0.0

    @classmethod
    def from_durations(cls, durations: list[float], wrap_up_seconds: float = 0) -> HandlingHistory:
        useful = [d for d in durations if d >= 0]
        if not useful:
            return cls(None, 0)
        return cls(sum(useful) / len(useful) + wrap_up_seconds, len(useful))

    @classmethod
    def from_calls(
        cls,
        calls: Sequence[PastCall],
        wrap_up_seconds: float = 0,
        handling_calls: int = HANDLING_CALLS,
        departed_calls: int = DEPARTED_CALLS,
    ) -> HandlingHistory:
        """From recent calls in the order they left (oldest first)."""
        departed = list(calls)[-departed_calls:]
        answered = [c for c in departed if c.answered_at is not None]
        talks = [c.talk_seconds for c in answered[-handling_calls:] if c.talk_seconds is not None]
        handling = cls.from_durations(talks, wrap_up_seconds)
        return cls(
            handling.mean_seconds,
            handling.samples,
            abandon_rate(departed),
            offer_seconds(answered, wrap_up_seconds),
        )


def abandon_rate(calls: Sequence[PastCall]) -> float:
    """Abandonments per second of waiting: the maximum-likelihood rate of exponential patience, with
    the answered callers' waits as censored observations (they would have waited longer)."""
    waited = sum(c.waited for c in calls)
    abandoned = sum(1 for c in calls if c.answered_at is None)
    return abandoned / waited if waited > 0 else 0.0


def offer_seconds(answered: Sequence[PastCall], wrap_up_seconds: float = 0) -> float:
    """Mean time from an operator's free moment to their next answer, when a caller was waiting."""
    by_answer = sorted(
        ((c.answered_at, c) for c in answered if c.answered_at is not None and c.operator is not None),
        key=lambda pair: pair[0],
    )
    free_at: dict[int, datetime] = {}
    gaps: list[float] = []
    for answered_at, call in by_answer:
        operator = call.operator
        assert operator is not None
        came_free = free_at.get(operator)
        if came_free is not None and call.entered_at <= came_free:
            gap = (answered_at - came_free).total_seconds()
            if 0 <= gap <= LONGEST_OFFER_SECONDS:
                gaps.append(gap)
        free_at[operator] = call.ended_at + timedelta(seconds=wrap_up_seconds)
    return sum(gaps) / len(gaps) if gaps else 0.0


def queue_length_estimate(
    position: int,
    serving_operators: int,
    history: HandlingHistory,
    free_operators: int = 0,
    min_samples: int = MIN_HANDLING_SAMPLES,
) -> float | None:
    """Seconds until a caller at `position` is answered, or None when we cannot stand behind it.

    The caller needs one operator to come free for each caller from the head to themselves that no
    free operator takes at once. With s operators each freeing every h + r seconds (handling, then
    the next ring), and each of the j callers still before (and including) them hanging up at rate
    theta, the next step comes after 1 / (s / (h + r) + j * theta) on average; then their own ring.
    The caller's own patience is counted too (j, not j - 1): the promise is measured on callers who
    are answered, and those are the ones whose steps came soon enough.
    """
    if position < 1 or serving_operators < 1:
        return None
    if history.mean_seconds is None or history.samples < min_samples:
        return None
    steps = max(0, position - max(0, free_operators))
    release_rate = serving_operators / (history.mean_seconds + history.offer_seconds)
    return history.offer_seconds + steps_seconds(steps, release_rate, history.abandon_rate)


def steps_seconds(steps: int, release_rate: float, abandon_rate: float) -> float:
    """sum over j = 1..steps of 1 / (release_rate + j * abandon_rate), in constant time.

    With a = release_rate / abandon_rate the sum is (digamma(a + steps + 1) - digamma(a + 1)) /
    abandon_rate, so a caller at position 10,000 costs the waitUrl no more than one at position 2.
    """
    if steps <= 0:
        return 0.0
    if abandon_rate <= release_rate * 1e-9:  # no one hangs up (or too few to tell the sum apart)
        return steps / release_rate
    a = release_rate / abandon_rate + 1
    return (_digamma(a + steps) - _digamma(a)) / abandon_rate


def _digamma(x: float) -> float:
    """The digamma function for x > 0: the recurrence up to 10, then its asymptotic series."""
    result = 0.0
    while x < 10:
        result -= 1 / x
        x += 1
    inverse = 1 / (x * x)
    series = inverse * (1 / 12 - inverse * (1 / 120 - inverse * (1 / 252 - inverse / 240)))
    return result + math.log(x) - 0.5 / x - series


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
