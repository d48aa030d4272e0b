"""The directory pages: list and search, add, edit, remove, CSV import with a preview, CSV export.

An entry is chosen by its id in the path (looked up in the admin's organisation, else 404). The import is all
or nothing (services/admin_directory.py): the preview stores nothing, and "import" is refused while
any row has an error. The preview carries the file's text in the confirm form, which checks it again.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import StringField, TextAreaField

from ...auth import admin_required, get_in_organisation, in_organisation
from ...domain.text import fold
from ...extensions import db
from ...models import DirectoryEntry
from ...services import admin_directory
from ...services.audit import ChangeRefused
from ..admin_forms import EmptyForm
from . import actor, bp, now, page, refuse

PAGE_SIZE = 200


class EntryForm(FlaskForm):
    name = StringField(
        _l("Name"), description=_l("As the receptionist searches for it: first and last name.")
    )
    department = StringField(_l("Department"))
    title = StringField(_l("Title"))
    keywords = TextAreaField(
        _l("Keywords"), description=_l("Words that should find this entry too, e.g. what the person handles.")
    )
    phone_number = StringField(_l("Phone number"), description=_l("International form, e.g. +46812345678."))
    mobile_number = StringField(_l("Mobile number"), description=_l("International form, e.g. +46701234567."))
    email = StringField(_l("E-mail"), description=_l("Where messages from the switchboard are sent."))


class ImportForm(FlaskForm):
    file = FileField(
        _l("CSV file"),
        description=_l(
            "Columns: id, name, department, title, keywords, phone_number, mobile_number, email "
            "(comma or semicolon). Rows with an id update that entry; rows without add one."
        ),
    )


class ConfirmImportForm(FlaskForm):
    csv_text = TextAreaField()


def _values(form: EntryForm) -> dict[str, Any]:
    return {name: getattr(form, name).data for name in admin_directory.FIELDS}


def _show_errors(form: EntryForm, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        refuse(form, ChangeRefused(name, message))


@bp.get("/directory")
@admin_required
def directory() -> Any:
    user = actor()
    query = request.args.get("q", "").strip()
    statement = in_organisation(select(DirectoryEntry), DirectoryEntry, user)
    for word in fold(query).split():
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(
            DirectoryEntry.search_text.like(f"{escaped}%", escape="\\")
            | DirectoryEntry.search_text.like(f"% {escaped}%", escape="\\")
        )
    rows = db.session.scalars(
        statement.order_by(DirectoryEntry.name, DirectoryEntry.id).limit(PAGE_SIZE)
    ).all()
    return page("admin/directory.html", rows=rows, q=query, import_form=ImportForm(formdata=None))


@bp.route("/directory/new", methods=["GET", "POST"])
@admin_required
def new_entry() -> Any:
    form = EntryForm()
    if form.validate_on_submit():
        cleaned, errors = admin_directory.clean(_values(form))
        if errors:
            _show_errors(form, errors)
        else:
            with db.transaction() as session:
                admin_directory.add_entry(session, actor(), cleaned, now())
            flash(_("The entry was added to the directory."), "info")
            return redirect(url_for("admin.directory"))
    status = 422 if request.method == "POST" else 200
    return page("admin/directory_form.html", status, form=form, entry=None, button=EmptyForm())


@bp.route("/directory/<int:entry_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_entry(entry_id: int) -> Any:
    entry = get_in_organisation(db.session, DirectoryEntry, entry_id, actor())
    form = EntryForm(obj=entry) if request.method == "GET" else EntryForm()
    if form.validate_on_submit():
        cleaned, errors = admin_directory.clean(_values(form))
        if errors:
            _show_errors(form, errors)
        else:
            with db.transaction() as session:
                row = get_in_organisation(session, DirectoryEntry, entry_id, actor())
                admin_directory.update_entry(session, actor(), row, cleaned, now())
            flash(_("Saved."), "info")
            return redirect(url_for("admin.edit_entry", entry_id=entry_id))
    status = 422 if request.method == "POST" else 200
    return page("admin/directory_form.html", status, form=form, entry=entry, button=EmptyForm())


@bp.post("/directory/<int:entry_id>/delete")
@admin_required
def delete_entry(entry_id: int) -> Any:
    get_in_organisation(db.session, DirectoryEntry, entry_id, actor())
    if not EmptyForm().validate_on_submit():
        abort(400)
    with db.transaction() as session:
        row = get_in_organisation(session, DirectoryEntry, entry_id, actor())
        admin_directory.delete_entry(session, actor(), row, now())
    flash(_("The entry was removed from the directory."), "info")
    return redirect(url_for("admin.directory"))


@bp.post("/directory/import")
@admin_required
def import_preview() -> Any:
    form = ImportForm()
    if not form.validate_on_submit():
        abort(400)
    upload = request.files.get("file")
    data = upload.stream.read(admin_directory.MAX_IMPORT_BYTES + 1) if upload else b""
    checked = admin_directory.preview(db.session, actor().organisation_id, data)
    confirm = ConfirmImportForm(formdata=None, data={"csv_text": admin_directory.decode(data)})
    return page(
        "admin/directory_import.html",
        200 if checked.ok else 422,
        preview=checked,
        confirm=confirm,
        fields=admin_directory.FIELDS,
    )


@bp.post("/directory/import/confirm")
@admin_required
def import_confirm() -> Any:
    form = ConfirmImportForm()
    if not form.validate_on_submit():
        abort(400)
    data = (form.csv_text.data or "").encode("utf-8")
    try:
        with db.transaction() as session:
            counts = admin_directory.apply_import(session, actor(), data, now())
    except ChangeRefused as refused:
        checked = admin_directory.preview(db.session, actor().organisation_id, data)
        form.form_errors.append(refused.message)
        return page(
            "admin/directory_import.html", 422, preview=checked, confirm=form, fields=admin_directory.FIELDS
        )
    flash(
        _(
            "Imported: %(add)s added, %(update)s updated, %(unchanged)s unchanged.",
            add=counts["add"],
            update=counts["update"],
            unchanged=counts["unchanged"],
        ),
        "info",
    )
    return redirect(url_for("admin.directory"))


@bp.get("/directory.csv")
@admin_required
def directory_csv() -> Any:
    body = admin_directory.export_csv(db.session, actor().organisation_id)
    return Response(
        "\ufeff" + body,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="directory.csv"'},
    )
