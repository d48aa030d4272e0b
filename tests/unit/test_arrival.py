"""The arrival decision: every outcome, its precedence, and what a missing number degrades to."""

from __future__ import annotations

from datetime import timedelta

import pytest

from queue_app.clock import utc
from queue_app.domain.arrival import (
    ArrivalSettings,
    LiveSituation,
    Message,
    Outcome,
    Treatment,
    closing_treatment,
    decide_arrival,
)
from queue_app.domain.hours import HoursStatus
from queue_app.domain.overflow import OverflowRule, OverflowState, QueueLoad

NOW = utc("2026-11-25 09:00")
OPEN = HoursStatus(True, "open", None, None)
STAFFED = LiveSituation(QueueLoad(0), logged_in_operators=2)
NOBODY = LiveSituation(QueueLoad(0), logged_in_operators=0)


def closed(reason: str, message: str | None = None) -> HoursStatus:
    return HoursStatus(False, reason, "label", None, message)  # type: ignore[arg-type]


def test_it_enqueues_when_open_staffed_and_not_overflowing() -> None:
    decision = decide_arrival(OPEN, ArrivalSettings(), STAFFED, NOW)
    assert decision.outcome is Outcome.ENQUEUE
    assert decision.enqueue


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("outside_hours", Message.CLOSED_HOURS),
        ("exception", Message.CLOSED_HOURS),
        ("holiday", Message.CLOSED_HOLIDAY),
        ("closure", Message.CLOSED_CLOSURE),
    ],
)
def test_it_says_the_closing_message_for_each_reason_and_hangs_up(reason: str, message: Message) -> None:
    decision = decide_arrival(closed(reason), ArrivalSettings(), STAFFED, NOW)
    assert (decision.outcome, decision.treatment, decision.reason) == (
        Outcome.CLOSED,
        Treatment.MESSAGE,
        reason,
    )
    assert decision.message is message
    assert decision.forward_to is None


def test_it_keeps_a_temporary_closures_own_message() -> None:
    decision = decide_arrival(closed("closure", "Vi flyttar i dag."), ArrivalSettings(), STAFFED, NOW)
    assert decision.closure_message == "Vi flyttar i dag."
    other = decide_arrival(closed("holiday", "not a closure"), ArrivalSettings(), STAFFED, NOW)
    assert other.closure_message is None


def test_it_forwards_a_closed_queue_when_configured() -> None:
    settings = ArrivalSettings(closed_action="forward", closed_forward_number=" +46701112233 ")
    decision = decide_arrival(closed("outside_hours"), settings, STAFFED, NOW)
    assert (decision.treatment, decision.forward_to) == (Treatment.FORWARD, "+46701112233")


@pytest.mark.parametrize("number", [None, "", "  "])
def test_it_degrades_a_forward_without_a_number_to_the_message(number: str | None) -> None:
    for settings, hours, situation in [
        (ArrivalSettings(closed_action="forward", closed_forward_number=number), closed("holiday"), STAFFED),
        (ArrivalSettings(no_operator_action="forward", no_operator_forward_number=number), OPEN, NOBODY),
        (
            ArrivalSettings(
                overflow=OverflowRule(max_callers=1),
                overflow_action="forward",
                overflow_forward_number=number,
            ),
            OPEN,
            LiveSituation(QueueLoad(1), 1),
        ),
    ]:
        decision = decide_arrival(hours, settings, situation, NOW)
        assert decision.treatment is Treatment.MESSAGE
        assert decision.message is not None
        assert decision.forward_to is None


def test_it_rejects_as_busy_when_the_queue_is_full() -> None:
    settings = ArrivalSettings(overflow=OverflowRule(max_callers=5))
    decision = decide_arrival(OPEN, settings, LiveSituation(QueueLoad(5), 1), NOW)
    assert (decision.outcome, decision.treatment, decision.reason) == (
        Outcome.OVERFLOW,
        Treatment.BUSY,
        "overflow_callers",
    )
    assert decision.overflow.active
    assert decision.overflow.changed_at == NOW


def test_it_forwards_an_overflow_when_the_wait_is_too_long() -> None:
    settings = ArrivalSettings(
        overflow=OverflowRule(max_wait_seconds=300),
        overflow_action="forward",
        overflow_forward_number="+4631",
    )
    situation = LiveSituation(QueueLoad(2, 100, expected_wait_seconds=320), 1)
    decision = decide_arrival(OPEN, settings, situation, NOW)
    assert (decision.treatment, decision.forward_to, decision.reason) == (
        Treatment.FORWARD,
        "+4631",
        "overflow_wait",
    )


def test_it_keeps_refusing_while_the_overflow_is_held_by_hysteresis() -> None:
    settings = ArrivalSettings(overflow=OverflowRule(max_callers=10))
    held = LiveSituation(QueueLoad(9), 1, OverflowState(True, NOW - timedelta(seconds=10)))
    decision = decide_arrival(OPEN, settings, held, NOW)
    assert (decision.outcome, decision.reason) == (Outcome.OVERFLOW, "overflow")
    eased = LiveSituation(QueueLoad(8), 1, OverflowState(True, NOW - timedelta(minutes=5)))
    again = decide_arrival(OPEN, settings, eased, NOW)
    assert again.enqueue
    assert again.overflow == OverflowState(False, NOW)


@pytest.mark.parametrize(
    ("action", "outcome", "treatment"),
    [
        ("forward", Outcome.NO_OPERATOR, Treatment.FORWARD),
        ("close", Outcome.NO_OPERATOR, Treatment.MESSAGE),
        ("queue", Outcome.ENQUEUE, Treatment.ENQUEUE),
    ],
)
def test_it_follows_the_no_operator_action(action: str, outcome: Outcome, treatment: Treatment) -> None:
    settings = ArrivalSettings(no_operator_action=action, no_operator_forward_number="+46709998877")
    decision = decide_arrival(OPEN, settings, NOBODY, NOW)
    assert (decision.outcome, decision.treatment) == (outcome, treatment)
    if action != "queue":
        assert decision.message is Message.NO_OPERATOR
        assert decision.reason == "no_operator"
    staffed = decide_arrival(OPEN, settings, STAFFED, NOW)
    assert staffed.enqueue


def test_it_puts_closed_before_no_operator_before_overflow() -> None:
    settings = ArrivalSettings(
        no_operator_action="forward",
        no_operator_forward_number="+4611",
        overflow=OverflowRule(max_callers=1),
        overflow_action="forward",
        overflow_forward_number="+4622",
    )
    full_and_unstaffed = LiveSituation(QueueLoad(3), 0)
    assert decide_arrival(closed("holiday"), settings, full_and_unstaffed, NOW).outcome is Outcome.CLOSED
    assert decide_arrival(OPEN, settings, full_and_unstaffed, NOW).forward_to == "+4611"
    queue_anyway = ArrivalSettings(no_operator_action="queue", overflow=OverflowRule(max_callers=1))
    assert decide_arrival(OPEN, queue_anyway, full_and_unstaffed, NOW).outcome is Outcome.OVERFLOW


def test_it_serves_waiting_callers_at_closing_only_while_someone_can_answer() -> None:
    assert closing_treatment("serve", logged_in_operators=1) == "serve"
    assert closing_treatment("serve", logged_in_operators=0) == "close"
    assert closing_treatment("close", logged_in_operators=3) == "close"
