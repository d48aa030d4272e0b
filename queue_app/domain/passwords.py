"""The password policy for a password a person chooses (the invitation's set-password page).

Following NIST SP 800-63B rather than composition rules: long enough, not absurdly long, not one of
the passwords everyone tries first, not the person's own name or address, and not one character (or
a short pattern) repeated. Each problem is a code; the page says it in the person's language.
"""

from __future__ import annotations

import itertools
import re

MIN_LENGTH = 10
MAX_LENGTH = 1024  # scrypt of a megabyte is a denial of service, not a password
MIN_DISTINCT_CHARACTERS = 5

TOO_SHORT = "too_short"
TOO_LONG = "too_long"
TOO_COMMON = "too_common"
PERSONAL = "personal"
REPETITIVE = "repetitive"

# The first guesses of any attacker (the stems of the most common leaked passwords, Swedish ones
# included); a password that is one of these with digits or punctuation around it is refused too.
COMMON_STEMS = frozenset(
    {
        "password",
        "passw0rd",
        "lösenord",
        "losenord",
        "qwerty",
        "qwertyuiop",
        "asdfghjkl",
        "azerty",
        "abc",
        "abcdef",
        "letmein",
        "welcome",
        "välkommen",
        "valkommen",
        "admin",
        "administrator",
        "iloveyou",
        "sommar",
        "vinter",
        "hösten",
        "varen",
        "monkey",
        "dragon",
        "football",
        "fotboll",
        "sunshine",
        "princess",
        "trustno",
        "master",
        "hello",
        "hej",
        "hejsan",
        "secret",
        "hemlig",
        "hemligt",
        "changeme",
        "starwars",
        "superman",
        "batman",
        "koe",
        "kö",
        "twilio",
        "switchboard",
        "växeln",
        "vaxeln",
    }
)
_AROUND = re.compile(r"^[\W\d_]*(.*?)[\W\d_]*$")


def _stem(password: str) -> str:
    match = _AROUND.match(password.lower())
    return match.group(1) if match else password.lower()


def _is_sequence(password: str) -> bool:
    """Digits or letters in a row, like 1234567890 or abcdefghij, forwards or backwards."""
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(password)}
    return len(steps) == 1 and steps <= {1, -1}


def _personal_parts(email: str, name: str) -> set[str]:
    local = email.partition("@")[0]
    parts = {local, *re.split(r"[\W_]+", local), *name.split()}
    return {p.lower() for p in parts if len(p) >= 3}


def problems(password: str, *, email: str = "", name: str = "") -> list[str]:
    """What is wrong with `password` for this person, as codes; empty when it is acceptable."""
    if len(password) > MAX_LENGTH:
        return [TOO_LONG]
    found = []
    if len(password) < MIN_LENGTH:
        found.append(TOO_SHORT)
    lowered = password.lower()
    if not lowered.strip() or _stem(password) in COMMON_STEMS or not _stem(password):
        found.append(TOO_COMMON)
    if any(part in lowered for part in _personal_parts(email, name)):
        found.append(PERSONAL)
    if len(set(lowered)) < MIN_DISTINCT_CHARACTERS or _is_sequence(lowered):
        found.append(REPETITIVE)
    return found
