"""Overflow with hysteresis, judged on sequences of situations at fixed instants."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from queue_app.clock import utc
from queue_app.domain.overflow import (
    OverflowCause,
    OverflowRule,
    OverflowState,
    QueueLoad,
    next_state,
    overflow_cause,
)

T0 = utc("2026-11-25 09:00")


def run(rule: OverflowRule, steps: list[tuple[int, QueueLoad]]) -> list[bool]:
    """Feed (seconds after T0, load) in order; the overflow flag after each step."""
    state = OverflowState()
    seen = []
    for seconds, load in steps:
        state = next_state(rule, state, load, T0 + timedelta(seconds=seconds))
        seen.append(state.active)
    return seen


def test_it_closes_when_x_callers_wait() -> None:
    rule = OverflowRule(max_callers=10)
    assert run(rule, [(0, QueueLoad(9)), (1, QueueLoad(10))]) == [False, True]
    assert overflow_cause(rule, QueueLoad(10)) is OverflowCause.CALLERS


def test_it_closes_when_the_longest_or_the_expected_wait_reaches_y() -> None:
    rule = OverflowRule(max_wait_seconds=600)
    assert not next_state(rule, OverflowState(), QueueLoad(3, 599), T0).active
    assert next_state(rule, OverflowState(), QueueLoad(3, 600), T0).active
    assert next_state(rule, OverflowState(), QueueLoad(3, 100, expected_wait_seconds=650), T0).active
    assert overflow_cause(rule, QueueLoad(3, 100, 650)) is OverflowCause.WAIT


def test_it_does_not_flap_around_the_limit() -> None:
    rule = OverflowRule(max_callers=10, reopen_after_seconds=60)
    # 10 -> closed; 9 and 8 are not eased enough before a minute; 8 after a minute reopens.
    steps = [
        (0, QueueLoad(10)),
        (5, QueueLoad(9)),
        (10, QueueLoad(8)),
        (30, QueueLoad(10)),
        (61, QueueLoad(9)),
    ]
    assert run(rule, steps) == [True, True, True, True, True]
    assert run(rule, [(0, QueueLoad(10)), (59, QueueLoad(8)), (60, QueueLoad(8))]) == [True, True, False]


@pytest.mark.parametrize(("max_callers", "reopens_at"), [(1, 0), (2, 1), (5, 4), (10, 8), (20, 16), (23, 19)])
def test_it_reopens_a_fifth_below_x_and_at_least_one_caller_below(max_callers: int, reopens_at: int) -> None:
    rule = OverflowRule(max_callers=max_callers, reopen_after_seconds=0)
    closed = OverflowState(True, T0)
    assert next_state(rule, closed, QueueLoad(reopens_at + 1), T0).active
    assert not next_state(rule, closed, QueueLoad(reopens_at), T0).active


def test_it_reopens_only_when_the_wait_is_at_most_four_fifths_of_y() -> None:
    rule = OverflowRule(max_callers=10, max_wait_seconds=600, reopen_after_seconds=0)
    closed = OverflowState(True, T0)
    assert next_state(rule, closed, QueueLoad(2, 481), T0).active
    assert not next_state(rule, closed, QueueLoad(2, 480), T0).active
    assert next_state(rule, closed, QueueLoad(9, 10), T0).active, "both measures must have eased"


def test_it_returns_the_same_state_when_nothing_changes() -> None:
    rule = OverflowRule(max_callers=5)
    state = OverflowState(False, T0)
    assert next_state(rule, state, QueueLoad(1), T0 + timedelta(hours=1)) is state
    closed = OverflowState(True, T0)
    assert next_state(rule, closed, QueueLoad(5), T0 + timedelta(hours=1)) is closed


def test_it_reopens_a_queue_whose_limits_were_removed() -> None:
    assert not next_state(OverflowRule(), OverflowState(True, T0), QueueLoad(50, 9999), T0).active
    assert not next_state(OverflowRule(), OverflowState(), QueueLoad(50, 9999), T0).active


def test_it_rides_a_rush_hour_and_settles() -> None:
    rule = OverflowRule(max_callers=10, max_wait_seconds=900, reopen_after_seconds=120)
    waiting = [4, 7, 10, 11, 12, 9, 9, 8, 8, 7, 5, 3]
    steps = [(30 * i, QueueLoad(n, longest_wait_seconds=60.0 * n)) for i, n in enumerate(waiting)]
    flags = run(rule, steps)
    # Closed at 60 s with 10 waiting; 9 is not eased enough; 8 after two minutes reopens it.
    assert flags == [False, False, True, True, True, True, True, False, False, False, False, False]
    assert sum(1 for a, b in itertools.pairwise(flags) if a != b) == 2, "one close, one reopen"
