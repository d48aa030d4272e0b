"""The organisation's configuration as canonical documents, keyed by natural key.

`export_config` writes them; import compares the file with the same documents, so whatever import
considers "unchanged" is exactly what export would write again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..extensions import db
from ..models import (
    Closure,
    DirectoryEntry,
    MessageTemplate,
    Organisation,
    PhoneNumber,
    Prompt,
    Queue,
    Schedule,
    Skill,
    User,
)
from .config_schema import (
    COLLECTIONS,
    FORMAT_VERSION,
    QUEUE_COLUMNS,
    closure_key,
    directory_key,
    format_instant,
    format_time,
    prompt_key,
)


class UnknownOrganisation(LookupError):
    pass


@dataclass
class Existing:
    """The rows of one organisation and their documents, by kind and natural key."""

    rows: dict[str, dict[Any, Any]]
    docs: dict[str, dict[Any, dict[str, Any]]]


def organisation_doc(org: Organisation) -> dict[str, Any]:
    return {
        "name": org.name,
        "slug": org.slug,
        "timezone": org.timezone,
        "locale": org.locale,
        "holiday_country": org.holiday_country,
        "default_voice": org.default_voice,
    }


def load_existing(session: Session, org: Organisation | None, zone: ZoneInfo) -> Existing:
    """Every configured row of `org`, with instants written in `zone` (the file's time zone)."""
    rows: dict[str, dict[Any, Any]] = {kind: {} for kind in COLLECTIONS}
    docs: dict[str, dict[Any, dict[str, Any]]] = {kind: {} for kind in COLLECTIONS}
    if org is None:
        return Existing(rows, docs)
    org_id = org.id

    def instant(value: Any) -> str | None:
        return None if value is None else format_instant(value, zone)

    def add(kind: str, key: Any, row: Any, doc: dict[str, Any]) -> None:
        rows[kind][key] = row
        docs[kind][key] = doc

    skills = session.scalars(select(Skill).where(Skill.organisation_id == org_id)).all()
    skill_names = {s.id: s.name for s in skills}
    for skill in skills:
        add("skills", skill.name, skill, {"name": skill.name})

    schedules = session.scalars(
        select(Schedule)
        .where(Schedule.organisation_id == org_id)
        .options(
            selectinload(Schedule.rules),
            selectinload(Schedule.holiday_choices),
            selectinload(Schedule.exceptions),
        )
    ).all()
    schedule_names = {s.id: s.name for s in schedules}
    for schedule in schedules:
        add("schedules", schedule.name, schedule, _schedule_doc(schedule))

    users = session.scalars(
        select(User).where(User.organisation_id == org_id).options(selectinload(User.skills))
    ).all()
    emails = {u.id: u.email for u in users}
    for user in users:
        add(
            "users",
            user.email,
            user,
            {
                "email": user.email,
                "name": user.name,
                "role": user.role,
                "plan": user.plan,
                "locale": user.locale,
                "client_identity": user.client_identity,
                "phone_number": user.phone_number,
                "active": user.is_active,
                "skills": dict(sorted((skill_names[s.skill_id], s.level) for s in user.skills)),
            },
        )

    queues = session.scalars(
        select(Queue)
        .where(Queue.organisation_id == org_id)
        .options(selectinload(Queue.required_skills), selectinload(Queue.memberships))
    ).all()
    slugs = {q.id: q.slug for q in queues}
    for queue in queues:
        doc = {column: getattr(queue, column) for column in QUEUE_COLUMNS}
        doc["schedule"] = schedule_names.get(queue.schedule_id) if queue.schedule_id else None
        doc["required_skills"] = dict(
            sorted((skill_names[s.skill_id], s.min_level) for s in queue.required_skills)
        )
        doc["memberships"] = sorted(
            (
                {"user": emails[m.user_id], "may_see": m.may_see, "may_log_in": m.may_log_in}
                for m in queue.memberships
                if m.user_id in emails
            ),
            key=lambda m: m["user"],
        )
        add("queues", queue.slug, queue, _reorder(doc, QUEUE_ORDER))

    for number in session.scalars(select(PhoneNumber).where(PhoneNumber.organisation_id == org_id)):
        add(
            "phone_numbers",
            number.number,
            number,
            {
                "number": number.number,
                "label": number.label,
                "queue": slugs.get(number.queue_id) if number.queue_id else None,
                "twilio_sid": number.twilio_sid,
                "records_prompts": True if number.records_prompts else None,
            },
        )

    closures = session.scalars(
        select(Closure).where(Closure.organisation_id == org_id).options(selectinload(Closure.queues))
    ).all()
    for closure in closures:
        doc = {
            "queues": "all" if closure.all_queues else sorted(q.slug for q in closure.queues),
            "starts_at": instant(closure.starts_at),
            "ends_at": instant(closure.ends_at),
            "ended_early_at": instant(closure.ended_early_at),
            "reason": closure.reason,
            "message": closure.message,
            "created_by": emails.get(closure.created_by_id) if closure.created_by_id else None,
        }
        add("closures", closure_key(doc), closure, doc)

    for entry in session.scalars(select(DirectoryEntry).where(DirectoryEntry.organisation_id == org_id)):
        doc = {
            "name": entry.name,
            "department": entry.department,
            "title": entry.title,
            "keywords": entry.keywords,
            "phone_number": entry.phone_number,
            "mobile_number": entry.mobile_number,
            "email": entry.email,
            "user": emails.get(entry.user_id) if entry.user_id else None,
            "availability": entry.availability,
            "away_note": entry.away_note,
            "away_until": instant(entry.away_until),
        }
        add("directory", directory_key(doc), entry, doc)

    for template in session.scalars(select(MessageTemplate).where(MessageTemplate.organisation_id == org_id)):
        doc = {
            "name": template.name,
            "channel": template.channel,
            "subject": template.subject,
            "body": template.body,
        }
        add("message_templates", template.name, template, doc)

    for prompt in session.scalars(select(Prompt).where(Prompt.organisation_id == org_id)):
        # Audio stays where it is: only the text travels in a file.
        doc = {
            "kind": prompt.kind,
            "language": prompt.language,
            "queue": slugs.get(prompt.queue_id) if prompt.queue_id else None,
            "text": prompt.text,
        }
        add("prompts", prompt_key(doc), prompt, doc)

    return Existing(rows, docs)


QUEUE_ORDER = ("slug", "name", "language", "voice", "schedule")


def _reorder(doc: dict[str, Any], first: tuple[str, ...]) -> dict[str, Any]:
    return {key: doc[key] for key in first} | {k: v for k, v in doc.items() if k not in first}


def _schedule_doc(schedule: Schedule) -> dict[str, Any]:
    def exception_doc(exc: Any) -> dict[str, Any]:
        closed = exc.opens is None and exc.closes is None
        return {
            "date": exc.day.isoformat(),
            "closed": closed,
            "opens": None if exc.opens is None else format_time(exc.opens),
            "closes": None if exc.closes is None else format_time(exc.closes),
            "label": exc.label,
        }

    return {
        "name": schedule.name,
        "timezone": schedule.timezone,
        "holiday_categories": sorted(schedule.holiday_categories or []),
        "holiday_choices": sorted(
            ({"holiday": c.holiday_name, "closed": c.closed} for c in schedule.holiday_choices),
            key=lambda c: c["holiday"],
        ),
        "rules": [
            {
                "effect": rule.effect,
                "rrule": rule.rrule,
                "starts": format_time(rule.starts),
                "ends": format_time(rule.ends),
                "valid_from": rule.valid_from.isoformat() if rule.valid_from else None,
                "valid_until": rule.valid_until.isoformat() if rule.valid_until else None,
                "label": rule.label,
            }
            for rule in sorted(schedule.rules, key=lambda r: (r.position, r.id))
        ],
        "exceptions": sorted((exception_doc(e) for e in schedule.exceptions), key=lambda e: e["date"]),
    }


def prune(value: Any) -> Any:
    """Leave out empty optional fields (None): every one of them defaults to None on import."""
    if isinstance(value, dict):
        return {k: prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def export_config(organisation_slug: str) -> dict[str, Any]:
    """The organisation's whole configuration, in a stable order so two exports diff cleanly."""
    with db.transaction() as session:
        org = session.scalar(select(Organisation).where(Organisation.slug == organisation_slug))
        if org is None:
            raise UnknownOrganisation(f"no organisation with slug {organisation_slug!r}")
        existing = load_existing(session, org, ZoneInfo(org.timezone))
        document: dict[str, Any] = {"version": FORMAT_VERSION, "organisation": organisation_doc(org)}
        document["skills"] = sorted(existing.docs["skills"])
        for kind in COLLECTIONS[1:]:
            by_key = existing.docs[kind]
            document[kind] = [by_key[key] for key in sorted(by_key)]
        return prune(document)  # type: ignore[no-any-return]


def organisation_slugs() -> list[str]:
    with db.transaction() as session:
        return list(session.scalars(select(Organisation.slug).order_by(Organisation.slug)))
