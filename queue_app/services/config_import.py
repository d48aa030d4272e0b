"""Import a configuration file: validate everything, then apply it in one transaction.

Entries are matched by natural key (slug, e-mail, number, name). A collection the file lists is the
whole truth: what it omits is deleted, so afterwards an export equals the file. Users are the
exception: a user the file omits is deactivated, not deleted, so their calls and history stay; they
can no longer log in, are logged out of every queue and hold no licence (an export lists them with
`active: false`). A collection the file does not list at all is left as it is. Other organisations
are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, true
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from .. import get_clock
from ..domain.text import fold
from ..extensions import db
from ..models import (
    Closure,
    DirectoryEntry,
    HolidayChoice,
    MessageTemplate,
    Organisation,
    PhoneNumber,
    Prompt,
    Queue,
    QueueMembership,
    QueueSkill,
    Schedule,
    ScheduleException,
    ScheduleRule,
    Skill,
    User,
    UserSkill,
)
from . import licences, operators
from .config_export import Existing, load_existing, organisation_doc
from .config_schema import COLLECTIONS, QUEUE_COLUMNS, Known
from .config_validate import validate_document

# Deleted first, so that a renamed entry can take over its predecessor's unique number or identity;
# schedules and skills last, once no queue or user refers to them any more.
DELETE_FIRST = ("prompts", "message_templates", "directory", "closures", "phone_numbers", "queues")
DELETE_LAST = ("schedules", "skills")


@dataclass
class Changes:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)  # users only: omitted, so deactivated

    def __len__(self) -> int:
        return len(self.created) + len(self.updated) + len(self.deleted) + len(self.deactivated)


@dataclass
class ImportReport:
    organisation: str | None
    dry_run: bool
    errors: list[str] = field(default_factory=list)
    changes: dict[str, Changes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def change_count(self) -> int:
        return sum(len(c) for c in self.changes.values())

    def lines(self) -> list[str]:
        if self.errors:
            return [f"{len(self.errors)} error(s); nothing was changed:", *(f"  {e}" for e in self.errors)]
        verb = "Would change" if self.dry_run else "Changed"
        if not self.change_count:
            return [f"No changes to organisation {self.organisation}."]
        lines = [f"{verb} organisation {self.organisation}: {self.change_count} change(s)."]
        for kind, changes in self.changes.items():
            for what, names in (
                ("created", changes.created),
                ("updated", changes.updated),
                ("deleted", changes.deleted),
                ("deactivated", changes.deactivated),
            ):
                if names:
                    lines.append(f"  {kind} {what} ({len(names)}): {', '.join(names)}")
        return lines


def _label(key: Any) -> str:
    return " / ".join(k for k in key if k) if isinstance(key, tuple) else str(key)


def import_config(data: Any, *, dry_run: bool, now: datetime | None = None) -> ImportReport:
    """Validate the whole file, and unless it has errors or `dry_run`, make the database equal it."""
    now = now or get_clock().now()
    with db.transaction() as session:
        existing_org: dict[str, Organisation | None] = {}

        def fallback(slug: str | None) -> Known:
            org = session.scalar(select(Organisation).where(Organisation.slug == slug)) if slug else None
            existing_org["org"] = org
            return _known_in_database(session, org)

        validated = validate_document(data, fallback)
        org = existing_org.get("org")
        report = ImportReport(validated.organisation.get("slug"), dry_run, list(validated.problems))
        zone = ZoneInfo(validated.organisation.get("timezone") or "UTC")
        existing = load_existing(session, org, zone)
        report.errors.extend(_conflicts(session, org, validated.collections, existing))
        if report.errors:
            return report

        # Hashing is slow by design: hash only passwords that differ from the stored one.
        checked: dict[tuple[str, str], bool] = {}
        passwords = {
            email: password
            for email, password in validated.passwords.items()
            if not _password_matches(existing.rows["users"].get(email), password, checked)
        }
        stale_passwords = set(passwords)
        if org is None:
            report.changes["organisation"] = Changes(created=[validated.organisation["slug"]])
        elif organisation_doc(org) != validated.organisation:
            report.changes["organisation"] = Changes(updated=[validated.organisation["slug"]])
        for kind, wanted in validated.collections.items():
            have = existing.docs[kind]
            changes = Changes(
                created=[_label(k) for k in sorted(wanted) if k not in have],
                updated=[_label(k) for k in sorted(wanted) if k in have and have[k] != wanted[k]],
                deleted=[_label(k) for k in sorted(have) if k not in wanted],
            )
            if kind == "users":
                changes.deactivated = [k for k in changes.deleted if have[k]["active"]]
                changes.deleted = []
                for email in sorted(stale_passwords):
                    if email in existing.rows["users"] and email not in changes.updated:
                        changes.updated.append(email)
            if changes:
                report.changes[kind] = changes
        if not dry_run and report.change_count:
            _apply(session, org, validated.organisation, validated.collections, passwords, existing, now)
        return report


def _known_in_database(session: Session, org: Organisation | None) -> Known:
    if org is None:
        return Known()
    org_id = org.id
    return Known(
        skills=set(session.scalars(select(Skill.name).where(Skill.organisation_id == org_id))),
        schedules=set(session.scalars(select(Schedule.name).where(Schedule.organisation_id == org_id))),
        user_plans={
            email: plan
            for email, plan in session.execute(
                select(User.email, User.plan).where(User.organisation_id == org_id)
            )
        },
        queues=set(session.scalars(select(Queue.slug).where(Queue.organisation_id == org_id))),
    )


def _conflicts(
    session: Session,
    org: Organisation | None,
    collections: dict[str, dict[Any, dict[str, Any]]],
    existing: Existing,
) -> list[str]:
    """What only the database can tell: numbers and identities owned by another organisation."""
    errors = []
    other = Organisation.id != org.id if org is not None else true()
    users = list(collections.get("users", {}).values())
    for column, kind, values in (
        (User.email, "e-mail", [u["email"] for u in users]),
        (
            User.client_identity,
            "client_identity",
            [u["client_identity"] for u in users if u["client_identity"]],
        ),
    ):
        taken = set(session.scalars(select(column).join(Organisation).where(other, column.in_(values))))
        errors += [f"users: {kind} {value} belongs to another organisation" for value in sorted(taken)]
    numbers = list(collections.get("phone_numbers", {}))
    taken = set(
        session.scalars(
            select(PhoneNumber.number).join(Organisation).where(other, PhoneNumber.number.in_(numbers))
        )
    )
    errors += [f"phone_numbers: {number} belongs to another organisation" for number in sorted(taken)]
    if "schedules" in collections and "queues" not in collections:
        for slug, queue_doc in existing.docs["queues"].items():
            if queue_doc["schedule"] and queue_doc["schedule"] not in collections["schedules"]:
                errors.append(
                    f"schedules: schedule {queue_doc['schedule']} is used by queue {slug}, "
                    "which this file does not list"
                )
    return errors


def _apply(
    session: Session,
    org: Organisation | None,
    org_doc: dict[str, Any],
    collections: dict[str, dict[Any, dict[str, Any]]],
    passwords: dict[str, str],
    existing: Existing,
    now: datetime,
) -> None:
    if org is None:
        org = Organisation(slug=org_doc["slug"])
        session.add(org)
    for name, value in org_doc.items():
        setattr(org, name, value)
    session.flush()
    zone = ZoneInfo(org.timezone)

    for kind in DELETE_FIRST:
        _delete_missing(session, kind, collections, existing)
    _deactivate_missing_users(session, collections, existing, now)
    session.flush()
    # Database cascades removed memberships and skills of deleted rows behind the ORM's back.
    session.expire_all()
    existing = load_existing(session, org, zone)
    ids = _Ids(existing)

    apply = _Apply(session, org, ids, existing)
    for kind in COLLECTIONS:
        wanted = collections.get(kind)
        if wanted is None:
            continue
        for key, doc in wanted.items():
            if existing.docs[kind].get(key) != doc or (kind == "users" and key in passwords):
                getattr(apply, kind)(existing.rows[kind].get(key), doc)
        session.flush()
        if kind == "users":
            _set_passwords(session, org, passwords)
    for kind in DELETE_LAST:
        _delete_missing(session, kind, collections, existing)
    session.flush()
    licences.sync(session, org.id, None, now)


def _deactivate_missing_users(
    session: Session, collections: dict[str, dict[Any, dict[str, Any]]], existing: Existing, now: datetime
) -> None:
    """Users the file omits keep their history but lose access; see the module's docstring."""
    wanted = collections.get("users")
    if wanted is None:
        return
    claimed = {doc["client_identity"] for doc in wanted.values() if doc["client_identity"]}
    for email, user in existing.rows["users"].items():
        if email in wanted:
            continue
        operators.deactivate(session, user, now)
        # A user in the file may take over the browser identity of one it leaves out.
        if user.client_identity in claimed:
            user.client_identity = None


def _delete_missing(
    session: Session, kind: str, collections: dict[str, dict[Any, dict[str, Any]]], existing: Existing
) -> None:
    wanted = collections.get(kind)
    if wanted is None:
        return
    for key, row in existing.rows[kind].items():
        if key not in wanted:
            session.delete(row)


def _password_matches(user: User | None, password: str, checked: dict[tuple[str, str], bool]) -> bool:
    if user is None or not user.password_hash:
        return False
    key = (user.password_hash, password)
    if key not in checked:
        checked[key] = check_password_hash(user.password_hash, password)
    return checked[key]


def _set_passwords(session: Session, org: Organisation, passwords: dict[str, str]) -> None:
    """`passwords` holds only the ones that differ from what is stored."""
    # Hashing takes a fifth of a second by design. Users given the same password in one file (the
    # demo's) share one hash, so loading and re-checking the demo costs one hash, not one per user.
    hashes: dict[str, str] = {}
    for email, password in passwords.items():
        user = session.scalar(select(User).where(User.organisation_id == org.id, User.email == email))
        if user is not None:
            if password not in hashes:
                hashes[password] = generate_password_hash(password)
            user.password_hash = hashes[password]


class _Ids:
    """Natural key -> id, growing as rows are created."""

    def __init__(self, existing: Existing) -> None:
        self.skill = {k: r.id for k, r in existing.rows["skills"].items()}
        self.schedule = {k: r.id for k, r in existing.rows["schedules"].items()}
        self.user = {k: r.id for k, r in existing.rows["users"].items()}
        self.queue = {k: r.id for k, r in existing.rows["queues"].items()}

    @staticmethod
    def get(mapping: dict[str, int], key: str | None) -> int | None:
        return None if key is None else mapping[key]


def _time(value: str | None) -> time | None:
    return None if value is None else time.fromisoformat(value)


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _sync(current: list[Any], key_of: Any, wanted: dict[Any, dict[str, Any]], make: Any) -> None:
    """Make a child collection equal `wanted`, updating rows in place (their unique keys stay put)."""
    by_key = {key_of(child): child for child in current}
    for key, child in list(by_key.items()):
        if key not in wanted:
            current.remove(child)
    for key, values in wanted.items():
        child = by_key.get(key)
        if child is None:
            current.append(make(**values))
        else:
            for name, value in values.items():
                setattr(child, name, value)


class _Apply:
    """One method per kind: create the row (when `row` is None) or update it from the document."""

    def __init__(self, session: Session, org: Organisation, ids: _Ids, existing: Existing) -> None:
        self.session = session
        self.org = org
        self.ids = ids
        self.existing = existing

    def _new(self, model: type, **values: Any) -> Any:
        row = model(organisation_id=self.org.id, **values)
        self.session.add(row)
        return row

    def skills(self, row: Skill | None, doc: dict[str, Any]) -> None:
        if row is None:
            row = self._new(Skill, name=doc["name"])
            self.session.flush()
            self.ids.skill[doc["name"]] = row.id

    def schedules(self, row: Schedule | None, doc: dict[str, Any]) -> None:
        if row is None:
            row = self._new(Schedule, name=doc["name"], rules=[], holiday_choices=[], exceptions=[])
        row.timezone = doc["timezone"]
        row.holiday_categories = list(doc["holiday_categories"])
        rules = doc["rules"]
        del row.rules[len(rules) :]
        for position, rule in enumerate(rules):
            values = {
                "position": position,
                "effect": rule["effect"],
                "rrule": rule["rrule"],
                "starts": _time(rule["starts"]),
                "ends": _time(rule["ends"]),
                "valid_from": _day(rule["valid_from"]),
                "valid_until": _day(rule["valid_until"]),
                "label": rule["label"],
            }
            if position < len(row.rules):
                for name, value in values.items():
                    setattr(row.rules[position], name, value)
            else:
                row.rules.append(ScheduleRule(**values))
        _sync(
            row.holiday_choices,
            lambda c: c.holiday_name,
            {
                c["holiday"]: {"holiday_name": c["holiday"], "closed": c["closed"]}
                for c in doc["holiday_choices"]
            },
            HolidayChoice,
        )
        _sync(
            row.exceptions,
            lambda e: e.day,
            {
                _day(e["date"]): {
                    "day": _day(e["date"]),
                    "opens": _time(e["opens"]),
                    "closes": _time(e["closes"]),
                    "label": e["label"],
                }
                for e in doc["exceptions"]
            },
            ScheduleException,
        )
        self.session.flush()
        self.ids.schedule[doc["name"]] = row.id

    def users(self, row: User | None, doc: dict[str, Any]) -> None:
        if row is None:
            row = self._new(User, email=doc["email"], skills=[])
        row.name = doc["name"]
        row.role = doc["role"]
        row.plan = doc["plan"]
        row.locale = doc["locale"]
        row.client_identity = doc["client_identity"]
        row.phone_number = doc["phone_number"]
        row.is_active = doc["active"]
        _sync(
            row.skills,
            lambda s: s.skill_id,
            {
                self.ids.skill[name]: {"skill_id": self.ids.skill[name], "level": level}
                for name, level in doc["skills"].items()
            },
            UserSkill,
        )
        self.session.flush()
        self.ids.user[doc["email"]] = row.id

    def queues(self, row: Queue | None, doc: dict[str, Any]) -> None:
        if row is None:
            row = self._new(Queue, slug=doc["slug"], required_skills=[], memberships=[])
        for column in QUEUE_COLUMNS:
            setattr(row, column, doc[column])
        row.schedule_id = self.ids.get(self.ids.schedule, doc["schedule"])
        _sync(
            row.required_skills,
            lambda s: s.skill_id,
            {
                self.ids.skill[name]: {"skill_id": self.ids.skill[name], "min_level": level}
                for name, level in doc["required_skills"].items()
            },
            QueueSkill,
        )
        _sync(
            row.memberships,
            lambda m: m.user_id,
            {
                self.ids.user[m["user"]]: {
                    "user_id": self.ids.user[m["user"]],
                    "may_see": m["may_see"],
                    "may_log_in": m["may_log_in"],
                }
                for m in doc["memberships"]
            },
            QueueMembership,
        )
        self.session.flush()
        self.ids.queue[doc["slug"]] = row.id

    def phone_numbers(self, row: PhoneNumber | None, doc: dict[str, Any]) -> None:
        row = row or self._new(PhoneNumber, number=doc["number"])
        row.label = doc["label"]
        row.queue_id = self.ids.get(self.ids.queue, doc["queue"])
        row.twilio_sid = doc["twilio_sid"]
        row.records_prompts = bool(doc["records_prompts"])

    def closures(self, row: Closure | None, doc: dict[str, Any]) -> None:
        all_queues = doc["queues"] == "all"
        slugs = [] if all_queues else doc["queues"]
        queues = [self.session.get_one(Queue, self.ids.queue[slug]) for slug in slugs]
        row = row or self._new(Closure, queues=[])
        row.all_queues = all_queues
        row.queues = queues
        row.starts_at = _instant(doc["starts_at"])  # type: ignore[assignment]
        row.ends_at = _instant(doc["ends_at"])
        row.ended_early_at = _instant(doc["ended_early_at"])
        row.reason = doc["reason"]
        row.message = doc["message"]
        row.created_by_id = self.ids.get(self.ids.user, doc["created_by"])

    def directory(self, row: DirectoryEntry | None, doc: dict[str, Any]) -> None:
        row = row or self._new(DirectoryEntry)
        for name in ("name", "department", "title", "keywords", "phone_number", "mobile_number", "email"):
            setattr(row, name, doc[name])
        row.user_id = self.ids.get(self.ids.user, doc["user"])
        row.availability = doc["availability"]
        row.away_note = doc["away_note"]
        row.away_until = _instant(doc["away_until"])
        row.search_text = search_text(row.name, row.department, row.title, row.keywords)

    def message_templates(self, row: MessageTemplate | None, doc: dict[str, Any]) -> None:
        row = row or self._new(MessageTemplate, name=doc["name"])
        row.channel = doc["channel"]
        row.subject = doc["subject"]
        row.body = doc["body"]

    def prompts(self, row: Prompt | None, doc: dict[str, Any]) -> None:
        if row is None:
            row = self._new(
                Prompt,
                kind=doc["kind"],
                language=doc["language"],
                queue_id=self.ids.get(self.ids.queue, doc["queue"]),
            )
        # Audio is never in a file: an existing recording of this prompt is kept.
        row.text = doc["text"]


def search_text(*parts: str | None) -> str:
    """Lower-cased, diacritics removed: "Åke Öberg Ekonomi" -> "ake oberg ekonomi"."""
    return fold(" ".join(p for p in parts if p))
