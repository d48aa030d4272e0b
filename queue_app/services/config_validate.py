"""Validate a whole configuration file against the schema, collecting every problem with its path."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from ..models import Strategy
from .config_schema import (
    CLIENT_IDENTITY,
    CLOSURE_FIELDS,
    COLLECTIONS,
    DIRECTORY_FIELDS,
    EXCEPTION_FIELDS,
    FORMAT_VERSION,
    HOLIDAY_CHOICE_FIELDS,
    MEMBERSHIP_FIELDS,
    MIN_PASSWORD_LENGTH,
    ORGANISATION_FIELDS,
    PHONE_NUMBER_FIELDS,
    PROMPT_FIELDS,
    QUEUE_FIELDS,
    RULE_FIELDS,
    SCHEDULE_FIELDS,
    TEMPLATE_FIELDS_SPEC,
    TOP_LEVEL_KEYS,
    USER_FIELDS,
    Field,
    Invalid,
    Known,
    Parser,
    Problems,
    check_level_map,
    check_list,
    check_mapping,
    check_unique,
    closure_key,
    directory_key,
    holiday_names,
    instant,
    item_path,
    key_path,
    prompt_key,
    text,
)


@dataclass
class Validated:
    """The file as canonical documents, keyed by natural key, with every problem found."""

    organisation: dict[str, Any]
    collections: dict[str, dict[Any, dict[str, Any]]]
    passwords: dict[str, str]
    problems: list[str]


def validate_document(data: Any, fallback: Callable[[str | None], Known]) -> Validated:
    """Check the whole file; `fallback(slug)` says what the database holds for absent collections."""
    problems = Problems()
    if not isinstance(data, dict):
        problems.add("", "the file must be a mapping with an `organisation` and collections")
        return Validated({}, {}, {}, problems.messages)
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.add(str(key), f"unknown key (the keys are {', '.join(TOP_LEVEL_KEYS)})")
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        problems.add("version", f"must be {FORMAT_VERSION}")

    org = check_mapping(data.get("organisation"), ORGANISATION_FIELDS, "organisation", problems)
    if "organisation" not in data:
        problems.add("organisation", "is required")
    zone = ZoneInfo(org.get("timezone") or "UTC")
    known = fallback(org.get("slug"))
    present = {kind for kind in COLLECTIONS if kind in data}
    docs: dict[str, dict[Any, dict[str, Any]]] = {}
    passwords: dict[str, str] = {}

    def entries(kind: str, fields: dict[str, Field]) -> list[tuple[str, dict[str, Any]]]:
        return [
            (p, check_mapping(item, fields, p, problems))
            for p, item in check_list(data[kind], kind, problems)
        ]

    def keyed(
        kind: str, rows: list[tuple[str, dict[str, Any]]], key: Callable[[dict[str, Any]], Any]
    ) -> None:
        check_unique(((p, key(doc)) for p, doc in rows), f"{kind} entry", problems)
        docs[kind] = {key(doc): doc for _p, doc in rows if key(doc) is not None}

    def reference(path: str, value: str | None, names: Iterable[str], what: str) -> None:
        if value is not None and value not in names:
            problems.add(path, f"no {what} {value}")

    # Skills: a list of names.
    if "skills" in present:
        names = []
        for p, item in check_list(data["skills"], "skills", problems):
            try:
                names.append((p, text(64)(item)))
            except Invalid as exc:
                problems.add(p, str(exc))
        check_unique(names, "skill", problems)
        docs["skills"] = {name: {"name": name} for _p, name in names}
        known.skills = set(docs["skills"])

    if "schedules" in present:
        rows = entries("schedules", SCHEDULE_FIELDS)
        for p, doc in rows:
            _check_schedule(doc, p, org.get("holiday_country"), problems)
        keyed("schedules", rows, lambda d: d["name"])
        known.schedules = set(docs["schedules"])

    if "users" in present:
        rows = entries("users", USER_FIELDS)
        for p, doc in rows:
            doc["skills"] = check_level_map(doc["skills"], 1, key_path(p, "skills"), problems, known.skills)
            if doc["client_identity"] is not None and not CLIENT_IDENTITY.match(doc["client_identity"]):
                problems.add(key_path(p, "client_identity"), "only letters A-Z, digits and _")
            password = doc.pop("password")
            if password is not None:
                if len(password) < MIN_PASSWORD_LENGTH:
                    problems.add(key_path(p, "password"), f"needs at least {MIN_PASSWORD_LENGTH} characters")
                elif doc["email"]:
                    passwords[doc["email"]] = password
        check_unique(((p, d["client_identity"]) for p, d in rows), "client_identity", problems)
        keyed("users", rows, lambda d: d["email"])
        known.user_plans = {email: d["plan"] for email, d in docs["users"].items()}

    if "queues" in present:
        rows = entries("queues", QUEUE_FIELDS)
        for p, doc in rows:
            reference(key_path(p, "schedule"), doc["schedule"], known.schedules, "schedule named")
            doc["required_skills"] = check_level_map(
                doc["required_skills"], 1, key_path(p, "required_skills"), problems, known.skills
            )
            doc["memberships"] = _check_memberships(
                doc["memberships"], key_path(p, "memberships"), known, problems
            )
            _check_queue_actions(doc, p, problems)
        keyed("queues", rows, lambda d: d["slug"])
        known.queues = set(docs["queues"])

    if "phone_numbers" in present:
        rows = entries("phone_numbers", PHONE_NUMBER_FIELDS)
        for p, doc in rows:
            reference(key_path(p, "queue"), doc["queue"], known.queues, "queue with slug")
            if doc["records_prompts"] and doc["queue"]:
                problems.add(key_path(p, "records_prompts"), "a number that records prompts reaches no queue")
        if sum(1 for _p, doc in rows if doc["records_prompts"]) > 1:
            problems.add("phone_numbers", "at most one number may record prompts")
        keyed("phone_numbers", rows, lambda d: d["number"])

    if "closures" in present:
        rows = entries("closures", CLOSURE_FIELDS)
        for p, doc in rows:
            _check_closure(doc, p, zone, known, problems)
        keyed("closures", rows, lambda d: closure_key(d) if d["starts_at"] else None)

    if "directory" in present:
        rows = entries("directory", DIRECTORY_FIELDS)
        for p, doc in rows:
            reference(key_path(p, "user"), doc["user"], known.user_plans, "user with e-mail")
            _parse_in_place(doc, "away_until", instant(lambda: zone), p, problems)
        keyed("directory", rows, lambda d: directory_key(d) if d["name"] else None)

    if "message_templates" in present:
        keyed("message_templates", entries("message_templates", TEMPLATE_FIELDS_SPEC), lambda d: d["name"])

    if "prompts" in present:
        rows = entries("prompts", PROMPT_FIELDS)
        for p, doc in rows:
            reference(key_path(p, "queue"), doc["queue"], known.queues, "queue with slug")
        keyed("prompts", rows, lambda d: prompt_key(d) if d["kind"] else None)

    return Validated(org, docs, passwords, problems.messages)


def _parse_in_place(doc: dict[str, Any], name: str, parse: Parser, path: str, problems: Problems) -> None:
    if doc[name] is None:
        return
    try:
        doc[name] = parse(doc[name])
    except Invalid as exc:
        problems.add(key_path(path, name), str(exc))
        doc[name] = None


def _check_schedule(doc: dict[str, Any], path: str, country_code: str | None, problems: Problems) -> None:
    categories = doc["holiday_categories"]
    supported: tuple[str, ...] = ()
    if country_code:
        supported = tuple(holidays.country_holidays(country_code).supported_categories)
    if not isinstance(categories, list):
        problems.add(key_path(path, "holiday_categories"), "must be a list")
        categories = []
    for i, category in enumerate(categories):
        if supported and category not in supported:
            problems.add(
                item_path(key_path(path, "holiday_categories"), i),
                f"not a holiday category of {country_code} (one of {', '.join(supported)})",
            )
    doc["holiday_categories"] = sorted({c for c in categories if isinstance(c, str)})

    choices = [
        (p, check_mapping(item, HOLIDAY_CHOICE_FIELDS, p, problems))
        for p, item in check_list(doc["holiday_choices"], key_path(path, "holiday_choices"), problems)
    ]
    if country_code:
        names = holiday_names(country_code)
        for p, choice_doc in choices:
            if choice_doc["holiday"] is not None and choice_doc["holiday"] not in names:
                problems.add(key_path(p, "holiday"), f"no holiday of {country_code} has this name")
    check_unique(((p, c["holiday"]) for p, c in choices), "holiday", problems)
    doc["holiday_choices"] = sorted((c for _p, c in choices), key=lambda c: c["holiday"] or "")

    rules = []
    for p, item in check_list(doc["rules"], key_path(path, "rules"), problems):
        rule = check_mapping(item, RULE_FIELDS, p, problems)
        if rule["starts"] and rule["ends"] and rule["starts"] >= rule["ends"]:
            problems.add(key_path(p, "ends"), "must be after starts (split a rule that crosses midnight)")
        if rule["valid_from"] and rule["valid_until"] and rule["valid_from"] > rule["valid_until"]:
            problems.add(key_path(p, "valid_until"), "must not be before valid_from")
        rules.append(rule)
    doc["rules"] = rules

    exceptions = []
    for p, item in check_list(doc["exceptions"], key_path(path, "exceptions"), problems):
        exc_doc = check_mapping(item, EXCEPTION_FIELDS, p, problems)
        has_times = exc_doc["opens"] is not None or exc_doc["closes"] is not None
        if exc_doc["closed"] and has_times:
            problems.add(p, "either closed: true or opens and closes, not both")
        elif not exc_doc["closed"]:
            if exc_doc["opens"] is None or exc_doc["closes"] is None:
                problems.add(p, "needs opens and closes, or closed: true for a day closed all day")
            elif exc_doc["opens"] >= exc_doc["closes"]:
                problems.add(key_path(p, "closes"), "must be after opens")
        exceptions.append((p, exc_doc))
    check_unique(((p, e["date"]) for p, e in exceptions), "exception date", problems)
    doc["exceptions"] = sorted((e for _p, e in exceptions), key=lambda e: e["date"] or "")


def _check_memberships(value: Any, path: str, known: Known, problems: Problems) -> list[dict[str, Any]]:
    rows = [
        (p, check_mapping(item, MEMBERSHIP_FIELDS, p, problems))
        for p, item in check_list(value, path, problems)
    ]
    for p, membership in rows:
        user = membership["user"]
        if user is None:
            continue
        if user not in known.user_plans:
            problems.add(key_path(p, "user"), f"no user with e-mail {user}")
        elif membership["may_log_in"] and known.user_plans[user] not in {"pro", "business", "enterprise"}:
            problems.add(
                key_path(p, "may_log_in"),
                f"{user} is on the {known.user_plans[user]} plan; "
                "only pro, business and enterprise may log in",
            )
    check_unique(((p, m["user"]) for p, m in rows), "member", problems)
    return sorted((m for _p, m in rows), key=lambda m: m["user"] or "")


def _check_queue_actions(doc: dict[str, Any], path: str, problems: Problems) -> None:
    for action, number in (
        ("closed_action", "closed_forward_number"),
        ("overflow_action", "overflow_forward_number"),
        ("no_operator_action", "no_operator_forward_number"),
    ):
        if doc[action] == "forward" and doc[number] is None:
            problems.add(key_path(path, number), f"is required when {action} is forward")
    if doc["strategy"] == Strategy.PARALLEL.value and isinstance(doc["parallel_count"], int):
        may_log_in = sum(1 for m in doc["memberships"] if m["may_log_in"])
        if doc["parallel_count"] > max(may_log_in, 1):
            problems.add(
                key_path(path, "parallel_count"),
                f"is larger than the {may_log_in} members who may log in",
            )


def _check_closure(doc: dict[str, Any], path: str, zone: ZoneInfo, known: Known, problems: Problems) -> None:
    queues = doc["queues"]
    if queues == "all":
        pass
    elif isinstance(queues, list) and queues and all(isinstance(q, str) for q in queues):
        for i, queue in enumerate(queues):
            if queue not in known.queues:
                problems.add(item_path(key_path(path, "queues"), i), f"no queue with slug {queue}")
        doc["queues"] = sorted(set(queues))
    elif queues is not None:
        problems.add(key_path(path, "queues"), 'must be "all" or a list of queue slugs')
        doc["queues"] = None
    for name in ("starts_at", "ends_at", "ended_early_at"):
        _parse_in_place(doc, name, instant(lambda: zone), path, problems)
    starts, ends = doc["starts_at"], doc["ends_at"]
    if starts and ends and datetime.fromisoformat(ends) <= datetime.fromisoformat(starts):
        problems.add(key_path(path, "ends_at"), "must be after starts_at")
    if doc["created_by"] is not None and doc["created_by"] not in known.user_plans:
        problems.add(key_path(path, "created_by"), f"no user with e-mail {doc['created_by']}")
