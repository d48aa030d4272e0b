"""The expected-wait estimator, from hand-made histories, and the honest rounding of what is said."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queue_app.domain.announcements import AnnouncementSettings, AnnouncementState, Part, Situation, plan_wait
from queue_app.domain.estimates import (
    HandlingHistory,
    PastCall,
    SpokenWait,
    WaitKind,
    abandon_rate,
    offer_seconds,
    queue_length_estimate,
    spoken_wait,
    steps_seconds,
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


# --- abandonment, the ring, and a recent window --------------------------------------------------

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def answered(entered: float, answered_at: float, ended: float, operator: int | None = 1) -> PastCall:
    return PastCall(t(entered), t(answered_at), t(ended), operator)


def abandoned(entered: float, ended: float) -> PastCall:
    return PastCall(t(entered), None, t(ended))


def test_it_counts_callers_ahead_who_will_hang_up() -> None:
    # One operator handling 100 s, callers hang up at 1 per 100 s of waiting (mean patience 100 s).
    # Position 2: two steps, at rates 1/100 + 2/100 (both may still hang up) and 1/100 + 1/100.
    history = HandlingHistory(mean_seconds=100.0, samples=20, abandon_rate=0.01)
    assert queue_length_estimate(2, 1, history) == pytest.approx(100 / 3 + 50)
    assert queue_length_estimate(2, 1, replace(history, abandon_rate=0.0)) == pytest.approx(200)


def test_it_adds_the_ring_to_each_operators_cycle_and_once_for_the_caller() -> None:
    # Two operators each free every 100 + 10 s; then the caller's own ring of 10 s.
    history = HandlingHistory(mean_seconds=100.0, samples=20, offer_seconds=10.0)
    assert queue_length_estimate(3, 2, history) == pytest.approx(3 * 110 / 2 + 10)
    # A free operator takes the caller at once: only the ring is left.
    assert queue_length_estimate(1, 2, history, free_operators=1) == pytest.approx(10)


def test_it_promises_less_the_more_callers_give_up_and_more_the_further_back() -> None:
    history = HandlingHistory(mean_seconds=180.0, samples=50, offer_seconds=3.0)
    by_rate = [queue_length_estimate(20, 4, replace(history, abandon_rate=r)) for r in (0, 0.002, 0.01, 0.05)]
    assert by_rate == sorted(by_rate, reverse=True) and len(set(by_rate)) == 4
    by_position = [queue_length_estimate(n, 4, replace(history, abandon_rate=0.01)) for n in range(1, 30)]
    assert by_position == sorted(by_position) and len(set(by_position)) == len(by_position)


def test_it_announces_nothing_when_no_operator_is_logged_in_however_rich_the_history() -> None:
    history = HandlingHistory(mean_seconds=180.0, samples=100, abandon_rate=0.01, offer_seconds=3.0)
    assert queue_length_estimate(1, 0, history) is None
    assert queue_length_estimate(5, 0, history, free_operators=0) is None
    assert queue_length_estimate(5, -1, history) is None


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 20_000),
    st.floats(1e-4, 10, allow_nan=False),
    st.one_of(st.just(0.0), st.floats(1e-7, 1, allow_nan=False)),
)
def test_its_closed_form_agrees_with_the_plain_sum(steps: int, release: float, abandon: float) -> None:
    plain = math.fsum(1 / (release + j * abandon) for j in range(1, steps + 1))
    assert steps_seconds(steps, release, abandon) == pytest.approx(plain, rel=1e-6, abs=1e-9)


def test_it_learns_handling_time_from_the_last_answered_calls_only() -> None:
    calls = [answered(0, 10, 10 + talk) for talk in (1000, 100, 200, 300)]
    history = HandlingHistory.from_calls(calls, wrap_up_seconds=30, handling_calls=3)
    assert (history.mean_seconds, history.samples) == (230.0, 3)  # the 1000 s call is too old


def test_it_learns_the_abandonment_rate_per_second_of_waiting() -> None:
    # Waits: 40 and 60 s answered (they would have waited longer), 100 s abandoned: 1 per 200 s.
    calls = [answered(0, 40, 100, None), abandoned(10, 110), answered(50, 110, 200, None)]
    assert abandon_rate(calls) == pytest.approx(1 / 200)
    assert HandlingHistory.from_calls(calls).abandon_rate == pytest.approx(1 / 200)
    assert abandon_rate([answered(0, 40, 100)]) == 0.0
    assert abandon_rate([]) == 0.0
    assert abandon_rate([abandoned(5, 5)]) == 0.0  # no waiting at all: nothing to divide by


def test_it_learns_the_ring_from_operators_who_came_free_while_a_caller_waited() -> None:
    calls = [
        answered(0, 5, 100, operator=1),
        answered(50, 112, 300, operator=1),  # waited since 50, operator free at 100 + 2 wrap-up: 10 s
        answered(60, 20, 200, operator=2),
        answered(150, 206, 400, operator=2),  # free at 202: 4 s
        answered(500, 510, 600, operator=2),  # nobody waited when operator 2 came free: idle, not ring
        answered(300, 900, 950, operator=1),  # a 598 s gap is a pause, not a ring
        answered(0, 1, 50, operator=None),  # no operator on the books (a forward, an import)
    ]
    assert offer_seconds(calls, wrap_up_seconds=2) == pytest.approx(7.0)
    assert offer_seconds(calls[:1]) == 0.0
    assert HandlingHistory.from_calls(calls, wrap_up_seconds=2).offer_seconds == pytest.approx(7.0)


def test_it_reads_a_window_of_the_most_recent_departures() -> None:
    old = [abandoned(0, 100)] * 10  # long ago, a bad hour
    recent = [answered(200 + i, 210 + i, 300 + i, None) for i in range(5)]
    assert HandlingHistory.from_calls(old + recent, departed_calls=5).abandon_rate == 0.0
    assert HandlingHistory.from_calls(old + recent).abandon_rate > 0


def test_it_says_nothing_from_a_history_without_answered_calls() -> None:
    history = HandlingHistory.from_calls([abandoned(0, 100), abandoned(10, 50)])
    assert history.mean_seconds is None
    assert queue_length_estimate(1, 3, history) is None


# --- a waiting caller's estimate never grows without a cause -------------------------------------

histories = st.builds(
    HandlingHistory,
    mean_seconds=st.floats(10, 600),
    samples=st.integers(3, 100),
    abandon_rate=st.one_of(st.just(0.0), st.floats(1e-4, 0.05)),
    offer_seconds=st.floats(0, 20),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 2), histories), max_size=12))
def test_an_estimate_never_grows_for_a_waiting_caller_without_a_cause(
    steps: list[tuple[int, int, int, HandlingHistory]],
) -> None:
    # The caller moves up (or stays), operators join (or stay), and the queue's history changes in
    # any way at all (long calls end, callers hang up): what the caller hears never grows.
    position, serving, state = 15, 3, AnnouncementState()
    said: list[int] = []
    for minute, (moved_up, joined, free, history) in enumerate(steps):
        position, serving = max(1, position - moved_up), serving + joined
        estimate = queue_length_estimate(position, serving, history, free_operators=free)
        plan = plan_wait(
            state, AnnouncementSettings(), Situation(position, estimate, serving), T0, t(60 * minute)
        )
        said += [a.value for a in plan.announcements if a.part is Part.EXPECTED_WAIT]  # type: ignore[misc]
        state = AnnouncementState.from_json(plan.state.to_json())
    assert said == sorted(said, reverse=True)


def test_an_estimate_grows_when_the_caller_is_moved_back_or_operators_leave() -> None:
    history = HandlingHistory(mean_seconds=120.0, samples=20, abandon_rate=0.005, offer_seconds=3.0)
    first = plan_wait(AnnouncementState(), AnnouncementSettings(), Situation(3, 200.0, 2), T0, T0)
    for situation in (Situation(4, 260.0, 2), Situation(3, 300.0, 1)):  # a priority call; an operator left
        later = plan_wait(first.state, AnnouncementSettings(), situation, T0, t(60))
        assert [a.value for a in later.announcements if a.part is Part.EXPECTED_WAIT] == [
            round(situation.estimate_seconds or 0)
        ]
    assert queue_length_estimate(3, 2, history) < queue_length_estimate(3, 1, history)  # type: ignore[operator]
