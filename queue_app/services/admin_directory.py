"""The directory, as the admin keeps it: add, edit, remove, CSV import (with a preview) and export.

Values are checked with the configuration file's own rules (`config_schema`: E.164 numbers, e-mail
addresses, lengths), so the page, the CSV import and `config import` accept the same entries, and the
stored `search_text` is built the same way (`config_import.search_text`).

CSV import is all or nothing. The upload is checked row by row and shown as a preview (what each row
will do, and each bad row's errors) with nothing stored; "import" stores every row in one
transaction, and is refused, storing nothing, while any row has an error: fix the file and upload it
again. A row with an `id` (as exported) updates that entry; a row without one adds a new entry. So
an exported file imported again changes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import DirectoryEntry
from .audit import Actor, ChangeRefused, created, deleted, diff, record, snapshot
from .config_import import search_text
from .config_schema import Invalid, e164, email, text

FIELDS = ("name", "department", "title", "keywords", "phone_number", "mobile_number", "email")
CSV_COLUMNS = ("id", *FIELDS)
MAX_IMPORT_ROWS = 5000
MAX_IMPORT_BYTES = 2 * 1024 * 1024
_LENGTHS = {"name": 200, "department": 200, "title": 200, "keywords": 2000}


def _message(name: str, exc: Invalid) -> str:
    detail = str(exc)
    if name in ("phone_number", "mobile_number"):
        return _("Not a phone number in international form; write it as +46812345678.")
    if name == "email":
        return _("Not a valid e-mail address.")
    if detail.startswith("must be at most"):
        return _("Too long.")
    return detail


def clean(values: Mapping[str, Any]) -> tuple[dict[str, str | None], dict[str, str]]:
    """The entry's values, trimmed and checked: (values, {field: error message})."""
    result: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for name in FIELDS:
        raw = values.get(name)
        value = raw.strip() if isinstance(raw, str) else None
        if not value:
            result[name] = None
            continue
        try:
            if name in ("phone_number", "mobile_number"):
                value = e164("".join(c for c in value if c not in " -()\u00a0"))
            elif name == "email":
                value = email(value)
            else:
                value = text(_LENGTHS[name])(value)
        except Invalid as exc:
            errors[name] = _message(name, exc)
        result[name] = value
    if not result["name"]:
        errors["name"] = _("A name is required.")
    return result, errors


def _apply(row: DirectoryEntry, values: Mapping[str, str | None]) -> None:
    for name in FIELDS:
        setattr(row, name, values.get(name))
    row.search_text = search_text(row.name, row.department, row.title, row.keywords)


def add_entry(session: Session, actor: Actor, values: Mapping[str, Any], now: datetime) -> DirectoryEntry:
    cleaned, errors = clean(values)
    if errors:
        name, message = next(iter(errors.items()))
        raise ChangeRefused(name, message)
    row = DirectoryEntry(organisation_id=actor.organisation_id)
    _apply(row, cleaned)
    session.add(row)
    session.flush()
    record(session, actor, "directory.create", row, created(snapshot(row, FIELDS)), at=now)
    return row


def update_entry(
    session: Session, actor: Actor, row: DirectoryEntry, values: Mapping[str, Any], now: datetime
) -> dict[str, list[Any]]:
    cleaned, errors = clean(values)
    if errors:
        name, message = next(iter(errors.items()))
        raise ChangeRefused(name, message)
    before = snapshot(row, FIELDS)
    _apply(row, cleaned)
    session.flush()
    changes = diff(before, snapshot(row, FIELDS))
    if changes:
        record(session, actor, "directory.update", row, changes, at=now)
    return changes


def delete_entry(session: Session, actor: Actor, row: DirectoryEntry, now: datetime) -> None:
    record(
        session,
        actor,
        "directory.delete",
        ("directory_entries", row.id),
        deleted(snapshot(row, FIELDS)),
        at=now,
    )
    session.delete(row)
    session.flush()


# ---- CSV -----------------------------------------------------------------------------------------


@dataclass
class ImportRow:
    line: int  # the line in the file (the header is line 1)
    values: dict[str, str | None]
    entry_id: int | None = None
    action: str = "add"  # add | update | unchanged
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportPreview:
    rows: list[ImportRow] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.file_errors and all(not r.errors for r in self.rows) and bool(self.rows)

    @property
    def bad_rows(self) -> list[ImportRow]:
        return [r for r in self.rows if r.errors]

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action and not r.errors)


def decode(data: bytes) -> str:
    """UTF-8 (with or without the BOM Excel writes), else Windows-1252 (Excel's other habit)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def preview(session: Session, organisation_id: int, data: bytes) -> ImportPreview:
    """What importing `data` would do, row by row; stores nothing."""
    result = ImportPreview()
    if len(data) > MAX_IMPORT_BYTES:
        result.file_errors.append(_("The file is too large; the limit is 2 MB."))
        return result
    content = decode(data)
    first_line = content.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        result.file_errors.append(_("The file is empty."))
        return result
    except csv.Error:
        result.file_errors.append(_("This is not a CSV file."))
        return result
    unknown = [h for h in header if h and h not in CSV_COLUMNS]
    if unknown:
        result.file_errors.append(
            _(
                "Unknown column %(names)s; the columns are %(columns)s.",
                names=", ".join(unknown),
                columns=", ".join(CSV_COLUMNS),
            )
        )
    if "name" not in header:
        result.file_errors.append(_("The file needs a column called name."))
    if result.file_errors:
        return result
    existing = {
        e.id: e
        for e in session.scalars(
            select(DirectoryEntry).where(DirectoryEntry.organisation_id == organisation_id)
        )
    }
    seen_ids: set[int] = set()
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(result.rows) >= MAX_IMPORT_ROWS:
                result.file_errors.append(_("Too many rows; at most %(n)s at a time.", n=MAX_IMPORT_ROWS))
                break
            raw = {header[i]: cells[i] for i in range(min(len(header), len(cells))) if header[i]}
            values, errors = clean(raw)
            row = ImportRow(reader.line_num, values, errors=errors)
            ident = (raw.get("id") or "").strip()
            if ident:
                entry = existing.get(int(ident)) if ident.isdigit() else None
                if entry is None:
                    row.errors["id"] = _(
                        "No entry with this id in your directory; leave id empty to add one."
                    )
                elif entry.id in seen_ids:
                    row.errors["id"] = _("This id is on more than one row.")
                else:
                    seen_ids.add(entry.id)
                    row.entry_id = entry.id
                    same = all(getattr(entry, n) == values[n] for n in FIELDS)
                    row.action = "unchanged" if same else "update"
            result.rows.append(row)
    except csv.Error as exc:
        result.file_errors.append(_("The file could not be read as CSV (%(error)s).", error=str(exc)))
    if not result.rows and not result.file_errors:
        result.file_errors.append(_("The file has no rows."))
    return result


def apply_import(session: Session, actor: Actor, data: bytes, now: datetime) -> dict[str, int]:
    """Import every row of `data`, or nothing: raises ChangeRefused while any row has an error."""
    checked = preview(session, actor.organisation_id, data)
    if not checked.ok:
        raise ChangeRefused(
            None, _("Nothing was imported: correct the rows with errors and upload the file again.")
        )
    for row in checked.rows:
        if row.action == "add":
            entry = DirectoryEntry(organisation_id=actor.organisation_id)
            _apply(entry, row.values)
            session.add(entry)
            session.flush()
            record(session, actor, "directory.create", entry, created(snapshot(entry, FIELDS)), at=now)
        elif row.action == "update" and row.entry_id is not None:
            entry = session.get_one(DirectoryEntry, row.entry_id)
            before = snapshot(entry, FIELDS)
            _apply(entry, row.values)
            session.flush()
            record(session, actor, "directory.update", entry, diff(before, snapshot(entry, FIELDS)), at=now)
    counts = {action: checked.count(action) for action in ("add", "update", "unchanged")}
    record(
        session,
        actor,
        "directory.import",
        ("directory_entries", None),
        {name: [None, value] for name, value in counts.items()},
        at=now,
    )
    return counts


def export_csv(session: Session, organisation_id: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows = session.scalars(
        select(DirectoryEntry)
        .where(DirectoryEntry.organisation_id == organisation_id)
        .order_by(DirectoryEntry.name, DirectoryEntry.id)
    )
    for row in rows:
        writer.writerow([row.id, *(getattr(row, name) or "" for name in FIELDS)])
    return out.getvalue()
