"""The simulation's figures on hand-made numbers, and Asterisk's hold-time estimator beside ours."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from queue_app.clock import utc
from queue_app.domain.estimates import (
    AsteriskHoldtime,
    HandlingHistory,
    queue_length_estimate,
    without_unexplained_growth,
)
from queue_app.sim import metrics
from queue_app.sim.metrics import CallRecord

T0 = utc("2026-11-25 09:00")


def at(seconds: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(seconds=seconds)


def test_rase_is_the_root_mean_square_error_over_the_mean_actual_wait() -> None:
    # errors +30, -30, 0 -> rms = sqrt((900 + 900 + 0) / 3) = sqrt(600); mean actual = 100
    pairs = [(130.0, 100.0), (20.0, 50.0), (150.0, 150.0)]
    assert metrics.rase(pairs) == pytest.approx(math.sqrt(600) / 100)
    assert metrics.mean_error(pairs) == pytest.approx(0.0)
    assert metrics.rase([(10.0, 10.0)]) == 0
    assert metrics.rase([]) is None
    assert metrics.rase([(5.0, 0.0)]) is None  # nobody waited: no relative error


def test_p90_is_the_nearest_rank() -> None:
    waits = [float(w) for w in range(1, 11)]  # 1..10
    assert metrics.percentile(waits, 0.9) == 9
    assert metrics.percentile(list(reversed(waits)), 0.9) == 9
    assert metrics.percentile([4.0], 0.9) == 4
    assert metrics.percentile([*waits, 11.0], 0.9) == 10  # ceil(9.9) = 10th of 11
    assert metrics.percentile([], 0.9) is None
    assert metrics.percentile(waits, 1.0) == 10


def test_service_level_counts_answered_within_the_threshold_against_all_offered() -> None:
    answered_waits = [0.0, 5.0, 20.0, 21.0, 60.0]
    assert metrics.service_level(answered_waits, 10, 20) == pytest.approx(0.3)
    assert metrics.service_level([], 0, 20) is None
    assert metrics.occupancy(850.0, 1000.0) == pytest.approx(0.85)
    assert metrics.occupancy(0.0, 0.0) is None


def test_every_call_falls_in_exactly_one_bucket_and_the_books_balance() -> None:
    records = [
        CallRecord("completed", at(0), at(1), at(31), at(91)),
        CallRecord("transferring", at(0), at(1), at(11), None),
        CallRecord("abandoned", at(0), at(1), None, at(61)),
        CallRecord("overflowed", at(0), None, None, at(2)),
        CallRecord("closed", at(0), None, None, at(2)),
        CallRecord("waiting", at(0), at(1)),
    ]
    books = metrics.tally(records)
    assert (books.offered, books.answered, books.abandoned, books.overflowed, books.other) == (6, 2, 1, 1, 2)
    assert books.balanced
    assert [r.wait_seconds for r in records] == [30.0, 10.0, 60.0, None, None, None]
    assert records[0].talk_seconds == 60.0
    assert records[1].talk_seconds == 0.0


def test_logged_in_time_adds_up_intervals() -> None:
    assert metrics.interval_seconds([(at(0), at(3600)), (at(100), at(400)), (at(10), at(5))]) == 3900


def test_asterisk_learns_only_when_a_member_answers_with_an_integer_ewma_of_a_quarter() -> None:
    asterisk = AsteriskHoldtime()
    asterisk.answered(40.9)  # whole seconds: 40
    assert asterisk.holdtime == 40
    asterisk.answered(100)  # nothing completed or abandoned yet: the first sample rule again
    assert asterisk.holdtime == 100
    asterisk.completed()
    asterisk.answered(20)  # (3 * 100 + 20) >> 2 = 80
    assert asterisk.holdtime == 80
    asterisk.abandoned()  # abandoned callers never feed the average
    assert asterisk.holdtime == 80
    asterisk.answered(0)  # (240 + 0) >> 2 = 60
    asterisk.answered(3)  # (180 + 3) >> 2 = 45 (45.75 truncated)
    assert asterisk.holdtime == 45


def test_asterisk_says_minutes_rounded_with_plus_thirty_and_nothing_under_half_a_minute() -> None:
    asterisk = AsteriskHoldtime(holdtime=150, calls_completed=1)
    assert asterisk.announced(0) == (3, 0)  # (150 + 30) / 60
    assert asterisk.announced(100) == (1, 0)  # (180 - 100) / 60 = 1.33 -> 1
    assert asterisk.announced(160) is None  # (180 - 160) / 60 = 0: silently skipped
    assert asterisk.announced(100, round_seconds=15) == (1, 15)  # 80 - 60 = 20 -> 15


def test_asterisks_estimate_grows_without_cause_once_the_caller_waited_longer_than_the_average() -> None:
    asterisk = AsteriskHoldtime(holdtime=120, calls_completed=10)
    said = [asterisk.estimate_seconds(elapsed) for elapsed in (0, 60, 120, 180, 240, 360)]
    assert said == [120, 60, 0, 60, 120, 240]  # labs(): the promise grows while nothing changed
    assert asterisk.announced(400) == (4, 0)  # |150 - 400| / 60 -> "4 minutes" after 6.7 minutes


def test_ours_never_grows_without_cause_for_the_same_caller() -> None:
    history = HandlingHistory(mean_seconds=120.0, samples=20)
    previous, previous_position = None, None
    announced = []
    # The caller stays at position 2 with 2 operators serving while the handling history grows
    # (long calls finish): the raw estimate grows, what the caller hears does not.
    for mean in (120.0, 150.0, 240.0):
        raw = queue_length_estimate(2, 2, HandlingHistory(mean, history.samples))
        said = without_unexplained_growth(raw, previous, 2, previous_position, 2, 2 if previous else None)
        announced.append(said)
        previous, previous_position = said, 2
    assert announced == [120.0, 120.0, 120.0]
    # and it shrinks as the caller moves up
    assert without_unexplained_growth(60.0, 120.0, 1, 2, 2, 2) == 60.0
