"""The schedule editor and the closure forms in a real browser (issue 8, Done means), against the live
server with the demo company, whose clock starts on Wednesday 25 November 2026 10:00 in Stockholm.

Fields are found by their visible labels, as a screen reader finds them, and parts of the forms are
filled with the keyboard only. Every change is checked in the database as well as on the page, every
refused input shows its error on its field and changes nothing. Screenshots of each page on a desktop
and a tablet-sized viewport go to tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select

from queue_app.extensions import db
from queue_app.models import Closure, Schedule

from .conftest import LiveServer

DESKTOP = {"width": 1366, "height": 800}
TABLET = {"width": 820, "height": 1180}
ADMIN = "admin@exempel.se"


def shoot(page: Page, artifacts: Path, name: str) -> None:
    """Full-page screenshots at both sizes; the page is left at the desktop size."""
    for label, viewport in (("desktop", DESKTOP), ("tablet", TABLET)):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(artifacts / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


@pytest.fixture
def page(live_server: LiveServer, browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, locale="sv-SE", timezone_id="Europe/Stockholm")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/login?next=/admin/schedules")
    page.get_by_label("E-postadress").fill(ADMIN)
    page.get_by_label("Lösenord").fill("demo1234")
    page.get_by_role("button", name="Logga in").click()
    page.wait_for_url("**/admin/schedules")
    try:
        yield page
    finally:
        context.close()
    assert errors == []


def schedule_row(live_server: LiveServer, name: str) -> dict[str, Any]:
    with live_server.app.app_context(), db.transaction() as session:
        schedule = session.scalars(select(Schedule).where(Schedule.name == name)).one()
        return {
            "rules": [(r.effect, r.rrule, r.starts, r.ends, r.label) for r in schedule.rules],
            "categories": list(schedule.holiday_categories or []),
            "choices": {c.holiday_name: c.closed for c in schedule.holiday_choices},
            "exceptions": [(e.day, e.opens, e.closes, e.label) for e in schedule.exceptions],
        }


def add_rule(form: Locator, effect: str, starts: str, ends: str, label: str, **repeat: Any) -> None:
    form.get_by_label("Kön är").select_option(label=effect)
    form.get_by_label("Upprepas").select_option(label=repeat.pop("repeats", "Dessa veckodagar"))
    for weekday, ticked in repeat.pop("weekdays", {}).items():
        form.get_by_label(weekday, exact=True).set_checked(ticked)
    for field, value in repeat.items():
        control = form.get_by_label(field, exact=True)
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(label=value)
        else:
            control.fill(value)
    form.get_by_label("Från").fill(starts)
    form.get_by_label("Till").fill(ends)
    form.get_by_label("Etikett").fill(label)
    form.get_by_role("button", name="Lägg till regeln").click()


def test_an_admin_builds_opening_hours_with_rules_holidays_and_a_custom_date(
    live_server: LiveServer, page: Page, artifacts: Path
) -> None:
    page.get_by_label("Namn").fill("Sommarväxeln")
    page.get_by_role("button", name="Skapa").click()
    expect(page.get_by_role("heading", name="Sommarväxeln", level=1)).to_be_visible()
    rules = page.locator("#rules table")
    rule_form = page.locator("form.rule-form")

    add_rule(rule_form, "Öppet", "08:00", "17:00", "Vardagar 8–17")
    expect(rules).to_contain_text("Vardagar 8–17")
    weekdays_only_friday = {
        "måndag": False,
        "tisdag": False,
        "onsdag": False,
        "torsdag": False,
        "fredag": True,
    }
    add_rule(rule_form, "Stängt", "15:00", "17:00", "Fredag stänger 15", weekdays=weekdays_only_friday)
    expect(rules).to_contain_text("Fredag stänger 15")
    first_monday = {"repeats": "En veckodag i månaden (t.ex. första måndagen)", "Vilken": "första"}
    add_rule(rule_form, "Stängt", "08:00", "10:00", "Månadsmöte", **first_monday, Veckodag="måndag")
    expect(rules).to_contain_text("Månadsmöte")
    add_rule(
        rule_form, "Stängt", "14:00", "17:00", "Dagen före julafton",
        repeats="Varje år på ett datum", Dag="23", Månad="12",
    )  # fmt: skip
    expect(rules).to_contain_text("Dagen före julafton")

    # Holidays: not the whole de facto category, but Midsummer Eve and Christmas Eve by name.
    holidays = page.locator("#holidays")
    holidays.get_by_label("Helgaftnar (midsommarafton, julafton, nyårsafton)").uncheck()
    holidays.get_by_label("Midsommarafton", exact=True).select_option("closed")
    holidays.get_by_label("Julafton", exact=True).select_option("closed")
    holidays.get_by_role("button", name="Spara").click()
    expect(page.get_by_text("Sparat.")).to_be_visible()

    # A custom date, ticked and sent with the keyboard: Monday 30 November closed all day.
    dates = page.locator("#dates")
    dates.get_by_label("Datum").fill("2026-11-30")
    dates.get_by_label("Stängt hela dagen").focus()
    page.keyboard.press("Space")
    expect(dates.get_by_label("Stängt hela dagen")).to_be_checked()
    dates.get_by_label("Etikett").fill("Personaldag")
    page.keyboard.press("Enter")
    expect(dates).to_contain_text("Stängt hela dagen – Personaldag")

    assert schedule_row(live_server, "Sommarväxeln") == {
        "rules": [
            ("open", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", time(8), time(17), "Vardagar 8–17"),
            ("closed", "FREQ=WEEKLY;BYDAY=FR", time(15), time(17), "Fredag stänger 15"),
            ("closed", "FREQ=MONTHLY;BYDAY=1MO", time(8), time(10), "Månadsmöte"),
            ("closed", "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=23", time(14), time(17), "Dagen före julafton"),
        ],
        "categories": ["public"],
        "choices": {"Midsommarafton": True, "Julafton": True},
        "exceptions": [(date(2026, 11, 30), None, None, "Personaldag")],
    }

    # The week view and the next changes follow all of it.
    week = page.locator("#preview table")
    expect(week.locator("tr", has_text="fredag 27 nov.")).to_contain_text("08:00–15:00")
    expect(week.locator("tr", has_text="lördag 28 nov.")).to_contain_text("Stängt")
    expect(week.locator("tr", has_text="måndag 30 nov.")).to_contain_text("Personaldag")
    expect(week.locator("tr", has_text="tisdag 1 dec.")).to_contain_text("08:00–17:00")
    changes = page.locator("ul.transitions")
    expect(changes).to_contain_text("fredag 27 nov. 15:00 stänger – Fredag stänger 15")
    expect(changes).not_to_contain_text("fredag 27 nov. 17:00")  # already closed: nothing changes
    expect(changes).to_contain_text("måndag 30 nov. 00:00 fortfarande stängt, nu för egen dag – Personaldag")
    expect(changes).to_contain_text("tisdag 1 dec. 08:00 öppnar")
    holiday_now = page.locator("#holidays tr", has=page.get_by_label("Nyårsafton", exact=True))
    expect(holiday_now.locator("td[data-label=Nu]")).to_have_text("Öppet")
    christmas_eve = page.locator("#holidays tr", has=page.get_by_label("Julafton", exact=True))
    expect(christmas_eve.locator("td[data-label=Nu]")).to_have_text("Stängt")
    page.reload()
    expect(page.locator("#rules tbody tr")).to_have_count(4)
    shoot(page, artifacts, "admin-schedule")


def test_the_schedule_editor_shows_each_refused_input_on_its_field(
    live_server: LiveServer, page: Page, artifacts: Path
) -> None:
    page.get_by_role("link", name="Kontorstid").click()
    before = schedule_row(live_server, "Kontorstid")

    # 31 February is no date.
    add_rule(
        page.locator("form.rule-form"), "Stängt", "08:00", "17:00", "Aldrig",
        repeats="Varje år på ett datum", Dag="31", Månad="2",
    )  # fmt: skip
    day = page.locator("form.rule-form").get_by_label("Dag", exact=True)
    expect(page.locator("#year_day-error")).to_be_visible()
    expect(day).to_have_attribute("aria-invalid", "true")
    expect(day).to_be_focused()
    shoot(page, artifacts, "admin-schedule-error")

    page.locator("#dates").get_by_role("button", name="Lägg till datumet").click()
    expect(page.locator("#day-error")).to_have_text("Ange ett datum.")
    expect(page.locator("#dates").get_by_label("Datum")).to_be_focused()

    page.locator("#holidays").get_by_label("Tidszon").fill("Mars/Olympus")
    page.locator("#holidays").get_by_role("button", name="Spara").click()
    expect(page.locator("#timezone-error")).to_be_visible()

    assert schedule_row(live_server, "Kontorstid") == before


def closures(live_server: LiveServer) -> list[tuple[str | None, bool, list[str], bool]]:
    with live_server.app.app_context(), db.transaction() as session:
        rows = session.scalars(select(Closure).order_by(Closure.id)).all()
        return [
            (c.reason, c.all_queues, sorted(q.name for q in c.queues), c.ended_early_at is not None)
            for c in rows
        ]


def closure_count(live_server: LiveServer) -> int:
    with live_server.app.app_context(), db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Closure)) or 0)


def close_queues(page: Page, queues: list[str] | None, minutes: str, reason: str, message: str) -> None:
    form = page.locator("#close-form")
    picks = form.locator(".queue-picks")
    if queues is None:
        form.get_by_label("Alla köer").check()
        expect(picks).to_be_hidden()
    else:
        for name in queues:
            picks.get_by_label(name, exact=True).check()
    form.get_by_label("Slutar").select_option(label="Efter en stund")
    form.get_by_label("Minuter").fill(minutes)
    form.get_by_label("Anledning").fill(reason)
    form.get_by_label("Meddelande till den som ringer").fill(message)
    form.get_by_role("button", name="Stäng köerna").click()


def test_an_admin_closes_two_queues_then_all_and_ends_a_closure_now(
    live_server: LiveServer, page: Page, artifacts: Path
) -> None:
    page.get_by_role("link", name="Stängningar").click()
    listed = page.locator("table.admin-table tbody")

    close_queues(page, ["Växeln", "Kundtjänst"], "90", "Brandövning", "Vi har brandövning till halv tolv.")
    expect(page.get_by_text("Köerna är stängda som du bad om.")).to_be_visible()
    expect(listed.locator("tr", has_text="Brandövning")).to_contain_text("Kundtjänst, Växeln")
    close_queues(page, None, "30", "Strömavbrott", "Vi har strömavbrott och ringer upp när det är över.")
    fire_drill = listed.locator("tr", has_text="Strömavbrott")
    expect(fire_drill).to_contain_text("Alla köer")
    expect(fire_drill).to_contain_text("Vi har strömavbrott")
    shoot(page, artifacts, "admin-closures")

    fire_drill.get_by_role("button", name="Avsluta nu").click()
    expect(page.get_by_text("Stängningen har upphört")).to_be_visible()
    expect(listed.locator("tr", has_text="Strömavbrott")).to_have_count(0)
    expect(listed.locator("tr", has_text="Brandövning")).to_have_count(1)

    assert closures(live_server)[-2:] == [
        ("Brandövning", False, ["Kundtjänst", "Växeln"], False),
        ("Strömavbrott", True, [], True),
    ]


def test_the_closure_form_shows_each_refused_input_on_its_field(
    live_server: LiveServer, page: Page, artifacts: Path
) -> None:
    page.goto(f"{live_server.url}/admin/closures")
    before = closure_count(live_server)

    close_queues(page, ["Växeln"], "-5", "Fel", "")
    minutes = page.locator("#close-form").get_by_label("Minuter")
    expect(page.locator("#duration_minutes-error")).to_be_visible()
    expect(minutes).to_have_attribute("aria-invalid", "true")
    expect(minutes).to_be_focused()
    shoot(page, artifacts, "admin-closures-error")

    page.locator("#close-form").get_by_label("Växeln", exact=True).uncheck()
    page.locator("#close-form").get_by_label("Minuter").fill("30")
    page.locator("#close-form").get_by_role("button", name="Stäng köerna").click()
    expect(page.locator("#queues-error")).to_have_text("Välj minst en kö, eller alla köer.")

    assert closure_count(live_server) == before


ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n"
    "BEGIN:VEVENT\r\nUID:jul@example\r\nSUMMARY:Julafton\r\nDTSTART;VALUE=DATE:20261224\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:kick@example\r\nSUMMARY:Kickoff\r\nDTSTART:20270105T070000Z\r\n"
    "DTEND:20270105T120000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_an_admin_imports_closures_from_a_calendar_file(
    live_server: LiveServer, page: Page, artifacts: Path
) -> None:
    page.goto(f"{live_server.url}/admin/closures")
    form = page.locator("#import-form")
    before = closure_count(live_server)

    form.get_by_label("Kalenderfil (.ics)").set_input_files(
        {"name": "katalog.csv", "mimeType": "text/csv", "buffer": b"id,name\r\n1,Karin\r\n"}
    )
    form.get_by_label("Alla köer").check()
    form.get_by_role("button", name="Visa vad som skulle stängas").click()
    expect(page.locator("#import-file-error")).to_contain_text("ingen iCalendar-fil")
    assert closure_count(live_server) == before

    form.get_by_label("Kalenderfil (.ics)").set_input_files(
        {"name": "stängt.ics", "mimeType": "text/calendar", "buffer": ICS.encode()}
    )
    form.get_by_label("Alla köer").uncheck()
    form.get_by_label("Växeln", exact=True).check()
    form.get_by_role("button", name="Visa vad som skulle stängas").click()
    rows = page.locator("table.import-preview tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("tors 24 dec. 2026 00:00")
    expect(rows.nth(1)).to_contain_text("tis 5 jan. 2027 08:00")
    shoot(page, artifacts, "admin-closures-import")
    page.get_by_role("button", name="Skapa 2 stängningar").click()

    expect(page.get_by_text("2 stängningar importerades.")).to_be_visible()
    assert closures(live_server)[-2:] == [
        ("Julafton", False, ["Växeln"], False),
        ("Kickoff", False, ["Växeln"], False),
    ]
