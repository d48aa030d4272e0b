"""Temporary closures: close many queues at once, end a closure now, import closures from an .ics.

A queue id that is not one of the admin's organisation's queues is a 404, like any other id. The
import shows a preview of every event (services/closure_import.py) and carries the file's text in the
confirm form, which checks it all again; nothing is created while an event has a problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import BooleanField, HiddenField, TextAreaField

from ...auth import admin_required, get_in_organisation, in_organisation
from ...domain import hours
from ...extensions import db
from ...models import Closure, Queue
from ...services import admin_schedules, closure_import
from ...services.audit import ChangeRefused
from ..admin_forms import ClosureForm, EmptyForm, MultiCheckboxField, options
from . import actor, bp, now, page, refuse
from .schedules import get_in_organisation_org


class ClosureImportForm(FlaskForm):
    file = FileField(
        _l("Calendar file (.ics)"),
        description=_l(
            "Each event becomes a closure, with its title as the reason and its description as the "
            "message to callers. Exported from Outlook, Google or Apple calendars; at most 256 KB."
        ),
    )
    all_queues = BooleanField(_l("All queues"), description=_l("Also queues added later."))
    queues = MultiCheckboxField(_l("Queues"), coerce=int)


class ConfirmClosureImportForm(FlaskForm):
    ics_text = TextAreaField()
    filename = HiddenField()
    all_queues = BooleanField()
    queues = MultiCheckboxField(coerce=int)


def _own_queues() -> Sequence[Queue]:
    return db.session.scalars(in_organisation(select(Queue), Queue, actor()).order_by(Queue.name)).all()


def _queue_choices(form: Any, field_name: str, queues: Sequence[Queue]) -> None:
    """The form's queue choices; a posted id that is not one of them is another organisation's: 404."""
    form.queues.choices = options([(q.id, q.name) for q in queues])
    own = {str(q.id) for q in queues}
    if any(raw not in own for raw in request.form.getlist(field_name)):
        abort(404)


def _chosen(form: Any) -> list[int] | None:
    return None if form.all_queues.data else list(form.queues.data or [])


def _local(value: datetime, timezone: str) -> datetime:
    """A naive datetime-local from the form, read in the organisation's zone, as aware UTC."""
    return hours.local_to_utc(value.date(), value.time(), hours.zone(timezone))


def _closures_page(form: ClosureForm, import_form: ClosureImportForm, status: int) -> Any:
    user = actor()
    organisation = get_in_organisation_org()
    at = now()
    rows = admin_schedules.current_closures(db.session, user.organisation_id, at)
    names = admin_schedules.closure_queue_names(db.session, [c.id for c in rows])
    return page(
        "admin/closures.html",
        status,
        form=form,
        import_form=import_form,
        rows=rows,
        names=names,
        at=at,
        button=EmptyForm(),
        timezone=organisation.timezone,
    )


def _import_form(queues: Sequence[Queue], formdata: bool = False) -> ClosureImportForm:
    form = (
        ClosureImportForm(prefix="import") if formdata else ClosureImportForm(prefix="import", formdata=None)
    )
    form.queues.choices = options([(q.id, q.name) for q in queues])
    return form


def _span(form: ClosureForm, at: datetime, timezone: str) -> tuple[datetime, datetime | None]:
    starts_at = at if form.start.data == "now" else _local(form.starts_at.data, timezone)
    if form.end.data == "duration":
        return starts_at, starts_at + timedelta(minutes=form.duration_minutes.data)
    if form.end.data == "at":
        return starts_at, _local(form.ends_at.data, timezone)
    return starts_at, None


@bp.route("/closures", methods=["GET", "POST"])
@admin_required
def closures() -> Any:
    user = actor()
    queues = _own_queues()
    form = ClosureForm()
    _queue_choices(form, "queues", queues)
    if form.validate_on_submit():
        at = now()
        starts_at, ends_at = _span(form, at, get_in_organisation_org().timezone)
        try:
            with db.transaction() as session:
                admin_schedules.create_closure(
                    session,
                    user,
                    queue_ids=_chosen(form),
                    starts_at=starts_at,
                    ends_at=ends_at,
                    reason=form.reason.data or None,
                    message=form.message.data or None,
                    now=at,
                )
        except ChangeRefused as refused:
            if refused.field == "until":
                refused.field = "ends_at" if form.end.data == "at" else "duration_minutes"
            refuse(form, refused)
        else:
            flash(_("The queues are closed as you asked."), "info")
            return redirect(url_for("admin.closures"))
    status = 422 if request.method == "POST" else 200
    return _closures_page(form, _import_form(queues), status)


@bp.post("/closures/<int:closure_id>/end")
@admin_required
def end_closure(closure_id: int) -> Any:
    EmptyForm().validate_on_submit()
    try:
        with db.transaction() as session:
            closure = get_in_organisation(session, Closure, closure_id, actor())
            admin_schedules.end_closure(session, actor(), closure, now())
    except ChangeRefused as refused:
        flash(refused.message, "error")
    else:
        flash(_("The closure has ended; the queues follow their opening hours again."), "info")
    return redirect(url_for("admin.closures"))


# --- Import from an .ics file -----------------------------------------------------------------------


def _preview_page(
    preview: closure_import.Preview, confirm: ConfirmClosureImportForm, queues: Sequence[Queue], status: int
) -> Any:
    chosen = set(confirm.queues.data or [])
    return page(
        "admin/closure_import.html",
        status,
        preview=preview,
        confirm=confirm,
        queue_names=[q.name for q in queues if q.id in chosen],
        timezone=get_in_organisation_org().timezone,
    )


@bp.post("/closures/import")
@admin_required
def import_closures() -> Any:
    queues = _own_queues()
    form = _import_form(queues, formdata=True)
    _queue_choices(form, "import-queues", queues)
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _closures_page(ClosureForm(formdata=None), form, 422)
    upload = request.files.get("import-file")
    data = upload.stream.read(closure_import.MAX_ICS_BYTES + 1) if upload else b""
    try:
        if not form.all_queues.data and not form.queues.data:
            raise ChangeRefused("queues", _("Choose at least one queue, or all queues."))
        preview = closure_import.preview(db.session, actor().organisation_id, data, now())
    except ChangeRefused as refused:
        refuse(form, refused)
        return _closures_page(ClosureForm(formdata=None), form, 422)
    confirm = ConfirmClosureImportForm(
        formdata=None,
        data={
            "ics_text": data.decode("utf-8-sig"),
            "filename": upload.filename if upload else None,
            "all_queues": form.all_queues.data,
            "queues": form.queues.data,
        },
    )
    confirm.queues.choices = form.queues.choices
    return _preview_page(preview, confirm, queues, 200 if preview.ok else 422)


@bp.post("/closures/import/confirm")
@admin_required
def confirm_closure_import() -> Any:
    queues = _own_queues()
    form = ConfirmClosureImportForm()
    _queue_choices(form, "queues", queues)
    if not form.validate_on_submit():
        abort(400)
    data = (form.ics_text.data or "").encode("utf-8")
    try:
        with db.transaction() as session:
            created = closure_import.apply_import(
                session,
                actor(),
                data,
                queue_ids=_chosen(form),
                filename=form.filename.data or None,
                now=now(),
            )
    except ChangeRefused as refused:
        form.form_errors.append(refused.message)
        try:
            preview = closure_import.preview(db.session, actor().organisation_id, data, now())
        except ChangeRefused:
            preview = closure_import.Preview(())
        return _preview_page(preview, form, queues, 422)
    flash(
        ngettext("%(num)s closure was imported.", "%(num)s closures were imported.", len(created)),
        "info",
    )
    return redirect(url_for("admin.closures"))
