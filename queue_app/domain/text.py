"""Text folding for search: what a receptionist types and what is stored compare equal.

"Åke Öberg" and "ake oberg" must meet, as must "Karl-Johan" and "karl johan". Folding is
casefolding, removing diacritics (NFKD, then dropping combining marks), spelling out the few Nordic
and European letters that do not decompose (ø, æ, đ, ł, þ), and turning punctuation into spaces.
"""

from __future__ import annotations

import unicodedata

# Letters that NFKD leaves whole; "ß" already becomes "ss" when casefolded.
_SPELLED_OUT = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ł": "l", "þ": "th", "ð": "d"})


def fold(text: str | None) -> str:
    """Lower-cased, without diacritics or punctuation: "Åke Öberg, Ekonomi" -> "ake oberg ekonomi"."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_SPELLED_OUT)
    return " ".join("".join(c if c.isalnum() else " " for c in stripped).split())


def digits(text: str | None) -> str:
    """Only the digits: "+46 8-465 004 13" -> "46846500413"."""
    return "".join(c for c in text or "" if c.isdigit())
