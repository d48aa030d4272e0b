"""The password policy of the set-password page."""

from __future__ import annotations

import pytest

from queue_app.domain import passwords
from queue_app.domain.passwords import PERSONAL, REPETITIVE, TOO_COMMON, TOO_LONG, TOO_SHORT, problems

PERSON = {"email": "karin.lind@exempel.se", "name": "Karin Lind"}


@pytest.mark.parametrize(
    "password", ["correct horse battery staple", "Tre små grisar åt gröt", "x7#Lq9!mZp2w"]
)
def test_it_accepts_long_uncommon_passwords(password: str) -> None:
    assert problems(password, **PERSON) == []


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("kort1!X", TOO_SHORT),
        ("x" * (passwords.MAX_LENGTH + 1), TOO_LONG),
        ("Password123!", TOO_COMMON),
        ("lösenord2026", TOO_COMMON),
        ("!!Sommar2026!!", TOO_COMMON),
        ("1234567890123", TOO_COMMON),  # nothing but digits: no stem at all
        ("karin2026!!Xy", PERSONAL),
        ("xyLIND-forever", PERSONAL),
        ("aaaaaaaaaaaa", REPETITIVE),
        ("abababababab", REPETITIVE),
        ("abcdefghijkl", REPETITIVE),
        ("lkjihgfedcba", REPETITIVE),
    ],
)
def test_it_refuses_a_weak_password_with_its_reason(password: str, problem: str) -> None:
    assert problem in problems(password, **PERSON)


def test_a_too_long_password_is_only_too_long() -> None:
    assert problems("a" * 5000) == [TOO_LONG]


def test_short_name_parts_do_not_count_as_personal() -> None:
    assert problems("jo-mountain-river", email="jo@x.se", name="Jo Ek") == []
