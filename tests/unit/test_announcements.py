"""What a waiting caller hears, planned at fixed instants, and how it is phrased."""

from __future__ import annotations

from datetime import timedelta

import pytest

from queue_app.clock import utc
from queue_app.domain import prompts_text
from queue_app.domain.announcements import (
    Announcement,
    AnnouncementSettings,
    AnnouncementState,
    Part,
    Situation,
    WaitPlan,
    plan_wait,
    returned_to_queue,
)
from queue_app.domain.estimates import SpokenWait, WaitKind, spoken_wait
from queue_app.domain.prompts_text import Phrase

ENTERED = utc("2026-11-25 09:00")
DEFAULTS = AnnouncementSettings()


def at(seconds: float):  # type: ignore[no-untyped-def]
    return ENTERED + timedelta(seconds=seconds)


def parts(plan: WaitPlan) -> list[Part]:
    return [a.part for a in plan.announcements]


def run(
    fetch_times: list[float],
    settings: AnnouncementSettings = DEFAULTS,
    situation: Situation = Situation(position=3, estimate_seconds=200, serving_operators=2),
) -> list[WaitPlan]:
    """Fetch the waitUrl at these seconds after entering, carrying the state, as Twilio would."""
    state = AnnouncementState()
    plans = []
    for t in fetch_times:
        plan = plan_wait(state, settings, situation, ENTERED, at(t))
        plans.append(plan)
        state = AnnouncementState.from_json(plan.state.to_json())  # through JSON, as stored
    return plans


def test_it_says_the_first_message_then_position_and_wait_on_the_first_fetch() -> None:
    (plan,) = run([0])
    assert plan.announcements == (
        Announcement(Part.FIRST_QUEUE_MESSAGE),
        Announcement(Part.POSITION, 3),
        Announcement(Part.EXPECTED_WAIT, 200),
    )
    assert plan.music_seconds == 20


def test_it_plays_music_only_until_the_next_announcement_is_due() -> None:
    plans = run([0, 28, 54, 80])
    assert parts(plans[1]) == []
    assert plans[1].music_seconds == 30  # the next is due at 60 s; documents last 20-30 s
    assert parts(plans[2]) == []
    assert plans[2].music_seconds == 20
    assert parts(plans[3]) == [Part.PERIODIC_MESSAGE, Part.POSITION, Part.EXPECTED_WAIT]


def test_it_says_what_is_due_a_moment_early_rather_than_a_whole_document_late() -> None:
    # Music in whole 10 s tracks made the document end 0.05 s before the minute: the caller would
    # otherwise hear the next announcement only 20 s later, at 80 s.
    plans = run([0, 29.95, 59.95, 84])
    assert parts(plans[2]) == [Part.PERIODIC_MESSAGE, Part.POSITION, Part.EXPECTED_WAIT]
    assert parts(plans[3]) == []
    assert parts(run([0, 30, 54.9])[2]) == []  # more than 5 s early: not yet


def test_it_says_the_first_message_once_only() -> None:
    plans = run([0, 30, 60, 90, 120, 150])
    said = [p for plan in plans for p in parts(plan)]
    assert said.count(Part.FIRST_QUEUE_MESSAGE) == 1
    assert said.count(Part.PERIODIC_MESSAGE) == 2  # at 60 and 120 s
    assert said.count(Part.POSITION) == 3  # at 0, 60 and 120 s


def test_it_follows_the_queues_intervals() -> None:
    settings = AnnouncementSettings(periodic_interval_seconds=90, announce_interval_seconds=45)
    plans = run([0, 25, 50, 75, 100], settings)
    assert [parts(p) for p in plans] == [
        [Part.FIRST_QUEUE_MESSAGE, Part.POSITION, Part.EXPECTED_WAIT],
        [],
        [Part.POSITION, Part.EXPECTED_WAIT],
        [],
        [Part.PERIODIC_MESSAGE, Part.POSITION, Part.EXPECTED_WAIT],
    ]


def test_it_says_nothing_the_queue_switched_off() -> None:
    settings = AnnouncementSettings(
        first_message=False, periodic_message=False, announce_position=False, announce_expected_wait=False
    )
    plans = run([0, 30, 60, 90], settings)
    assert all(p.announcements == () for p in plans)
    assert all(20 <= p.music_seconds <= 30 for p in plans)


def test_it_gives_the_position_but_no_wait_when_there_is_no_estimate() -> None:
    (plan,) = run([0], situation=Situation(position=1, estimate_seconds=None, serving_operators=0))
    assert parts(plan) == [Part.FIRST_QUEUE_MESSAGE, Part.POSITION]
    assert plan.state.estimate_seconds is None


def test_it_never_lets_a_waiting_callers_estimate_grow_without_a_cause() -> None:
    state = plan_wait(AnnouncementState(), DEFAULTS, Situation(2, 240, 1), ENTERED, at(0)).state
    later = plan_wait(state, DEFAULTS, Situation(2, 300, 1), ENTERED, at(60))
    assert Announcement(Part.EXPECTED_WAIT, 240) in later.announcements
    moved_back = plan_wait(state, DEFAULTS, Situation(3, 300, 1), ENTERED, at(60))
    assert Announcement(Part.EXPECTED_WAIT, 300) in moved_back.announcements


def test_it_tells_a_returning_caller_they_kept_their_place_and_where_they_are() -> None:
    (first,) = run([0])
    state = returned_to_queue(first.state)
    plan = plan_wait(state, DEFAULTS, Situation(1, 30, 1), ENTERED, at(20))
    assert parts(plan) == [Part.RETURNED_TO_QUEUE, Part.POSITION, Part.EXPECTED_WAIT]
    assert plan_wait(plan.state, DEFAULTS, Situation(1, 30, 1), ENTERED, at(45)).announcements == ()


def test_it_keeps_other_features_keys_in_the_stored_state() -> None:
    state = AnnouncementState.from_json(
        {"caller_options_offered_at": "x", "position": 4, "status_at": "junk"}
    )
    assert state.position == 4
    assert state.status_at is None
    assert state.to_json()["caller_options_offered_at"] == "x"


# --- phrasing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "n", "text"),
    [
        ("sv", 1, "Du är först i kön."),
        ("sv", 2, "Du är nummer två i kön."),
        ("sv", 21, "Du är nummer tjugoett i kön."),
        ("sv", 137, "Du är nummer hundratrettiosju i kön."),
        ("en", 1, "You are first in the queue."),
        ("en", 2, "You are number two in the queue."),
        ("en", 42, "You are number forty-two in the queue."),
    ],
)
def test_it_phrases_the_position(language: str, n: int, text: str) -> None:
    assert prompts_text.position(language, n) == text


@pytest.mark.parametrize(
    ("language", "seconds", "text"),
    [
        ("sv", 40, "Beräknad väntetid är mindre än en minut."),
        ("sv", 70, "Beräknad väntetid är ungefär en minut."),
        ("sv", 200, "Beräknad väntetid är ungefär tre minuter."),
        ("sv", 21 * 60, "Beräknad väntetid är ungefär tjugo minuter."),
        ("sv", 2 * 3600, "Beräknad väntetid är mer än en timme."),
        ("en", 40, "The estimated waiting time is less than a minute."),
        ("en", 70, "The estimated waiting time is about one minute."),
        ("en", 200, "The estimated waiting time is about three minutes."),
        ("en", 2 * 3600, "The estimated waiting time is more than an hour."),
    ],
)
def test_it_phrases_the_expected_wait(language: str, seconds: int, text: str) -> None:
    assert prompts_text.expected_wait(language, spoken_wait(seconds)) == text


def test_it_uses_the_common_gender_for_minutes() -> None:
    assert prompts_text.expected_wait("sv", SpokenWait(WaitKind.MINUTES, 21)).endswith("tjugoen minuter.")


def test_it_welcomes_in_the_queues_language() -> None:
    assert prompts_text.welcome("sv", "Exempelbolaget") == "Välkommen till Exempelbolaget."
    assert prompts_text.welcome("en", "Exempelbolaget") == "Welcome to Exempelbolaget."
    assert prompts_text.welcome("de", "Exempelbolaget") == "Välkommen till Exempelbolaget."


def test_it_has_every_fixed_phrase_in_both_languages() -> None:
    variable = {Phrase.WELCOME, Phrase.POSITION, Phrase.EXPECTED_WAIT}
    for phrase in set(Phrase) - variable:
        sv, en = prompts_text.bilingual(phrase)
        assert sv[0] == "sv" and sv[1] and en[0] == "en" and en[1] and sv[1] != en[1]


def test_it_asks_for_the_situation_only_when_a_status_announcement_is_due() -> None:
    asked: list[int] = []

    def situation() -> Situation:
        asked.append(1)
        return Situation(3, 120, 1)

    plan = plan_wait(AnnouncementState(), DEFAULTS, situation, ENTERED, at(0))
    assert asked == [1]
    assert Announcement(Part.POSITION, 3) in plan.announcements

    plan_wait(plan.state, DEFAULTS, situation, ENTERED, at(20))
    assert asked == [1], "nothing was due, so the queue was not counted"
