"""Message templates: the fields they may use, filling them from a call, and what an SMS costs.

A template is text with `{field}` placeholders ("{caller} called at {time} about {topic}, please call
back on {number}"); a literal brace is written `{{` or `}}` (Python's `str.format` syntax, which the
configuration file and the admin pages use too). Only the fields in `TEMPLATE_FIELDS` exist: anything
else is refused with its name, so a typo such as `{topik}` is caught when the template is saved, not
when a colleague receives "{topik}".

Pure: no Flask, no database. Times come in as aware UTC datetimes and are shown in the
organisation's time zone.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

# The one list of fields; services/config_schema.py imports it.
TEMPLATE_FIELDS = ("caller", "number", "time", "topic", "message", "operator", "queue")

# Twilio's limit on a message body (twilio.md §5), and what one segment holds.
MAX_SMS_LENGTH = 1600
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

# GSM 03.38: the basic set costs one septet a character, the extension set two (escape + char).
# Swedish å, ä, ö, é and ü are all in the basic set, so most Swedish text stays GSM-7.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

_LEFT_OVER = re.compile(r"\{(" + "|".join(TEMPLATE_FIELDS) + r")\}")


class TemplateError(ValueError):
    """A template that cannot be used; the message names what is wrong."""


class UnknownField(TemplateError):
    def __init__(self, field: str) -> None:
        super().__init__(f"unknown field {{{field}}}; the fields are {', '.join(TEMPLATE_FIELDS)}")
        self.field = field


class MalformedTemplate(TemplateError):
    pass


def fields_used(text: str | None) -> tuple[str, ...]:
    """The fields `text` uses, in order of first use; raises `UnknownField` or `MalformedTemplate`."""
    if not text:
        return ()
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise MalformedTemplate(f"malformed template ({exc}); write a literal brace as {{{{ or }}}}") from exc
    used: list[str] = []
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        # "{time:%H}" or "{caller!r}" would format values in ways the fields do not promise.
        if name not in TEMPLATE_FIELDS or spec or conversion:
            raise UnknownField(name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else ""))
        if name not in used:
            used.append(name)
    return tuple(used)


def fill(text: str | None, values: Mapping[str, str]) -> str:
    """`text` with each `{field}` replaced by its value (a missing value is empty); `{{` becomes `{`."""
    if not text:
        return ""
    fields_used(text)
    pieces: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(text):
        pieces.append(literal)
        if name is not None:
            pieces.append(values.get(name) or "")
    return "".join(pieces)


def placeholders_left(text: str) -> tuple[str, ...]:
    """Fields still written as `{field}` in a filled (and edited) message: someone forgot one."""
    found: list[str] = []
    for match in _LEFT_OVER.finditer(text):
        if match.group(1) not in found:
            found.append(match.group(1))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What is known about the call a message is about (all optional: a message may be about none)."""

    caller_name: str | None = None  # when the number is known, e.g. a colleague's own phone
    caller_number: str | None = None
    callback_number: str | None = None
    arrived_at: datetime | None = None  # UTC
    queue_name: str | None = None


def local_time(at: datetime, now: datetime, timezone: str) -> str:
    """ "10:05" when `at` is today where the organisation is, else "2026-11-24 10:05"."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def field_values(facts: CallFacts, *, operator: str, timezone: str, now: datetime) -> dict[str, str]:
    """Every field's value from the call; {topic} and {message} are for the operator to write."""
    return {
        "caller": facts.caller_name or facts.caller_number or "",
        "number": facts.callback_number or facts.caller_number or "",
        "time": local_time(facts.arrived_at or now, now, timezone),
        "topic": "",
        "message": "",
        "operator": operator,
        "queue": facts.queue_name or "",
    }


@dataclass(frozen=True, slots=True)
class Segments:
    """How an SMS body is sent: its encoding, the number of segments, and the units it uses."""

    encoding: str  # "GSM-7" or "UCS-2"
    count: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


def sms_segments(body: str) -> Segments:
    """GSM-7 when every character is in GSM 03.38 (160 septets, 153 a part), else UCS-2 (70, 67).

    A part never splits an escape pair or a surrogate pair, so a long text may need one part more
    than its length alone suggests.
    """
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body):
        sizes = [2 if c in GSM7_EXTENSION else 1 for c in body]
        return _count("GSM-7", sizes, GSM7_SINGLE, GSM7_PART)
    sizes = [2 if ord(c) > 0xFFFF else 1 for c in body]
    return _count("UCS-2", sizes, UCS2_SINGLE, UCS2_PART)


def _count(encoding: str, sizes: list[int], single: int, part: int) -> Segments:
    units = sum(sizes)
    if units == 0:
        return Segments(encoding, 0, 0)
    if units <= single:
        return Segments(encoding, 1, units)
    count, used = 1, 0
    for size in sizes:
        if used + size > part:
            count, used = count + 1, 0
        used += size
    return Segments(encoding, count, units)
