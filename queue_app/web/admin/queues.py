"""Queues: list, create, edit every setting, delete; the queue's hours preview and .ics."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from ...auth import admin_required, get_in_organisation, in_organisation
from ...domain import hours
from ...extensions import db
from ...models import Queue, Schedule, Skill
from ...services import admin_queues, admin_schedules, schedules
from ...services.audit import ChangeRefused
from ..admin_forms import QUEUE_GROUPS, EmptyForm, QueueForm, form_values, options
from . import actor, bp, now, page, refuse


def _queue_form(queue: Queue | None = None) -> QueueForm:
    form = QueueForm(obj=queue) if queue is not None else QueueForm()
    user = actor()
    names = db.session.execute(
        in_organisation(select(Schedule.id, Schedule.name), Schedule, user).order_by(Schedule.name)
    ).all()
    form.schedule_id.choices = options([(None, _("Always open"))] + [(i, n) for i, n in names])
    return form


REQUIRED_SKILL = "required_skill_"


def _skills() -> list[Skill]:
    return list(db.session.scalars(in_organisation(select(Skill), Skill, actor()).order_by(Skill.name)))


def _posted_skill_levels() -> tuple[dict[int, int], dict[str, str]]:
    """The required skills picked on the form (`required_skill_<id>`: level or "" for none), and
    the error of each field that does not hold one of the organisation's skills at a valid level."""
    own = {s.id for s in _skills()}
    levels: dict[int, int] = {}
    errors: dict[str, str] = {}
    for name, raw in request.form.items():
        if not name.startswith(REQUIRED_SKILL):
            continue
        suffix = name.removeprefix(REQUIRED_SKILL)
        if not suffix.isdigit() or int(suffix) not in own:
            errors["required_skills"] = _("Choose among your own skills.")
        elif raw.isdigit() and int(raw) in admin_queues.SKILL_LEVELS:
            levels[int(suffix)] = int(raw)
        elif raw != "":
            errors[name] = _("A skill level is 1 to 10.")
    return levels, errors


def _form_page(
    status: int, form: QueueForm, queue: Queue | None, skill_errors: dict[str, str] | None = None
) -> Any:
    if status == 422:
        shown = {s.id: request.form.get(f"{REQUIRED_SKILL}{s.id}", "") for s in _skills()}  # what was posted
    else:
        shown = {r.skill_id: str(r.min_level) for r in queue.required_skills} if queue else {}
    context: dict[str, Any] = {
        "form": form,
        "groups": QUEUE_GROUPS,
        "queue": queue,
        "skills": _skills(),
        "skill_levels": admin_queues.SKILL_LEVELS,
        "required": shown,
        "skill_errors": skill_errors or {},
    }
    if queue is not None:
        context["delete_form"] = EmptyForm()
    return page("admin/queue_form.html", status, **context)


def _refuse_skills(refused: ChangeRefused, skill_errors: dict[str, str]) -> bool:
    """Put a refusal about required skills next to them; False if it is about another field."""
    if refused.field and refused.field.startswith(("required_skill_", "required_skills")):
        skill_errors[refused.field] = refused.message
        return True
    return False


@bp.get("/")
@admin_required
def index() -> Any:
    return redirect(url_for("admin.queues"))


@bp.get("/queues")
@admin_required
def queues() -> Any:
    rows = admin_queues.queue_list(db.session, actor().organisation_id)
    return page("admin/queues.html", rows=rows, form=EmptyForm())


@bp.route("/queues/new", methods=["GET", "POST"])
@admin_required
def new_queue() -> Any:
    form = _queue_form()
    if request.method == "GET":
        for column in admin_queues.QUEUE_SETTINGS:
            default = Queue.__table__.c[column].default
            if default is not None and not callable(default.arg):
                form[column].data = default.arg
        return _form_page(200, form, None)
    levels, skill_errors = _posted_skill_levels()
    if form.validate_on_submit() and not skill_errors:
        values = form_values(form, admin_queues.QUEUE_SETTINGS)
        try:
            with db.transaction() as session:
                queue = admin_queues.create_queue(session, actor(), values, now(), levels)
                queue_id = queue.id
        except ChangeRefused as refused:
            if not _refuse_skills(refused, skill_errors):
                refuse(form, refused)
        else:
            flash(_("The queue was created. Now choose who may log in to it."), "info")
            return redirect(url_for("admin.members", queue_id=queue_id))
    return _form_page(422, form, None, skill_errors)


@bp.route("/queues/<int:queue_id>", methods=["GET", "POST"])
@admin_required
def edit_queue(queue_id: int) -> Any:
    queue = get_in_organisation(db.session, Queue, queue_id, actor())
    form = _queue_form(queue)
    if request.method == "GET":
        return _form_page(200, form, queue)
    levels, skill_errors = _posted_skill_levels()
    if form.validate_on_submit() and not skill_errors:
        values = form_values(form, admin_queues.QUEUE_SETTINGS)
        try:
            with db.transaction() as session:
                row = get_in_organisation(session, Queue, queue_id, actor())
                admin_queues.update_queue(session, actor(), row, values, now(), levels)
        except ChangeRefused as refused:
            if not _refuse_skills(refused, skill_errors):
                refuse(form, refused)
        else:
            flash(_("Saved."), "info")
            return redirect(url_for("admin.edit_queue", queue_id=queue_id))
    db.session.rollback()
    return _form_page(422, form, get_in_organisation(db.session, Queue, queue_id, actor()), skill_errors)


@bp.post("/queues/<int:queue_id>/delete")
@admin_required
def delete_queue(queue_id: int) -> Any:
    form = EmptyForm()
    if not form.validate_on_submit():  # pragma: no cover - CSRFProtect answers first
        return redirect(url_for("admin.queues"))
    try:
        with db.transaction() as session:
            queue = get_in_organisation(session, Queue, queue_id, actor())
            name = queue.name
            admin_queues.delete_queue(session, actor(), queue, now())
    except ChangeRefused as refused:
        flash(refused.message, "error")
        return redirect(url_for("admin.edit_queue", queue_id=queue_id)), 303
    flash(_("%(queue)s was deleted.", queue=name), "info")
    return redirect(url_for("admin.queues"))


@bp.get("/queues/<int:queue_id>/hours")
@admin_required
def queue_hours(queue_id: int) -> Any:
    """What callers of this queue meet: its hours with closures, the coming week and changes."""
    queue = get_in_organisation(db.session, Queue, queue_id, actor())
    at = now()
    value = schedules.load_schedule(db.session, queue.id, at)
    return page(
        "admin/queue_hours.html",
        queue=queue,
        status=hours.status(value, at),
        week=admin_schedules.week(value, at),
        transitions=admin_schedules.transitions(value, at),
        timezone=value.timezone,
    )


@bp.get("/queues/<int:queue_id>/hours.ics")
@admin_required
def queue_ics(queue_id: int) -> Any:
    queue = get_in_organisation(db.session, Queue, queue_id, actor())
    body = schedules.queue_ics(db.session, queue.id, now())
    return Response(
        body,
        mimetype="text/calendar",
        headers={"Content-Disposition": f'attachment; filename="{queue.slug}.ics"'},
    )
