"""Users, their skills, and who may see and log in to each queue.

Being a member with "may log in" is what delivers the service and what a licence is charged for,
so every change here ends with `licences.sync` in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import PLANS_THAT_MAY_LOG_IN, Queue, QueueMembership, Role, Skill, User, UserSkill
from . import licences, operators, users
from .audit import Actor, ChangeRefused, created, diff, record, snapshot

USER_FIELDS = ("email", "name", "role", "plan", "phone_number", "client_identity", "locale", "is_active")
EDITABLE_USER_FIELDS = ("name", "role", "plan", "phone_number", "client_identity", "locale", "is_active")
LOG_IN_PLANS = frozenset(p.value for p in PLANS_THAT_MAY_LOG_IN)


def temporary_password() -> str:
    return secrets.token_urlsafe(12)


def _check_identity(session: Session, client_identity: str | None, user_id: int | None) -> None:
    if client_identity is None:
        return
    taken = session.scalar(
        select(User.id).where(User.client_identity == client_identity, User.id != (user_id or -1))
    )
    if taken is not None:
        raise ChangeRefused("client_identity", _("Another user already has this browser identity."))


def create_user(
    session: Session, actor: Actor, values: Mapping[str, Any], password: str | None, now: datetime
) -> User:
    _check_identity(session, values.get("client_identity"), None)
    try:
        user = users.add_user(session, actor.organisation_id, password=password, **values)
    except users.EmailTaken:
        raise ChangeRefused("email", _("There is already a user with this e-mail address.")) from None
    except users.UserError as error:
        raise ChangeRefused(None, str(error)) from None
    record(session, actor, "user.create", user, created(snapshot(user, USER_FIELDS)), at=now)
    return user


def _user_state(user: User) -> dict[str, Any]:
    state = snapshot(user, EDITABLE_USER_FIELDS)
    state["skills"] = {s.skill.name: s.level for s in user.skills}
    return state


def update_user(
    session: Session,
    actor: Actor,
    user: User,
    values: Mapping[str, Any],
    skill_levels: Mapping[int, int | None],
    now: datetime,
) -> dict[str, list[Any]]:
    """Change a user's details and skills (`{skill_id: level or None to remove}`)."""
    if user.id == actor.id and values.get("role") != Role.ADMIN.value:
        raise ChangeRefused("role", _("You cannot take away your own administrator role."))
    if user.id == actor.id and not values.get("is_active", True):
        raise ChangeRefused("is_active", _("You cannot deactivate yourself."))
    if values.get("plan") not in LOG_IN_PLANS:
        queues = session.scalars(
            select(Queue.name)
            .join(QueueMembership, QueueMembership.queue_id == Queue.id)
            .where(QueueMembership.user_id == user.id, QueueMembership.may_log_in.is_(True))
            .order_by(Queue.name)
        ).all()
        if queues:
            raise ChangeRefused(
                "plan",
                _(
                    "The Basic plan does not include taking calls, and %(name)s may log in to "
                    "%(queues)s. Remove that first, or choose Pro, Business or Enterprise.",
                    name=user.name,
                    queues=", ".join(queues),
                ),
            )
    _check_identity(session, values.get("client_identity"), user.id)
    skills = {
        s.id: s for s in session.scalars(select(Skill).where(Skill.organisation_id == actor.organisation_id))
    }
    before = _user_state(user)
    deactivating = user.is_active and values.get("is_active") is False
    for name, value in values.items():
        if not (deactivating and name == "is_active"):
            setattr(user, name, value)
    if deactivating:
        operators.deactivate(session, user, now)  # also logs them out of their queues
    current = {s.skill_id: s for s in user.skills}
    for skill_id, level in skill_levels.items():
        if skill_id not in skills:
            raise ChangeRefused(None, _("Choose among your own skills."))
        if level is None:
            if skill_id in current:
                user.skills.remove(current[skill_id])
        elif skill_id in current:
            current[skill_id].level = level
        else:
            user.skills.append(UserSkill(skill=skills[skill_id], level=level))
    session.flush()
    session.refresh(user, ["skills"])
    changes = diff(before, _user_state(user))
    if changes:
        record(session, actor, "user.update", user, changes, at=now)
        licences.sync(session, actor.organisation_id, actor.id, now)
    return changes


def add_skill(session: Session, actor: Actor, name: str, now: datetime) -> Skill:
    exists = session.scalar(
        select(Skill.id).where(
            Skill.organisation_id == actor.organisation_id, func.lower(Skill.name) == name.lower()
        )
    )
    if exists is not None:
        raise ChangeRefused("name", _("There is already a skill with this name."))
    skill = Skill(organisation_id=actor.organisation_id, name=name)
    session.add(skill)
    session.flush()
    record(session, actor, "skill.create", skill, created({"name": name}), at=now)
    return skill


def memberships_of(session: Session, queue: Queue) -> dict[int, QueueMembership]:
    return {
        m.user_id: m
        for m in session.scalars(select(QueueMembership).where(QueueMembership.queue_id == queue.id))
    }


def set_memberships(
    session: Session,
    actor: Actor,
    queue: Queue,
    wanted: Mapping[int, tuple[bool, bool]],
    now: datetime,
) -> dict[str, list[Any]]:
    """Set may-see / may-log-in for the given users of the organisation on one queue.

    "May log in" implies "may see". A user with neither loses the membership. A Basic-plan user
    cannot be given "may log in": the whole change is refused, naming the user.
    """
    people = {
        u.id: u
        for u in session.scalars(
            select(User).where(User.organisation_id == actor.organisation_id, User.id.in_(list(wanted)))
        )
    }
    if len(people) != len(set(wanted)):
        raise ChangeRefused(None, _("Choose among your own users."))
    for user_id, (_see, log_in) in wanted.items():
        if log_in and people[user_id].plan not in LOG_IN_PLANS:
            raise ChangeRefused(
                f"may_log_in_{user_id}",
                _(
                    "%(name)s is on the Basic plan, which does not include taking calls. "
                    "Change the plan to Pro, Business or Enterprise first.",
                    name=people[user_id].name,
                ),
            )
    current = memberships_of(session, queue)
    changes: dict[str, list[Any]] = {}
    for user_id, (see, log_in) in sorted(wanted.items()):
        see = see or log_in
        membership = current.get(user_id)
        before = [membership.may_see, membership.may_log_in] if membership else [False, False]
        if before == [see, log_in]:
            continue
        if not see:
            session.delete(membership)
        elif membership is None:
            session.add(QueueMembership(queue_id=queue.id, user_id=user_id, may_see=see, may_log_in=log_in))
        else:
            membership.may_see, membership.may_log_in = see, log_in
        label = people[user_id].email
        changes[label] = [
            {"may_see": before[0], "may_log_in": before[1]},
            {"may_see": see, "may_log_in": log_in},
        ]
    if changes:
        session.flush()
        record(session, actor, "membership.update", queue, changes, at=now)
        licences.sync(session, actor.organisation_id, actor.id, now)
    return changes
