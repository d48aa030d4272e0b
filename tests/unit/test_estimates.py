"""The first expected-wait estimator and the honest rounding of what is said."""

from __future__ import annotations

import pytest

from queue_app.domain.estimates import (
    HandlingHistory,
    SpokenWait,
    WaitKind,
    queue_length_estimate,
    spoken_wait,
    without_unexplained_growth,
)

THREE_MINUTES = HandlingHistory(mean_seconds=180.0, samples=20)


def test_it_estimates_position_times_handling_time_over_serving_operators() -> None:
    # (k + 1) / (s * mu) with k = 3 callers ahead, s = 2, 1/mu = 180 s.
    assert queue_length_estimate(4, 2, THREE_MINUTES) == pytest.approx(360.0)
    assert queue_length_estimate(1, 1, THREE_MINUTES) == pytest.approx(180.0)


def test_it_counts_callers_that_free_operators_will_take_at_once_as_no_wait() -> None:
    assert queue_length_estimate(2, 3, THREE_MINUTES, free_operators=2) == 0
    assert queue_length_estimate(3, 3, THREE_MINUTES, free_operators=1) == pytest.approx(120.0)


@pytest.mark.parametrize(
    ("position", "serving", "history"),
    [
        (1, 0, THREE_MINUTES),  # nobody logged in: no promise at all
        (1, 2, HandlingHistory(None, 0)),  # no history
        (1, 2, HandlingHistory(200.0, 2)),  # too little history
        (0, 2, THREE_MINUTES),  # not in the queue
    ],
)
def test_it_says_nothing_it_cannot_stand_behind(
    position: int, serving: int, history: HandlingHistory
) -> None:
    assert queue_length_estimate(position, serving, history) is None


def test_it_adds_wrap_up_to_the_handling_time_of_history() -> None:
    history = HandlingHistory.from_durations([100, 200, 300, -5], wrap_up_seconds=30)
    assert history.samples == 3
    assert history.mean_seconds == pytest.approx(230.0)
    assert HandlingHistory.from_durations([]) == HandlingHistory(None, 0)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, SpokenWait(WaitKind.LESS_THAN_A_MINUTE)),
        (59.9, SpokenWait(WaitKind.LESS_THAN_A_MINUTE)),
        (60, SpokenWait(WaitKind.MINUTES, 1)),
        (89, SpokenWait(WaitKind.MINUTES, 1)),
        (90, SpokenWait(WaitKind.MINUTES, 2)),  # half rounds up, not to even
        (150, SpokenWait(WaitKind.MINUTES, 3)),
        (200, SpokenWait(WaitKind.MINUTES, 3)),
        (600, SpokenWait(WaitKind.MINUTES, 10)),
        (13 * 60, SpokenWait(WaitKind.MINUTES, 15)),
        (22 * 60, SpokenWait(WaitKind.MINUTES, 20)),
        (3600, SpokenWait(WaitKind.MINUTES, 60)),
        (3601, SpokenWait(WaitKind.MORE_THAN_AN_HOUR)),
    ],
)
def test_it_rounds_what_is_said_honestly(seconds: float, expected: SpokenWait) -> None:
    assert spoken_wait(seconds) == expected


def test_it_keeps_an_earlier_smaller_promise_when_nothing_got_worse() -> None:
    assert without_unexplained_growth(300, 240, 2, 2, 1, 1) == 240
    assert without_unexplained_growth(200, 240, 2, 2, 1, 1) == 200


def test_it_lets_the_estimate_grow_when_the_caller_moved_back_or_operators_left() -> None:
    assert without_unexplained_growth(300, 240, 3, 2, 1, 1) == 300
    assert without_unexplained_growth(300, 240, 2, 2, 1, 2) == 300


def test_it_has_nothing_to_compare_on_the_first_announcement() -> None:
    assert without_unexplained_growth(300, None, 2, None, 1, None) == 300
    assert without_unexplained_growth(None, 240, 2, 2, 1, 1) is None
