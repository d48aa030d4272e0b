"""Queues as the admin pages change them: create, edit every setting, delete.

Field values arrive already parsed by the form (each field with the config file's own rule from
`config_schema`); what needs the database or several fields at once is checked here, with the rules
of `config_validate`, so a queue set up on the page and one imported from a file obey the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import (
    FINAL_CALL_STATES,
    PLANS_THAT_MAY_LOG_IN,
    Call,
    Queue,
    QueueMembership,
    QueueSkill,
    Schedule,
    Skill,
    User,
)
from . import licences
from .audit import Actor, ChangeRefused, created, deleted, diff, record, snapshot
from .config_schema import QUEUE_COLUMNS, Problems
from .config_validate import _check_queue_actions

# Every setting the edit page shows; the config file's queue columns plus the opening hours.
QUEUE_SETTINGS = (*QUEUE_COLUMNS, "schedule_id")
# The levels of a skill, as users have them (and as the config file allows for required skills).
SKILL_LEVELS = range(1, 11)


def settings_of(queue: Queue) -> dict[str, Any]:
    """The settings as the audit log records them, required skills by name: {"Engelska": 3}."""
    settings = snapshot(queue, QUEUE_SETTINGS)
    settings["required_skills"] = dict(sorted((s.skill.name, s.min_level) for s in queue.required_skills))
    return settings


def set_required_skills(session: Session, actor: Actor, queue: Queue, levels: Mapping[int, int]) -> None:
    """Make the queue require exactly these skills (`{skill id: minimum level}`); refused as a whole
    when a skill is not the organisation's or a level is out of range."""
    skills = {
        s.id: s for s in session.scalars(select(Skill).where(Skill.organisation_id == actor.organisation_id))
    }
    for skill_id, level in levels.items():
        if skill_id not in skills:
            raise ChangeRefused("required_skills", _("Choose among your own skills."))
        if level not in SKILL_LEVELS:
            raise ChangeRefused(f"required_skill_{skill_id}", _("A skill level is 1 to 10."))
    current = {s.skill_id: s for s in queue.required_skills}
    for skill_id, row in current.items():
        if skill_id not in levels:
            queue.required_skills.remove(row)
    for skill_id, level in levels.items():
        if skill_id in current:
            current[skill_id].min_level = level
        else:
            queue.required_skills.append(QueueSkill(skill=skills[skill_id], min_level=level))


def members_who_may_log_in(session: Session, queue_id: int | None) -> int:
    if queue_id is None:
        return 0
    return int(
        session.scalar(
            select(func.count())
            .select_from(QueueMembership)
            .join(User, User.id == QueueMembership.user_id)
            .where(
                QueueMembership.queue_id == queue_id,
                QueueMembership.may_log_in.is_(True),
                User.is_active.is_(True),
                User.plan.in_([p.value for p in PLANS_THAT_MAY_LOG_IN]),
            )
        )
        or 0
    )


def calls_in_queue(session: Session, queue_id: int) -> int:
    """Callers still in the queue: waiting, ringing, camped on or waiting for a call back."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.queue_id == queue_id, Call.state.not_in([s.value for s in FINAL_CALL_STATES]))
        )
        or 0
    )


def check_settings(
    session: Session, organisation_id: int, queue_id: int | None, values: dict[str, Any]
) -> None:
    """Refuse values that need the database or several fields to judge; the first problem wins."""
    taken = session.scalar(
        select(Queue.id).where(
            Queue.organisation_id == organisation_id,
            Queue.slug == values["slug"],
            Queue.id != (queue_id or -1),
        )
    )
    if taken is not None:
        raise ChangeRefused("slug", _("Another queue already has this short name."))
    schedule_id = values.get("schedule_id")
    if schedule_id is not None and (
        session.scalar(
            select(Schedule.id).where(Schedule.id == schedule_id, Schedule.organisation_id == organisation_id)
        )
        is None
    ):
        raise ChangeRefused("schedule_id", _("Choose one of your opening hours."))
    may_log_in = members_who_may_log_in(session, queue_id)
    problems = Problems()
    doc = dict(values, memberships=[{"may_log_in": True}] * may_log_in)
    _check_queue_actions(doc, "", problems)
    for message in problems.messages:
        field = message.partition(":")[0]
        if field.endswith("_forward_number"):
            raise ChangeRefused(field, _("Enter the number to forward to, or choose another action."))
        if field == "parallel_count":
            raise ChangeRefused(
                field,
                _(
                    "Larger than the %(count)d members who may log in to this queue.",
                    count=may_log_in,
                ),
            )
        raise ChangeRefused(field or None, message)  # pragma: no cover - a rule added to the import


def create_queue(
    session: Session,
    actor: Actor,
    values: dict[str, Any],
    now: datetime,
    required_skills: Mapping[int, int] | None = None,
) -> Queue:
    check_settings(session, actor.organisation_id, None, values)
    queue = Queue(organisation_id=actor.organisation_id, required_skills=[], **values)
    session.add(queue)
    set_required_skills(session, actor, queue, required_skills or {})
    session.flush()
    record(session, actor, "queue.create", queue, created(settings_of(queue)), at=now)
    return queue


def update_queue(
    session: Session,
    actor: Actor,
    queue: Queue,
    values: dict[str, Any],
    now: datetime,
    required_skills: Mapping[int, int] | None = None,
) -> dict[str, list[Any]]:
    """Change the settings, and the required skills unless `required_skills` is None."""
    check_settings(session, actor.organisation_id, queue.id, values)
    before = settings_of(queue)
    for name, value in values.items():
        setattr(queue, name, value)
    if required_skills is not None:
        set_required_skills(session, actor, queue, required_skills)
    session.flush()
    changes = diff(before, settings_of(queue))
    if changes:
        record(session, actor, "queue.update", queue, changes, at=now)
    return changes


def delete_queue(session: Session, actor: Actor, queue: Queue, now: datetime) -> None:
    """Refused while callers are in the queue: they would be cut off mid-call."""
    waiting = calls_in_queue(session, queue.id)
    if waiting:
        raise ChangeRefused(
            None,
            _(
                "%(queue)s cannot be deleted while %(count)d callers are in it. Close it, wait "
                "until they have been served, then delete it.",
                queue=queue.name,
                count=waiting,
            ),
        )
    before = settings_of(queue)
    record(session, actor, "queue.delete", ("queues", queue.id), deleted(before), at=now)
    session.delete(queue)
    session.flush()
    licences.sync(session, actor.organisation_id, actor.id, now)


def queue_list(session: Session, organisation_id: int) -> list[dict[str, Any]]:
    """Each queue with its numbers, members who may log in and callers in it, for the list page."""
    queues = session.scalars(
        select(Queue).where(Queue.organisation_id == organisation_id).order_by(Queue.name, Queue.id)
    ).all()
    return [
        {
            "queue": queue,
            "numbers": sorted(n.number for n in queue.phone_numbers),
            "may_log_in": members_who_may_log_in(session, queue.id),
            "in_queue": calls_in_queue(session, queue.id),
        }
        for queue in queues
    ]
