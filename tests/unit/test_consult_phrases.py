"""The words of a consult and a camp-on (domain/prompts_text.py), in Swedish and English."""

from __future__ import annotations

import pytest

from queue_app.domain import prompts_text


@pytest.mark.parametrize(
    ("language", "name", "reason", "said"),
    [
        ("sv", "Åke Öberg", "busy", "Åke Öberg är upptagen. Du är tillbaka hos den som ringer."),
        ("sv", "", "no_answer", "Kollegan svarar inte. Du är tillbaka hos den som ringer."),
        ("en", "Åke Öberg", "colleague_hung_up", "Åke Öberg hung up. You are back with the caller."),
        ("en", "", "failed", "Your colleague could not be reached. You are back with the caller."),
        ("en", "Åke", "returned", "You are back with the caller."),
        ("de", "Åke", "busy", "Åke är upptagen. Du är tillbaka hos den som ringer."),
    ],
)
def test_the_operator_hears_why_they_are_back(language: str, name: str, reason: str, said: str) -> None:
    assert prompts_text.consult_back(language, name, reason) == said


def test_a_camp_on_without_a_name_speaks_of_the_person_called() -> None:
    assert prompts_text.camp_on_busy("sv", "").startswith("Personen du söker pratar i ett annat samtal")
    assert prompts_text.camp_on_busy("en", "").startswith("The person you are calling is busy")
    assert prompts_text.camp_on_still_busy("sv", "") == (
        "Linjen är fortfarande upptagen. Var vänlig dröj kvar, vi försöker fortfarande koppla dig."
    )
    assert prompts_text.camp_on_still_busy("en", "Bo") == (
        "Bo is still busy. Please hold, we are still trying to put you through."
    )


def test_press_one_in_both_languages() -> None:
    assert prompts_text.press_one("sv") == "Tryck 1 för att ta samtalet."
    assert prompts_text.press_one("en") == "Press 1 to take the call."
