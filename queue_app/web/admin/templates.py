"""The message template pages: list, add, edit (chosen by its id in the path), remove.

A template that uses an unknown field is refused with the field's name on the field it is in.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField, TextAreaField

from ...auth import admin_required, get_in_organisation, in_organisation
from ...domain.message_templates import TEMPLATE_FIELDS
from ...extensions import db
from ...models import MessageTemplate, TemplateChannel
from ...services import admin_templates
from ...services.audit import ChangeRefused
from ..admin_forms import EmptyForm, options
from . import actor, bp, now, page, refuse

FIELD_HELP = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)


class TemplateForm(FlaskForm):
    name = StringField(
        _l("Name"), description=_l("What operators pick from the list when they send a message.")
    )
    channel = SelectField(
        _l("Sent as"),
        choices=options(
            [
                (TemplateChannel.ANY.value, _l("SMS or e-mail")),
                (TemplateChannel.SMS.value, _l("SMS only")),
                (TemplateChannel.EMAIL.value, _l("E-mail only")),
            ]
        ),
    )
    subject = StringField(_l("E-mail subject"), description=_l("Not used for SMS."))
    body = TextAreaField(
        _l("Message"),
        description=_l(
            "The fields filled in from the call: %(fields)s. Write a literal brace as {{ or }}.",
            fields=FIELD_HELP,
        ),
    )


def _values(form: TemplateForm) -> dict[str, Any]:
    return {name: getattr(form, name).data for name in admin_templates.FIELDS}


@bp.get("/templates")
@admin_required
def templates() -> Any:
    rows = db.session.scalars(
        in_organisation(select(MessageTemplate), MessageTemplate, actor()).order_by(MessageTemplate.name)
    ).all()
    return page("admin/templates.html", rows=rows, fields=FIELD_HELP)


@bp.route("/templates/new", methods=["GET", "POST"])
@admin_required
def new_template() -> Any:
    form = TemplateForm()
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                admin_templates.add_template(session, actor(), _values(form), now())
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("The template was added."), "info")
            return redirect(url_for("admin.templates"))
    status = 422 if request.method == "POST" else 200
    return page("admin/templates_form.html", status, form=form, row=None, button=EmptyForm())


@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_template(template_id: int) -> Any:
    row = get_in_organisation(db.session, MessageTemplate, template_id, actor())
    form = TemplateForm(obj=row) if request.method == "GET" else TemplateForm()
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                target = get_in_organisation(session, MessageTemplate, template_id, actor())
                admin_templates.update_template(session, actor(), target, _values(form), now())
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("Saved."), "info")
            return redirect(url_for("admin.edit_template", template_id=template_id))
    status = 422 if request.method == "POST" else 200
    return page("admin/templates_form.html", status, form=form, row=row, button=EmptyForm())


@bp.post("/templates/<int:template_id>/delete")
@admin_required
def delete_template(template_id: int) -> Any:
    get_in_organisation(db.session, MessageTemplate, template_id, actor())
    if not EmptyForm().validate_on_submit():
        abort(400)
    with db.transaction() as session:
        row = get_in_organisation(session, MessageTemplate, template_id, actor())
        admin_templates.delete_template(session, actor(), row, now())
    flash(_("The template was removed."), "info")
    return redirect(url_for("admin.templates"))
