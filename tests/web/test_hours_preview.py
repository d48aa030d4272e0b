"""The opening hours' preview on the admin pages: the next changes, when (local time) and why, in
Swedish and in English, across Easter 2027 and its DST change."""

from __future__ import annotations

import re
from datetime import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import Schedule, ScheduleRule, User
from tests.factories import Personas
from tests.web.test_admin_support import as_user, html


@pytest.fixture
def schedule_id(app: Flask, personas: Personas) -> int:
    with app.app_context(), db.transaction() as session:
        schedule = Schedule(
            organisation_id=personas.alice.organisation_id,
            name="Kontor",
            holiday_categories=["public", "de_facto"],
        )
        schedule.rules.append(
            ScheduleRule(rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", starts=time(8), ends=time(17))
        )
        schedule.rules.append(
            ScheduleRule(
                effect="closed",
                rrule="FREQ=MONTHLY;BYDAY=1MO",
                starts=time(8),
                ends=time(10),
                label="Personalmöte",
            )
        )
        session.add(schedule)
        session.flush()
        return schedule.id


def preview(page: str) -> list[str]:
    """The preview's lines as text: 'when reason – label'."""
    items = re.search(r'<ul class="transitions">(.*?)</ul>', page, re.S)
    assert items, page
    lines = re.findall(r"<li[^>]*>(.*?)</li>", items.group(1), re.S)
    return [" ".join(re.sub(r"<[^>]+>", "", line).split()) for line in lines]


def test_it_previews_easter_2027_in_swedish_with_local_times_and_reasons(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, clock: ManualClock
) -> None:
    clock.set(utc("2027-03-25 09:00"))  # Maundy Thursday, 10:00 CET
    as_user(client, personas.alice.email)
    lines = preview(html(client.get(f"/admin/schedules/{schedule_id}")))
    # While closed, only a change of reason is listed (Påskdagen and Annandag påsk are one holiday
    # stretch); the queue opens again on Tuesday at 08:00 on the wall, CEST by then.
    assert lines[:8] == [
        "torsdag 25 mars 17:00 stänger",
        "fredag 26 mars 00:00 fortfarande stängt, nu för helgdag – Långfredagen",
        "lördag 27 mars 00:00 fortfarande stängt, nu utanför öppettiderna",
        "söndag 28 mars 00:00 fortfarande stängt, nu för helgdag – Påskdagen",
        "tisdag 30 mars 00:00 fortfarande stängt, nu utanför öppettiderna",
        "tisdag 30 mars 08:00 öppnar",
        "tisdag 30 mars 17:00 stänger",
        "onsdag 31 mars 08:00 öppnar",
    ]


def test_it_previews_the_first_monday_meeting_in_english(
    app: Flask, client: FlaskClient, personas: Personas, schedule_id: int, clock: ManualClock
) -> None:
    with app.app_context(), db.transaction() as session:
        alice = session.get(User, personas.alice.user_id)
        assert alice is not None
        alice.locale = "en"
    clock.set(utc("2027-01-29 09:00"))  # Friday
    as_user(client, personas.alice.email)
    lines = preview(html(client.get(f"/admin/schedules/{schedule_id}")))
    # The meeting keeps the first Monday closed until 10:00, so the queue opens at 10, not at 8.
    assert lines[:4] == [
        "Friday 29 Jan 17:00 closes",
        "Monday 1 Feb 10:00 opens",
        "Monday 1 Feb 17:00 closes",
        "Tuesday 2 Feb 08:00 opens",
    ]
