"""Directory search rules: how a typed query is read, which entries match, in what order, and
what availability a colleague shows. Pure: the service fetches candidates with SQL, this ranks them.

A query is a list of folded words; an entry matches when every word is the start of one of its
words (name, department, title, keywords), or when the query looks like a phone number and its
digits occur in one of the entry's numbers. Order, best first:
  0. the name starts with the whole query ("ake ob" -> "Åke Öberg")
  1. every word starts a word of the name ("oberg ake")
  2. the first word starts a word of the name, the rest match anywhere ("ake ekonomi")
  3. every word starts some word ("ekonomi")
  4. only the number matches
then by name, so equal matches read like a phone book.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .text import digits, fold

MAX_TERMS = 6
MAX_QUERY_LENGTH = 200
# Fewer digits than this is more likely part of a word search than a number.
MIN_NUMBER_DIGITS = 3
_NUMBER_PUNCTUATION = set(" +-()/.")

FREE = "free"
BUSY = "busy"
AWAY = "away"
AVAILABILITIES = (FREE, BUSY, AWAY)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    terms: tuple[str, ...]
    number: str | None  # the significant digits when the query looks like a phone number

    @property
    def is_empty(self) -> bool:
        return not self.terms and not self.number


@dataclass(frozen=True, slots=True)
class Candidate:
    id: int
    name: str
    search_text: str
    phone_number: str | None = None
    mobile_number: str | None = None


def parse_query(text: str) -> SearchQuery:
    """Fold the query into words; keep its digits too if it reads as a number ("08-465 004 13")."""
    terms = tuple(dict.fromkeys(fold(text).split()))[:MAX_TERMS]
    stripped = (text or "").strip()
    number = None
    if stripped and all(c.isdigit() or c in _NUMBER_PUNCTUATION for c in stripped):
        # A national "08 …" and an international "+46 8 …" share the digits after the leading zeros.
        significant = digits(stripped).lstrip("0")
        if len(significant) >= MIN_NUMBER_DIGITS:
            number = significant
    return SearchQuery(terms=terms, number=number)


def _starts_a_word(term: str, words: Iterable[str]) -> bool:
    return any(word.startswith(term) for word in words)


def match_tier(query: SearchQuery, candidate: Candidate) -> int | None:
    """0 (best) to 4, or None when the entry does not match."""
    if query.terms:
        name = fold(candidate.name)
        name_words = name.split()
        all_words = candidate.search_text.split()
        if all(_starts_a_word(t, all_words) for t in query.terms):
            if name.startswith(" ".join(query.terms)):
                return 0
            if all(_starts_a_word(t, name_words) for t in query.terms):
                return 1
            if _starts_a_word(query.terms[0], name_words):
                return 2
            return 3
    if query.number and any(
        query.number in digits(n) for n in (candidate.phone_number, candidate.mobile_number) if n
    ):
        return 4
    return None


def rank(query: SearchQuery, candidates: Iterable[Candidate], limit: int) -> list[int]:
    """The ids of the best `limit` matching candidates, best first."""
    scored = []
    for candidate in candidates:
        tier = match_tier(query, candidate)
        if tier is not None:
            scored.append((tier, fold(candidate.name), candidate.id))
    scored.sort()
    return [candidate_id for _tier, _name, candidate_id in scored[:limit]]


@dataclass(frozen=True, slots=True)
class ShownAvailability:
    """What the console shows: free, busy (set by hand, or on a call through us) or away."""

    state: str
    note: str | None
    until: datetime | None
    on_call: bool


def shown_availability(
    stored: str, note: str | None, until: datetime | None, *, on_call: bool, now: datetime
) -> ShownAvailability:
    """An away whose time has passed is over; a call through us makes a free colleague busy."""
    if stored == AWAY and (until is None or until > now):
        return ShownAvailability(AWAY, note, until, on_call)
    if on_call:
        return ShownAvailability(BUSY, None, None, True)
    if stored == BUSY and (until is None or until > now):
        return ShownAvailability(BUSY, note, until, False)
    return ShownAvailability(FREE, None, None, False)
