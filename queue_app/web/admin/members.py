"""Users (role, plan, device, skills) and each queue's members (may see, may log in)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ...auth import admin_required, get_in_organisation, in_organisation
from ...extensions import db
from ...models import Queue, QueueMembership, Skill, User
from ...services import admin_members, invitations, licences
from ...services.audit import ChangeRefused
from ..admin_forms import EditUserForm, EmptyForm, NewUserForm, SkillForm, form_values
from . import actor, bp, now, page, refuse

NEW_USER_FIELDS = ("email", "name", "role", "plan", "phone_number", "client_identity", "locale")
EDIT_USER_FIELDS = ("name", "role", "plan", "phone_number", "client_identity", "locale", "is_active")
LEVELS = range(1, 11)


def _skills() -> list[Skill]:
    return list(db.session.scalars(in_organisation(select(Skill), Skill, actor()).order_by(Skill.name)))


@bp.get("/users")
@admin_required
def users() -> Any:
    user = actor()
    rows = db.session.scalars(
        in_organisation(select(User), User, user)
        .options(selectinload(User.skills))
        .order_by(User.name, User.id)
    ).all()
    licensed = licences.licensed_user_ids(db.session, user.organisation_id)
    invited = invitations.latest(db.session, [u.id for u in rows])
    return page(
        "admin/users.html",
        rows=rows,
        licensed=licensed,
        invited=invited,
        skill_form=SkillForm(),
        skills=_skills(),
    )


@bp.post("/skills")
@admin_required
def add_skill() -> Any:
    form = SkillForm()
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                admin_members.add_skill(session, actor(), form.name.data, now())
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("The skill was added; give it to users on their pages."), "info")
            return redirect(url_for("admin.users"))
    user = actor()
    rows = db.session.scalars(in_organisation(select(User), User, user).order_by(User.name)).all()
    licensed = licences.licensed_user_ids(db.session, user.organisation_id)
    invited = invitations.latest(db.session, [u.id for u in rows])
    return page(
        "admin/users.html",
        422,
        rows=rows,
        licensed=licensed,
        invited=invited,
        skill_form=form,
        skills=_skills(),
    )


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def new_user() -> Any:
    form = NewUserForm()
    if form.validate_on_submit():
        values = form_values(form, NEW_USER_FIELDS)
        password = admin_members.temporary_password() if form.set_password.data else None
        try:
            with db.transaction() as session:
                created = admin_members.create_user(session, actor(), values, password, now())
                user_id, email = created.id, created.email
                if form.invite.data:
                    invitations.invite(session, actor().id, created, now())
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            # Shown on this response only, never stored in the session or a flash message.
            return page(
                "admin/user_created.html",
                user_id=user_id,
                name=values["name"],
                password=password,
                invited=email if form.invite.data else None,
            )
    status = 422 if request.method == "POST" else 200
    return page("admin/user_form.html", status, form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def edit_user(user_id: int) -> Any:
    user = get_in_organisation(db.session, User, user_id, actor())
    form = EditUserForm(obj=user) if request.method == "GET" else EditUserForm()
    if request.method == "GET":
        form.locale.data = user.locale or ""
    skills = _skills()
    current = {s.skill_id: s.level for s in user.skills}
    if form.validate_on_submit():
        levels: dict[int, int | None] = {}
        bad = []
        for skill in skills:
            raw = request.form.get(f"skill_{skill.id}", "")
            if raw == "":
                levels[skill.id] = None
            elif raw.isdigit() and int(raw) in LEVELS:
                levels[skill.id] = int(raw)
            else:
                bad.append(skill.name)
        if bad:
            form.form_errors.append(_("A skill level is 1 to 10."))
        else:
            try:
                with db.transaction() as session:
                    row = get_in_organisation(session, User, user_id, actor())
                    admin_members.update_user(
                        session, actor(), row, form_values(form, EDIT_USER_FIELDS), levels, now()
                    )
            except ChangeRefused as refused:
                refuse(form, refused)
            else:
                flash(_("Saved."), "info")
                return redirect(url_for("admin.edit_user", user_id=user_id))
        current = {s.id: request.form.get(f"skill_{s.id}", "") for s in skills}
    queues = db.session.execute(
        select(Queue.id, Queue.name, QueueMembership.may_log_in)
        .join(QueueMembership, QueueMembership.queue_id == Queue.id)
        .where(QueueMembership.user_id == user.id)
        .order_by(Queue.name)
    ).all()
    status = 422 if request.method == "POST" else 200
    return page(
        "admin/user_form.html",
        status,
        form=form,
        user=user,
        skills=skills,
        current=current,
        levels=LEVELS,
        queues=queues,
        invitation=invitations.latest(db.session, [user.id]).get(user.id),
        invite_form=EmptyForm(),
        at=now(),
    )


@bp.post("/users/<int:user_id>/invite")
@admin_required
def invite_user(user_id: int) -> Any:
    """Send the invitation again: a new link (the old one stops working), e-mailed by the worker."""
    EmptyForm().validate_on_submit()  # CSRFProtect has already refused a missing or wrong token
    try:
        with db.transaction() as session:
            row = get_in_organisation(session, User, user_id, actor())
            invitations.invite(session, actor().id, row, now())
            email = row.email
    except ChangeRefused as refused:
        flash(refused.message, "error")
    else:
        flash(
            _("A new invitation is on its way to %(email)s; the old link no longer works.", email=email),
            "info",
        )
    return redirect(url_for("admin.edit_user", user_id=user_id) + "#invitation")


@bp.route("/queues/<int:queue_id>/members", methods=["GET", "POST"])
@admin_required
def members(queue_id: int) -> Any:
    user = actor()
    queue = get_in_organisation(db.session, Queue, queue_id, user)
    people = db.session.scalars(
        in_organisation(select(User), User, user).where(User.is_active.is_(True)).order_by(User.name, User.id)
    ).all()
    form = EmptyForm()
    errors: dict[int, str] = {}
    status = 200
    if form.validate_on_submit():
        wanted = {
            p.id: (f"may_see_{p.id}" in request.form, f"may_log_in_{p.id}" in request.form) for p in people
        }
        try:
            with db.transaction() as session:
                row = get_in_organisation(session, Queue, queue_id, user)
                changes = admin_members.set_memberships(session, user, row, wanted, now())
        except ChangeRefused as refused:
            if refused.field and refused.field.startswith("may_log_in_"):
                errors[int(refused.field.rpartition("_")[2])] = refused.message
            else:
                form.form_errors.append(refused.message)
            status = 422
        else:
            flash(_("Saved.") if changes else _("Nothing changed."), "info")
            return redirect(url_for("admin.members", queue_id=queue_id))
    memberships = admin_members.memberships_of(db.session, queue)
    if status == 422:
        shown = {
            p.id: (f"may_see_{p.id}" in request.form, f"may_log_in_{p.id}" in request.form) for p in people
        }
    else:
        shown = {
            p.id: (m.may_see, m.may_log_in) if (m := memberships.get(p.id)) else (False, False)
            for p in people
        }
    return page(
        "admin/members.html",
        status,
        queue=queue,
        people=people,
        shown=shown,
        errors=errors,
        form=form,
        log_in_plans=admin_members.LOG_IN_PLANS,
    )
