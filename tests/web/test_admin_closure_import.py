"""Closures imported from an .ics file: upload, preview with each event's result, confirm; all or nothing."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import Closure, Organisation
from queue_app.services.closure_import import MAX_ICS_BYTES
from tests.factories import Personas, make_queue
from tests.web.test_admin_support import as_user, audit_actions, field_error, form_error, html, token

NOW = utc("2026-06-01 08:00")


def calendar(*events: str) -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n{body}END:VCALENDAR\r\n"


MIDSUMMER = (
    "UID:midsommar@example\r\nSUMMARY:Midsommar\r\nDESCRIPTION:Vi har stängt\\, välkommen åter.\r\n"
    "DTSTART;TZID=Europe/Stockholm:20260619T000000\r\nDTEND;TZID=Europe/Stockholm:20260620T000000"
)
DRILL = "UID:drill@example\r\nSUMMARY:Brandövning\r\nDTSTART:20260701T060000Z\r\nDURATION:PT2H"
MEETINGS = (
    "UID:meeting@example\r\nSUMMARY:Personalmöte\r\nDTSTART;TZID=Europe/Stockholm:20260907T080000\r\n"
    "DTEND;TZID=Europe/Stockholm:20260907T100000\r\nRRULE:FREQ=MONTHLY;BYDAY=1MO;COUNT=3"
)
OVER = "UID:over@example\r\nSUMMARY:Förra veckan\r\nDTSTART:20260520T060000Z\r\nDURATION:PT1H"


@pytest.fixture(autouse=True)
def june(clock: ManualClock) -> None:
    clock.set(NOW)


@pytest.fixture
def second_queue(app: Flask, personas: Personas) -> int:
    with app.app_context(), db.transaction() as session:
        org = session.get(Organisation, personas.alice.organisation_id)
        return make_queue(session, org, name="Ekonomi").id


def upload(
    client: FlaskClient, content: str | bytes, queues: list[int] | None = None, **extra: Any
) -> TestResponse:
    data = content.encode("utf-8") if isinstance(content, str) else content
    form: dict[str, Any] = {"csrf_token": token(client), "import-file": (io.BytesIO(data), "stängt.ics")}
    if queues is None:
        form["import-all_queues"] = "y"
    else:
        form["import-queues"] = [str(q) for q in queues]
    return client.post("/admin/closures/import", data=form | extra, content_type="multipart/form-data")


def confirm_form(response: TestResponse) -> dict[str, Any]:
    """The hidden fields of the preview's confirm form, as the browser would post them."""
    page = html(response)
    start = page.index('action="/admin/closures/import/confirm"')
    form = page[start : page.index("</form>", start)]
    text = re.search(r'<textarea name="ics_text" hidden>(.*?)</textarea>', form, re.S)
    assert text is not None
    fields: dict[str, Any] = {"ics_text": _unescape(text.group(1))}
    for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form):
        if name == "queues":
            fields.setdefault("queues", []).append(value)
        else:
            fields[name] = _unescape(value)
    return fields


def _unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", '"')
        .replace("&#39;", "'")
        .replace("&amp;", "&")
    )


def confirm(client: FlaskClient, fields: dict[str, Any]) -> TestResponse:
    return client.post(
        "/admin/closures/import/confirm",
        data={"csrf_token": token(client), **fields},
        content_type="multipart/form-data",
    )


def stored(app: Flask) -> list[tuple[str, str, str | None, str | None, bool, list[str]]]:
    with app.app_context(), db.transaction() as session:
        return [
            (
                c.starts_at.strftime("%Y-%m-%d %H:%M"),
                c.ends_at.strftime("%Y-%m-%d %H:%M") if c.ends_at else "",
                c.reason,
                c.message,
                c.all_queues,
                sorted(q.name for q in c.queues),
            )
            for c in session.scalars(select(Closure).order_by(Closure.starts_at))
        ]


def preview_results(response: TestResponse) -> list[tuple[str, str]]:
    """(row class, result text) of every preview row."""
    rows = re.findall(r'<tr class="(\w+)[^"]*" data-line="\d+">(.*?)</tr>', html(response), re.S)
    return [(kind, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()) for kind, body in rows]


def test_it_previews_then_imports_closures_for_two_queues_in_both_time_notations(
    app: Flask, client: FlaskClient, personas: Personas, second_queue: int
) -> None:
    as_user(client, personas.alice.email)

    preview = upload(client, calendar(MIDSUMMER, DRILL), [personas.alice.queue_id, second_queue])

    assert preview.status_code == 200, html(preview)
    assert stored(app) == []  # the preview stores nothing
    results = preview_results(preview)
    assert [kind for kind, _ in results] == ["create", "create"]
    assert "fre 19 juni 2026 00:00" in results[0][1] and "Midsommar" in results[0][1]
    assert "ons 1 juli 2026 08:00" in results[1][1]  # 06:00Z is 08:00 in Stockholm

    response = confirm(client, confirm_form(preview))

    assert response.status_code == 302
    both = ["Ekonomi", "Växeln"]
    assert stored(app) == [
        ("2026-06-18 22:00", "2026-06-19 22:00", "Midsommar", "Vi har stängt, välkommen åter.", False, both),
        ("2026-07-01 06:00", "2026-07-01 08:00", "Brandövning", "Brandövning", False, both),
    ]
    assert audit_actions(app, personas.alice.organisation_id) == [
        "closure.create",
        "closure.create",
        "closure.import",
    ]
    page = html(client.get("/admin/closures"))
    assert "2 stängningar importerades." in page and "Brandövning" in page


def test_it_imports_a_repeating_event_for_all_queues(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    preview = upload(client, calendar(MEETINGS))

    assert [kind for kind, _ in preview_results(preview)] == ["create"] * 3
    assert "Skapa 3 stängningar" in html(preview)
    assert confirm(client, confirm_form(preview)).status_code == 302
    assert [(s, e, all_queues) for s, e, _, _, all_queues, _ in stored(app)] == [
        ("2026-09-07 06:00", "2026-09-07 08:00", True),
        ("2026-10-05 06:00", "2026-10-05 08:00", True),
        ("2026-11-02 07:00", "2026-11-02 09:00", True),  # 08:00 in winter time too
    ]


def test_it_skips_events_already_over_and_already_imported(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    first = upload(client, calendar(DRILL))
    assert confirm(client, confirm_form(first)).status_code == 302

    preview = upload(client, calendar(OVER, DRILL, MIDSUMMER))

    assert preview_results(preview) == [
        ("skip", "4 Förra veckan ons 20 maj 2026 08:00 ons 20 maj 2026 09:00 Hoppas över: Redan över."),
        ("skip", "10 Brandövning ons 1 juli 2026 08:00 ons 1 juli 2026 10:00 Hoppas över: Redan importerad."),
        ("create", "16 Midsommar fre 19 juni 2026 00:00 lör 20 juni 2026 00:00 Stängning"),
    ]
    assert confirm(client, confirm_form(preview)).status_code == 302
    assert [reason for _, _, reason, _, _, _ in stored(app)] == ["Midsommar", "Brandövning"]


def test_it_lists_each_events_problem_and_imports_nothing(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    text = calendar(
        DRILL,
        "SUMMARY:Utan start\r\nDURATION:PT1H",
        "SUMMARY:Varje år\r\nDTSTART;VALUE=DATE:20261224\r\nRRULE:FREQ=YEARLY",
        "SUMMARY:Varje timme\r\nDTSTART:20260701T060000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=HOURLY;COUNT=5",
    ).replace("END:VCALENDAR", "BEGIN:VTODO\r\nSUMMARY:Att göra\r\nEND:VTODO\r\nEND:VCALENDAR")

    preview = upload(client, text)

    assert preview.status_code == 422
    results = preview_results(preview)
    assert [kind for kind, _ in results] == ["create", "error", "error", "error", "error"]
    assert "Händelsen saknar start (DTSTART)." in results[1][1]
    assert "upprepas i all evighet" in results[2][1]
    assert (
        "Kö importerar dagliga, veckovisa, månatliga och årliga upprepningar, inte FREQ=HOURLY."
        in results[3][1]
    )
    assert "VTODO är ingen händelse (VEVENT)" in results[4][1]
    assert 'action="/admin/closures/import/confirm"' not in html(preview)

    forged = confirm(client, {"ics_text": text, "all_queues": "y"})  # posted without the button

    assert forged.status_code == 422
    assert form_error(forged) == "Ingenting importerades: rätta först händelserna med problem."
    assert stored(app) == []
    assert audit_actions(app, personas.alice.organisation_id) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,name\r\n1,Karin Ek\r\n", "Det här är ingen iCalendar-fil (.ics) som vi kan läsa: rad 1:"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
            "Det här är ingen iCalendar-fil (.ics): den innehåller inte text.",
        ),
        (calendar(DRILL).replace("END:VCALENDAR\r\n", ""), "som vi kan läsa: rad "),
        ("", "Filen är tom."),
        ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "Kalendern har inga händelser."),
        ("X" * (MAX_ICS_BYTES + 1), "Filen är för stor; gränsen är 256 kB."),
    ],
)
def test_it_refuses_a_file_it_cannot_read_on_the_file_field(
    app: Flask, client: FlaskClient, personas: Personas, content: str | bytes, message: str
) -> None:
    as_user(client, personas.alice.email)

    response = upload(client, content)

    assert response.status_code == 422
    error = field_error(response, "import-file")
    assert message in (error or ""), html(response)
    assert stored(app) == []
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_it_refuses_an_import_without_queues_on_the_queues_field(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = upload(client, calendar(DRILL), [])

    assert response.status_code == 422
    assert field_error(response, "import-queues") == "Välj minst en kö, eller alla köer."
    assert stored(app) == []


def test_it_refuses_a_confirm_without_queues_and_without_a_token(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    no_queues = confirm(client, {"ics_text": calendar(DRILL)})
    no_token = client.post(
        "/admin/closures/import/confirm", data={"ics_text": calendar(DRILL), "all_queues": "y"}
    )

    assert no_queues.status_code == 422
    assert form_error(no_queues) == "Välj minst en kö, eller alla köer."
    assert no_token.status_code == 400
    assert stored(app) == []


@pytest.mark.parametrize("step", ["preview", "confirm"])
def test_it_answers_another_organisations_queue_with_404(
    app: Flask, client: FlaskClient, personas: Personas, step: str
) -> None:
    as_user(client, personas.alice.email)
    queues = [personas.alice.queue_id, personas.charlie.queue_id]

    if step == "preview":
        response = upload(client, calendar(DRILL), queues)
    else:
        response = confirm(client, {"ics_text": calendar(DRILL), "queues": [str(q) for q in queues]})

    assert response.status_code == 404
    assert stored(app) == []


@pytest.mark.parametrize("step", ["preview", "confirm"])
def test_it_forbids_an_operator_to_import(
    app: Flask, client: FlaskClient, personas: Personas, step: str
) -> None:
    as_user(client, personas.bob.email)

    if step == "preview":
        response = upload(client, calendar(DRILL))
    else:
        response = confirm(client, {"ics_text": calendar(DRILL), "all_queues": "y"})

    assert response.status_code == 403
    assert stored(app) == []


def test_it_imports_in_english_for_an_english_speaking_admin(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        session.get(Organisation, personas.alice.organisation_id).locale = "en"  # type: ignore[union-attr]
    as_user(client, personas.alice.email)

    response = upload(client, calendar("SUMMARY:No start\r\nDURATION:PT1H"))

    assert "The event has no start (DTSTART)." in html(response)
