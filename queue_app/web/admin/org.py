"""Organisation settings, its phone numbers, and the licence page with its CSV export."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from ...auth import admin_required, get_in_organisation, in_organisation
from ...extensions import db
from ...models import Organisation, PhoneNumber, Queue
from ...services import admin_org, licences
from ...services.audit import ChangeRefused
from ..admin_forms import EditNumberForm, EmptyForm, NumberForm, OrganisationForm, form_values, options
from . import actor, bp, now, page, refuse


def _queue_choices(form: Any) -> None:
    names = db.session.execute(
        in_organisation(select(Queue.id, Queue.name), Queue, actor()).order_by(Queue.name)
    ).all()
    form.queue_id.choices = options([(None, _("No queue (not in use)"))] + [(i, n) for i, n in names])


def _organisation_page(status: int = 200, form: Any = None, number_form: Any = None) -> Any:
    user = actor()
    organisation = db.session.get(Organisation, user.organisation_id)
    if form is None:
        form = OrganisationForm(formdata=None, obj=organisation)
    if number_form is None:
        number_form = NumberForm(formdata=None)
    _queue_choices(number_form)
    numbers = db.session.scalars(
        in_organisation(select(PhoneNumber), PhoneNumber, user).order_by(PhoneNumber.number)
    ).all()
    return page(
        "admin/organisation.html",
        status,
        form=form,
        number_form=number_form,
        numbers=numbers,
        button=EmptyForm(),
    )


@bp.route("/organisation", methods=["GET", "POST"])
@admin_required
def organisation() -> Any:
    if request.method == "GET":
        return _organisation_page()
    form = OrganisationForm()
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                row = session.get(Organisation, actor().organisation_id)
                admin_org.update_organisation(
                    session, actor(), row, form_values(form, admin_org.ORGANISATION_FIELDS), now()
                )
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("Saved. Changes to language and time zone show from the next page you open."), "info")
            return redirect(url_for("admin.organisation"))
    return _organisation_page(422, form=form)


@bp.post("/numbers")
@admin_required
def add_number() -> Any:
    form = NumberForm()
    _queue_choices(form)
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                admin_org.add_number(
                    session,
                    actor(),
                    form.number.data,
                    form.label.data or None,
                    form.queue_id.data,
                    now(),
                    records_prompts=bool(form.records_prompts.data),
                )
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("The number was added."), "info")
            return redirect(url_for("admin.organisation") + "#numbers")
    return _organisation_page(422, number_form=form)


@bp.route("/numbers/<int:number_id>", methods=["GET", "POST"])
@admin_required
def edit_number(number_id: int) -> Any:
    row = get_in_organisation(db.session, PhoneNumber, number_id, actor())
    form = EditNumberForm(obj=row) if request.method == "GET" else EditNumberForm()
    _queue_choices(form)
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                number = get_in_organisation(session, PhoneNumber, number_id, actor())
                admin_org.update_number(
                    session,
                    actor(),
                    number,
                    form.label.data or None,
                    form.queue_id.data,
                    now(),
                    records_prompts=bool(form.records_prompts.data),
                )
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("Saved."), "info")
            return redirect(url_for("admin.organisation") + "#numbers")
    status = 422 if request.method == "POST" else 200
    return page("admin/number_form.html", status, form=form, number=row, button=EmptyForm())


@bp.post("/numbers/<int:number_id>/delete")
@admin_required
def delete_number(number_id: int) -> Any:
    EmptyForm().validate_on_submit()
    with db.transaction() as session:
        row = get_in_organisation(session, PhoneNumber, number_id, actor())
        admin_org.delete_number(session, actor(), row, now())
    flash(_("The number was removed; calls to it no longer reach a queue."), "info")
    return redirect(url_for("admin.organisation") + "#numbers")


@bp.get("/licences")
@admin_required
def licence_page() -> Any:
    user = actor()
    at = now()
    rows = licences.this_month(db.session, user.organisation_id, at)
    return page(
        "admin/licences.html",
        rows=rows,
        count=len(rows),
        licensed_now=sum(1 for r in rows if r.licensed_now),
        changes=licences.changes(db.session, user.organisation_id),
        month=licences.month_start(at, user.timezone),
    )


@bp.get("/licences.csv")
@admin_required
def licence_csv() -> Any:
    user = actor()
    at = now()
    rows = licences.this_month(db.session, user.organisation_id, at)
    month = licences.month_start(at, user.timezone).strftime("%Y-%m")
    return Response(
        licences.month_csv(rows, user.timezone),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="licences-{month}.csv"'},
    )
