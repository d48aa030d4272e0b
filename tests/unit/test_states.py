"""The call and operator state machines: what may follow what."""

from __future__ import annotations

import pytest

from queue_app.domain.states import (
    FINAL_CALL_STATES,
    Call,
    Operator,
    can_move,
    is_final,
    operator_can_move,
)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("waiting", "offered"),
        ("offered", "connected"),
        ("offered", "waiting"),  # a missed offer: back to the queue, same place
        ("offered", "abandoned"),
        ("connected", "completed"),
        ("connected", "transferring"),
        ("transferring", "camped_on"),
        ("transferring", "offered"),  # recall to the transferring operator
        ("camped_on", "transferring"),
        ("camped_on", "waiting"),
    ],
)
def test_it_allows_the_moves_of_a_call_through_distribution(current: str, target: str) -> None:
    assert can_move(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("waiting", "connected"),  # never connected without an offer
        ("offered", "completed"),
        ("offered", "offered"),  # staying put is not a move: a duplicate is ignored
        ("completed", "waiting"),
        ("abandoned", "offered"),
    ],
)
def test_it_refuses_illegal_or_duplicate_call_moves(current: str, target: str) -> None:
    assert not can_move(current, target)


def test_it_lets_no_call_leave_a_final_state() -> None:
    for final in FINAL_CALL_STATES:
        assert is_final(final)
        assert not any(can_move(final, target) for target in Call)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("offline", "available"),
        ("available", "ringing"),
        ("ringing", "on_call"),
        ("ringing", "available"),  # missed offer
        ("ringing", "offline"),  # logged out automatically after X misses
        ("on_call", "wrap_up"),
        ("wrap_up", "available"),
        ("wrap_up", "wrap_up"),  # asking for more wrap-up time
        ("paused", "available"),
    ],
)
def test_it_allows_the_moves_of_an_operator(current: str, target: str) -> None:
    assert operator_can_move(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("offline", "ringing"),
        ("paused", "ringing"),
        ("wrap_up", "ringing"),  # no call is offered during wrap-up
        ("on_call", "ringing"),  # never two calls at once
        ("on_call", "offline"),
        ("available", "on_call"),
    ],
)
def test_it_refuses_moves_that_would_ring_a_busy_operator(current: str, target: str) -> None:
    assert not operator_can_move(current, target)


def test_it_only_reaches_ringing_from_available() -> None:
    assert [s for s in Operator if operator_can_move(s, Operator.RINGING)] == [Operator.AVAILABLE]
