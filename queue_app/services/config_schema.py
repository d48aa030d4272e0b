"""The configuration file's schema: every entry is checked and turned into its canonical document.

The canonical document of an entry is exactly what `config export` writes for it (times "HH:MM",
dates "YYYY-MM-DD", instants ISO 8601 in the organisation's time zone, every field present, defaults
filled in). Import compares canonical documents with those of the rows in the database, so an
unchanged entry is recognised whatever the file's spelling, and a second import changes nothing.

Validation never stops at the first problem: each one is collected with its path in the file
(`queues[1].ring_timeout_seconds: must be between 5 and 600`), so one run shows them all.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import holidays
import phonenumbers
from dateutil.rrule import rrule, rrulestr
from email_validator import EmailNotValidError, validate_email

from ..domain.message_templates import TEMPLATE_FIELDS
from ..models import (
    Availability,
    ClosedAction,
    ClosingWhileWaiting,
    Language,
    NoOperatorAction,
    OverflowAction,
    Plan,
    PromptKind,
    Queue,
    Role,
    RuleEffect,
    Strategy,
    TemplateChannel,
)

FORMAT_VERSION = 1
TOP_LEVEL_KEYS = (
    "version",
    "organisation",
    "skills",
    "schedules",
    "users",
    "queues",
    "phone_numbers",
    "closures",
    "directory",
    "message_templates",
    "prompts",
)
# The collections, in the order they are applied (references point backwards).
COLLECTIONS = TOP_LEVEL_KEYS[2:]
MIN_PASSWORD_LENGTH = 8
SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
CLIENT_IDENTITY = re.compile(r"^[A-Za-z0-9_]{1,128}$")


class Invalid(Exception):
    """A value that does not fit; the message is what the user reads after the path."""


class Problems:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.messages.append(f"{path}: {message}" if path else message)

    def __bool__(self) -> bool:
        return bool(self.messages)


def key_path(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def item_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


# --- Value parsers: value in, canonical value out, `Invalid` on a bad value. ---

Parser = Callable[[Any], Any]


def text(max_length: int) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("must be text")
        value = value.strip()
        if not value:
            raise Invalid("must not be empty")
        if len(value) > max_length:
            raise Invalid(f"must be at most {max_length} characters")
        return value

    return parse


def integer(low: int, high: int) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be a whole number")
        if not low <= value <= high:
            raise Invalid(f"must be between {low} and {high}")
        return value

    return parse


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def choice(values: type[StrEnum]) -> Parser:
    allowed = [v.value for v in values]

    def parse(value: Any) -> str:
        if value not in allowed:
            raise Invalid(f"must be one of {', '.join(allowed)}")
        return str(value)

    return parse


def slug(value: Any) -> str:
    if not isinstance(value, str) or not SLUG.match(value):
        raise Invalid("must be a slug: lower-case letters, digits and '-', at most 64")
    return value


def email(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("not a valid e-mail address")
    try:
        validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise Invalid(f"not a valid e-mail address ({exc})") from exc
    # The same normalisation as log-in: addresses are matched without regard to case.
    return value.strip().lower()


def e164(value: Any) -> str:
    hint = "not E.164 (write it as +46812345678)"
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML reads an unquoted +46812345678 as a number.
        raise Invalid(f'{hint}; put the number in quotes: "+{value}"')
    if not isinstance(value, str) or not value.startswith("+"):
        raise Invalid(hint)
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise Invalid(hint) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise Invalid(f"{hint}: no such number")
    if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != value:
        raise Invalid(hint)
    return value


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone(value: Any) -> str:
    if not isinstance(value, str) or value not in _timezones():
        raise Invalid("not a time zone (e.g. Europe/Stockholm)")
    return value


def country(value: Any) -> str:
    if value is False:
        # YAML 1.1 reads an unquoted NO (Norway) as false.
        raise Invalid('must be a country code; quote it: "NO"')
    if not isinstance(value, str) or not _holiday_country_exists(value):
        raise Invalid("not a country the holidays package knows (e.g. SE)")
    return value


@cache
def _holiday_country_exists(code: str) -> bool:
    # Cheaper than list_supported_countries(), which imports every country's module.
    try:
        holidays.country_holidays(code)
    except NotImplementedError:
        return False
    return True


def clock_time(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 17:00 as the sexagesimal number 1020.
        raise Invalid('must be a time "HH:MM" in quotes (unquoted, YAML reads 17:00 as a number)')
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
        raise Invalid('must be a time "HH:MM"')
    try:
        return format_time(time.fromisoformat(value))
    except ValueError as exc:
        raise Invalid('must be a time "HH:MM"') from exc


def format_time(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def day(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise Invalid("must be a date YYYY-MM-DD")


def instant(zone: Callable[[], ZoneInfo]) -> Parser:
    def parse(value: Any) -> str:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError as exc:
                raise Invalid("must be a date and time in ISO 8601, e.g. 2026-12-24T12:00:00+01:00") from exc
        if not isinstance(value, datetime):
            raise Invalid("must be a date and time in ISO 8601, e.g. 2026-12-24T12:00:00+01:00")
        if value.tzinfo is None:
            raise Invalid("needs a UTC offset, e.g. 2026-12-24T12:00:00+01:00")
        return format_instant(value, zone())

    return parse


def format_instant(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).isoformat(timespec="seconds")


def recurrence(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be an iCalendar RRULE, e.g. FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
    value = value.strip()
    if value.upper().startswith("RRULE:"):
        value = value[len("RRULE:") :]
    try:
        parsed = rrulestr(value, dtstart=datetime(2026, 1, 1))
    except (ValueError, TypeError) as exc:
        raise Invalid(f"not a valid RRULE ({exc})") from exc
    if not isinstance(parsed, rrule) or "\n" in value or "DTSTART" in value.upper():
        raise Invalid("must be one RRULE line without DTSTART")
    return value


# --- Fields of a mapping ---


@dataclass(frozen=True)
class Field:
    parse: Parser
    default: Any = None
    required: bool = False


def model_default(model: type, column: str) -> Any:
    return model.__table__.c[column].default.arg  # type: ignore[attr-defined]


def check_mapping(value: Any, fields: dict[str, Field], path: str, problems: Problems) -> dict[str, Any]:
    """The canonical mapping: each field parsed, defaults filled in, unknown keys reported."""
    if not isinstance(value, dict):
        problems.add(path, "must be a mapping (key: value)")
        return {}
    for key in value:
        if key not in fields:
            problems.add(key_path(path, key), "unknown key")
    result: dict[str, Any] = {}
    for name, spec in fields.items():
        raw = value.get(name)
        if raw is None:
            if spec.required:
                problems.add(key_path(path, name), "is required")
            result[name] = list(spec.default) if isinstance(spec.default, list) else spec.default
            continue
        try:
            result[name] = spec.parse(raw)
        except Invalid as exc:
            problems.add(key_path(path, name), str(exc))
            result[name] = None
    return result


def check_list(value: Any, path: str, problems: Problems) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(path, "must be a list")
        return []
    return [(item_path(path, i), item) for i, item in enumerate(value)]


def check_unique(entries: Iterable[tuple[str, Any]], what: str, problems: Problems) -> None:
    seen: set[Any] = set()
    for path, key in entries:
        if key is None:
            continue
        if key in seen:
            problems.add(path, f"duplicate {what}")
        seen.add(key)


def check_level_map(value: Any, low: int, path: str, problems: Problems, known: set[str]) -> dict[str, int]:
    """`{skill name: level}` with levels `low`..10 and every skill declared under `skills`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(path, "must be a mapping of skill name to level")
        return {}
    result: dict[str, int] = {}
    for name, level in value.items():
        here = key_path(path, name)
        if not isinstance(name, str) or name not in known:
            problems.add(here, f"no skill named {name} under skills")
            continue
        try:
            result[name] = integer(low, 10)(level)
        except Invalid as exc:
            problems.add(here, str(exc))
    return dict(sorted(result.items()))


def template_fields(body: str) -> list[str]:
    """The {fields} a template uses; raises `Invalid` for a malformed or unknown one."""
    try:
        parts = list(string.Formatter().parse(body))
    except ValueError as exc:
        raise Invalid(f"malformed template ({exc}); write a literal brace as {{{{ or }}}}") from exc
    used = []
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            raise Invalid(f"unknown field {{{name}}}; the fields are {', '.join(TEMPLATE_FIELDS)}")
        used.append(name)
    return used


def template_body(value: Any) -> str:
    body = text(5000)(value)
    template_fields(body)
    return body


def template_subject(value: Any) -> str:
    subject = text(200)(value)
    template_fields(subject)
    return subject


@cache
def holiday_names(country_code: str) -> frozenset[str]:
    """Every name of a country's holidays in any category and language, over enough years."""
    years = range(2020, 2041)
    country_class = holidays.country_holidays(country_code)
    names: set[str] = set()
    for language in country_class.supported_languages or (None,):
        calendar = holidays.country_holidays(
            country_code, years=years, categories=country_class.supported_categories, language=language
        )
        names.update(name for value in calendar.values() for name in value.split("; "))
    return frozenset(names)


@dataclass
class Known:
    """What a reference may name: the file's collection when it lists one, else the database's."""

    skills: set[str] = field(default_factory=set)
    schedules: set[str] = field(default_factory=set)
    user_plans: dict[str, str] = field(default_factory=dict)
    queues: set[str] = field(default_factory=set)


# --- The sections of the file ---

ORGANISATION_FIELDS = {
    "name": Field(text(200), required=True),
    "slug": Field(slug, required=True),
    "timezone": Field(timezone, default="Europe/Stockholm"),
    "locale": Field(choice(Language), default=Language.SV.value),
    "holiday_country": Field(country, default="SE"),
    "default_voice": Field(text(64)),
}

USER_FIELDS = {
    "email": Field(email, required=True),
    "name": Field(text(200), required=True),
    "role": Field(choice(Role), default=Role.OPERATOR.value),
    "plan": Field(choice(Plan), default=Plan.BASIC.value),
    "locale": Field(choice(Language)),
    "client_identity": Field(text(128)),
    "phone_number": Field(e164),
    "active": Field(boolean, default=True),
    "skills": Field(lambda v: v, default={}),
    "password": Field(text(128)),
}

PHONE_NUMBER_FIELDS = {
    "number": Field(e164, required=True),
    "label": Field(text(100)),
    "queue": Field(text(64)),
    "twilio_sid": Field(text(64)),
    # true or left out (the export leaves out false), so an unmarked number reads the same both ways.
    "records_prompts": Field(lambda v: boolean(v) or None),
}

SCHEDULE_FIELDS = {
    "name": Field(text(100), required=True),
    "timezone": Field(timezone),
    "holiday_categories": Field(lambda v: v, default=[]),
    "holiday_choices": Field(lambda v: v, default=[]),
    "rules": Field(lambda v: v, default=[]),
    "exceptions": Field(lambda v: v, default=[]),
}

RULE_FIELDS = {
    "effect": Field(choice(RuleEffect), default=RuleEffect.OPEN.value),
    "rrule": Field(recurrence, required=True),
    "starts": Field(clock_time, required=True),
    "ends": Field(clock_time, required=True),
    "valid_from": Field(day),
    "valid_until": Field(day),
    "label": Field(text(200)),
}

HOLIDAY_CHOICE_FIELDS = {
    "holiday": Field(text(200), required=True),
    "closed": Field(boolean, default=True),
}

EXCEPTION_FIELDS = {
    "date": Field(day, required=True),
    "closed": Field(boolean, default=False),
    "opens": Field(clock_time),
    "closes": Field(clock_time),
    "label": Field(text(200)),
}


def _queue_field(column: str, parse: Parser) -> Field:
    return Field(parse, default=model_default(Queue, column))


QUEUE_FIELDS = {
    "slug": Field(slug, required=True),
    "name": Field(text(100), required=True),
    "language": _queue_field("language", choice(Language)),
    "voice": Field(text(64)),
    "schedule": Field(text(100)),
    "strategy": _queue_field("strategy", choice(Strategy)),
    "parallel_count": _queue_field("parallel_count", integer(1, 50)),
    "ring_timeout_seconds": _queue_field("ring_timeout_seconds", integer(5, 600)),
    "wrap_up_seconds": _queue_field("wrap_up_seconds", integer(0, 3600)),
    "max_missed_offers": _queue_field("max_missed_offers", integer(0, 100)),
    "skill_widen_after_seconds": Field(integer(0, 3600)),
    "priority": _queue_field("priority", integer(-100, 100)),
    "welcome_enabled": _queue_field("welcome_enabled", boolean),
    "first_message_enabled": _queue_field("first_message_enabled", boolean),
    "periodic_message_enabled": _queue_field("periodic_message_enabled", boolean),
    "periodic_interval_seconds": _queue_field("periodic_interval_seconds", integer(10, 3600)),
    "announce_position": _queue_field("announce_position", boolean),
    "announce_expected_wait": _queue_field("announce_expected_wait", boolean),
    "announce_interval_seconds": _queue_field("announce_interval_seconds", integer(10, 3600)),
    "closed_action": _queue_field("closed_action", choice(ClosedAction)),
    "closed_forward_number": Field(e164),
    "closing_while_waiting": _queue_field("closing_while_waiting", choice(ClosingWhileWaiting)),
    "overflow_max_callers": Field(integer(1, 10000)),
    "overflow_max_wait_seconds": Field(integer(10, 86400)),
    "overflow_action": _queue_field("overflow_action", choice(OverflowAction)),
    "overflow_forward_number": Field(e164),
    "no_operator_action": _queue_field("no_operator_action", choice(NoOperatorAction)),
    "no_operator_forward_number": Field(e164),
    "callback_enabled": _queue_field("callback_enabled", boolean),
    "voicemail_enabled": _queue_field("voicemail_enabled", boolean),
    "caller_options_after_seconds": _queue_field("caller_options_after_seconds", integer(0, 3600)),
    "required_skills": Field(lambda v: v, default={}),
    "memberships": Field(lambda v: v, default=[]),
}
# The queue's columns that the file carries one to one (the rest are references or collections).
QUEUE_COLUMNS = tuple(
    name for name in QUEUE_FIELDS if name not in {"schedule", "required_skills", "memberships"}
)

MEMBERSHIP_FIELDS = {
    "user": Field(email, required=True),
    "may_see": Field(boolean, default=True),
    "may_log_in": Field(boolean, default=False),
}

DIRECTORY_FIELDS = {
    "name": Field(text(200), required=True),
    "department": Field(text(200)),
    "title": Field(text(200)),
    "keywords": Field(text(2000)),
    "phone_number": Field(e164),
    "mobile_number": Field(e164),
    "email": Field(email),
    "user": Field(email),
    "availability": Field(choice(Availability), default=Availability.FREE.value),
    "away_note": Field(text(200)),
    "away_until": Field(lambda v: v),  # an instant; parsed once the time zone is known
}

TEMPLATE_FIELDS_SPEC = {
    "name": Field(text(100), required=True),
    "channel": Field(choice(TemplateChannel), default=TemplateChannel.ANY.value),
    "subject": Field(template_subject),
    "body": Field(template_body, required=True),
}

PROMPT_FIELDS = {
    "kind": Field(choice(PromptKind), required=True),
    "language": Field(choice(Language), default=Language.SV.value),
    "queue": Field(text(64)),
    "text": Field(text(5000)),
}

CLOSURE_FIELDS = {
    "queues": Field(lambda v: v, required=True),
    "starts_at": Field(lambda v: v, required=True),
    "ends_at": Field(lambda v: v),
    "ended_early_at": Field(lambda v: v),
    "reason": Field(text(200)),
    "message": Field(text(5000)),
    "created_by": Field(email),
}


def directory_key(doc: dict[str, Any]) -> tuple[str, str]:
    return (doc["name"] or "", doc["department"] or "")


def prompt_key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc["queue"] or "", doc["kind"] or "", doc["language"] or "")


def closure_key(doc: dict[str, Any]) -> tuple[str, str]:
    # Both sides write instants in the file's time zone, so equal instants give equal text.
    return (doc["starts_at"] or "", doc["reason"] or "")
