"""The directory pages: add, edit, remove, CSV import with a preview (all or nothing), export."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from queue_app.extensions import db
from queue_app.models import AuditEntry, DirectoryEntry, User
from tests.factories import Personas
from tests.web.test_admin_support import as_user, audit_actions, field_error, html, post, token

GOOD_AND_BAD = (
    "name,department,phone_number,email\n"
    "Åke Öberg,Ekonomi,+46812345678,ake@acme.test\n"
    "Karin Ek,Sälj,08-123 45,karin@acme.test\n"
    "Lena Lund,IT,+46701234567,lena@acme.test\n"
)


@pytest.fixture(autouse=True)
def alice_reads_english(app: Flask, personas: Personas) -> None:
    """The messages are asserted in English; the Swedish catalogue is tested in test_i18n."""
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.alice.user_id).locale = "en"


def entries(app: Flask) -> list[DirectoryEntry]:
    with app.app_context(), db.transaction() as session:
        rows = session.scalars(select(DirectoryEntry).order_by(DirectoryEntry.name)).all()
        session.expunge_all()
        return list(rows)


def audit_count(app: Flask) -> int:
    with app.app_context(), db.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def preview(client: FlaskClient, content: str | bytes) -> TestResponse:
    data = content.encode() if isinstance(content, str) else content
    return client.post(
        "/admin/directory/import",
        data={"csrf_token": token(client), "file": (io.BytesIO(data), "people.csv")},
        content_type="multipart/form-data",
    )


def test_it_adds_an_entry_with_a_folded_search_text(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(
        client,
        "/admin/directory/new",
        {"name": "Åke Öberg", "department": "Ekonomi", "phone_number": "+46 8 123 456 78"},
    )

    assert response.status_code == 302
    [entry] = entries(app)
    assert (entry.phone_number, entry.search_text) == ("+46812345678", "ake oberg ekonomi")
    assert "Åke Öberg" in html(client.get("/admin/directory?q=oberg"))
    assert audit_actions(app, personas.alice.organisation_id)[-1] == "directory.create"


def test_it_shows_each_invalid_field_and_saves_nothing(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/directory/new", {"name": "", "phone_number": "12345", "email": "nope"})

    assert response.status_code == 422
    assert field_error(response, "name") == "A name is required."
    assert "+46812345678" in (field_error(response, "phone_number") or "")  # "write it as …"
    assert field_error(response, "email")
    assert entries(app) == []


def test_it_edits_and_removes_an_entry(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/directory/new", {"name": "Karin Ek"})
    [entry] = entries(app)

    assert (
        post(client, f"/admin/directory/{entry.id}/edit", {"name": "Karin Ek", "title": "Chef"}).status_code
        == 302
    )
    assert entries(app)[0].title == "Chef"
    assert post(client, f"/admin/directory/{entry.id}/delete").status_code == 302
    assert entries(app) == []
    assert audit_actions(app, personas.alice.organisation_id)[-2:] == ["directory.update", "directory.delete"]


def test_it_refuses_a_bad_edit_on_its_field_and_changes_nothing(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/directory/new", {"name": "Karin Ek", "phone_number": "+46812345678"})
    [entry] = entries(app)
    before = audit_count(app)

    response = post(
        client, f"/admin/directory/{entry.id}/edit", {"name": "Karin Ek", "phone_number": "08-12"}
    )

    assert response.status_code == 422
    assert field_error(response, "phone_number")
    assert entries(app)[0].phone_number == "+46812345678"
    assert audit_count(app) == before


def test_it_answers_404_for_another_organisations_entry(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    post(client, "/admin/directory/new", {"name": "Karin Ek"})
    [entry] = entries(app)
    client.post("/logout", data={"csrf_token": token(client)})
    other = app.test_client()
    as_user(other, personas.charlie.email)

    assert other.get(f"/admin/directory/{entry.id}/edit").status_code == 404
    assert post(other, f"/admin/directory/{entry.id}/edit", {"name": "x"}).status_code == 404
    assert post(other, f"/admin/directory/{entry.id}/delete").status_code == 404
    assert [e.name for e in entries(app)] == ["Karin Ek"]


def test_it_previews_an_import_with_the_error_of_each_bad_row_and_stores_nothing(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    before = audit_count(app)

    response = preview(client, GOOD_AND_BAD)

    page = html(response)
    assert response.status_code == 422
    # Line 3 of the file (the header is line 1) has the bad number, and only that line has an error.
    assert 'data-line="3" data-field="phone_number"' in page
    assert page.count('class="error" data-line=') == 1
    assert "2 to add" in page
    assert 'action="/admin/directory/import/confirm"' not in page
    assert entries(app) == [] and audit_count(app) == before


def test_it_refuses_to_import_a_file_with_a_bad_row_even_when_confirmed(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, "/admin/directory/import/confirm", {"csv_text": GOOD_AND_BAD})

    assert response.status_code == 422
    assert "Nothing was imported" in html(response)
    assert entries(app) == []


def test_it_imports_every_row_once_confirmed(app: Flask, client: FlaskClient, personas: Personas) -> None:
    as_user(client, personas.alice.email)
    good = GOOD_AND_BAD.replace("08-123 45", "+46812345679")

    shown = preview(client, good.replace(",", ";"))  # Excel in Sweden writes semicolons
    assert shown.status_code == 200 and "3 to add" in html(shown)
    assert entries(app) == []
    response = post(client, "/admin/directory/import/confirm", {"csv_text": good})

    assert response.status_code == 302
    assert [e.name for e in entries(app)] == ["Karin Ek", "Lena Lund", "Åke Öberg"]
    assert audit_actions(app, personas.alice.organisation_id)[-1] == "directory.import"


def test_an_exported_file_imports_back_unchanged_and_updates_by_id(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    post(
        client,
        "/admin/directory/new",
        {"name": "Åke Öberg", "department": "Ekonomi", "email": "ake@acme.test"},
    )
    post(client, "/admin/directory/new", {"name": "Karin Ek", "mobile_number": "+46701234567"})

    exported = client.get("/admin/directory.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    content = exported.data  # UTF-8 with a BOM, for Excel
    assert content.startswith("\ufeff".encode())
    assert "Åke Öberg" in content.decode("utf-8-sig")

    again = preview(client, content)
    assert again.status_code == 200 and "0 to add, 0 to update, 2 unchanged" in html(again)
    changed = content.decode("utf-8-sig").replace("Ekonomi", "Finans")
    assert post(client, "/admin/directory/import/confirm", {"csv_text": changed}).status_code == 302
    rows = entries(app)
    assert len(rows) == 2
    assert {e.name: e.department for e in rows} == {"Karin Ek": None, "Åke Öberg": "Finans"}
    assert next(e for e in rows if e.name == "Åke Öberg").search_text == "ake oberg finans"


def test_it_refuses_a_file_without_a_name_column_or_with_an_unknown_one(
    client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = preview(client, "namn,telefon\nÅke,+46812345678\n")

    assert response.status_code == 422
    assert "Unknown column namn, telefon" in html(response)
    assert "column called name" in html(response)


def test_it_takes_back_a_large_previewed_file_at_confirm(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    """The confirm form carries the whole CSV back, URL-encoded (Flask's 500 kB MAX_FORM_MEMORY_SIZE
    caps only multipart text parts): a file well over 500 kB is imported, not refused with 413."""
    as_user(client, personas.alice.email)
    keywords = " ".join(["löner bokslut fakturor"] * 40)  # about 900 bytes a row
    rows = "".join(f"Åsa Ödman {i},Ekonomi,{keywords},+4681{i:07d}\n" for i in range(800))
    big = "name,department,keywords,phone_number\n" + rows
    assert 700_000 < len(big.encode()) < 2 * 1024 * 1024

    response = post(client, "/admin/directory/import/confirm", {"csv_text": big})

    assert response.status_code == 302
    assert len(entries(app)) == 800
