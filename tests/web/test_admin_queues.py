"""The queue pages: list, create, edit every setting, delete, hours preview and .ics export."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, Organisation, Queue, Schedule, ScheduleRule, User
from tests.factories import Personas, make_membership, make_user
from tests.web.test_admin_support import (
    as_user,
    audit_actions,
    field_error,
    html,
    last_audit,
    post,
)


def settings(client: FlaskClient, queue_id: int) -> dict[str, Any]:
    """The edit form as the browser would post it unchanged (checked boxes only)."""
    page = html(client.get(f"/admin/queues/{queue_id}"))
    import re

    data: dict[str, Any] = {}
    for tag in re.findall(r"<input\b[^>]*>", page):
        name = re.search(r'\bname="([^"]+)"', tag)
        if not name or name.group(1) == "csrf_token":
            continue
        kind = re.search(r'\btype="([^"]+)"', tag)
        if kind and kind.group(1) == "checkbox":
            if " checked" in tag:
                data[name.group(1)] = "y"
            continue
        value = re.search(r'\bvalue="([^"]*)"', tag)
        data[name.group(1)] = value.group(1) if value else ""
    for select_html in re.findall(r"<select\b.*?</select>", page, re.S):
        name = re.search(r'\bname="([^"]+)"', select_html)
        chosen = re.search(r'<option selected value="([^"]*)"|<option value="([^"]*)" selected', select_html)
        if name and name.group(1) != "locale":
            data[name.group(1)] = (chosen.group(1) or chosen.group(2)) if chosen else ""
    return data


def queue_values(app: Flask, queue_id: int) -> dict[str, Any]:
    with app.app_context(), db.transaction() as session:
        queue = session.get(Queue, queue_id)
        assert queue is not None
        return {c.name: getattr(queue, c.name) for c in Queue.__table__.columns}


def test_it_lists_the_queues_of_the_organisation_only(client: FlaskClient, personas: Personas) -> None:
    page = html(as_user(client, personas.alice.email).get("/admin/queues"))

    assert "Växeln" in page
    assert "+46855500001" in page
    assert "Support" not in page


def test_it_creates_a_queue_with_the_default_settings(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    form = html(client.get("/admin/queues/new"))
    assert 'name="ring_timeout_seconds"' in form and 'value="20"' in form

    data = settings(client, personas.alice.queue_id) | {"name": "Kundtjänst", "slug": "kundtjanst"}
    response = post(client, "/admin/queues/new", data)

    assert response.status_code == 302
    with app.app_context(), db.transaction() as session:
        queue = session.scalars(select(Queue).where(Queue.slug == "kundtjanst")).one()
        assert queue.organisation_id == personas.alice.organisation_id
        assert queue.ring_timeout_seconds == 20
    assert audit_actions(app, personas.alice.organisation_id) == ["queue.create"]
    assert "Kundtjänst" in html(client.get("/admin/queues"))


def test_it_saves_every_group_of_settings_and_shows_them(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    data = settings(client, queue_id)
    data |= {
        "ring_timeout_seconds": "45",
        "wrap_up_seconds": "0",
        "strategy": "longest_idle",
        "announce_interval_seconds": "90",
        "closed_action": "forward",
        "closed_forward_number": "+46812345678",
        "overflow_max_callers": "12",
        "overflow_action": "forward",
        "overflow_forward_number": "+46812345679",
        "no_operator_action": "close",
        "caller_options_after_seconds": "60",
        "language": "en",
        "voice": "Polly.Joanna",
    }
    data.pop("announce_position", None)
    data["callback_enabled"] = "y"

    response = post(client, f"/admin/queues/{queue_id}", data)

    assert response.status_code == 302
    values = queue_values(app, queue_id)
    assert values["ring_timeout_seconds"] == 45
    assert values["wrap_up_seconds"] == 0
    assert values["strategy"] == "longest_idle"
    assert values["closed_forward_number"] == "+46812345678"
    assert values["overflow_max_callers"] == 12
    assert values["no_operator_action"] == "close"
    assert values["announce_position"] is False
    assert values["callback_enabled"] is True
    assert values["language"] == "en"
    page = html(client.get(f"/admin/queues/{queue_id}"))
    assert 'value="45"' in page and 'value="+46812345678"' in page
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.action == "queue.update"
    assert entry.user_id == personas.alice.user_id
    assert entry.changes["ring_timeout_seconds"] == [20, 45]
    assert entry.changes["announce_position"] == [True, False]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ring_timeout_seconds": "4"}, "ring_timeout_seconds"),
        ({"ring_timeout_seconds": "601"}, "ring_timeout_seconds"),
        ({"wrap_up_seconds": "-5"}, "wrap_up_seconds"),
        ({"periodic_interval_seconds": "-1"}, "periodic_interval_seconds"),
        ({"ring_timeout_seconds": "soon"}, "ring_timeout_seconds"),
        ({"closed_action": "forward", "closed_forward_number": "08-123 456 78"}, "closed_forward_number"),
        ({"closed_action": "forward", "closed_forward_number": ""}, "closed_forward_number"),
        ({"overflow_action": "forward", "overflow_forward_number": "+4600"}, "overflow_forward_number"),
        ({"no_operator_action": "forward", "no_operator_forward_number": ""}, "no_operator_forward_number"),
        ({"strategy": "parallel", "parallel_count": "3"}, "parallel_count"),
        ({"name": ""}, "name"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"skill_widen_after_seconds": "-1"}, "skill_widen_after_seconds"),
    ],
)
def test_it_refuses_an_invalid_setting_on_its_field_and_changes_nothing(
    app: Flask, client: FlaskClient, personas: Personas, changes: dict[str, str], field: str
) -> None:
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    before = queue_values(app, queue_id)

    response = post(client, f"/admin/queues/{queue_id}", settings(client, queue_id) | changes)

    assert response.status_code == 422
    assert field_error(response, field), html(response)
    assert queue_values(app, queue_id) == before
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_it_allows_a_parallel_count_up_to_the_members_who_may_log_in(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        org = session.get(Organisation, personas.alice.organisation_id)
        queue = session.get(Queue, personas.alice.queue_id)
        make_membership(session, queue, make_user(session, org))
    as_user(client, personas.alice.email)
    queue_id = personas.alice.queue_id
    data = settings(client, queue_id) | {"strategy": "parallel", "parallel_count": "2"}

    assert post(client, f"/admin/queues/{queue_id}", data).status_code == 302
    assert queue_values(app, queue_id)["parallel_count"] == 2


def test_it_refuses_a_short_name_another_queue_has(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)
    data = settings(client, personas.alice.queue_id) | {"name": "Copy", "slug": "vaxeln"}

    response = post(client, "/admin/queues/new", data)

    assert response.status_code == 422
    assert field_error(response, "slug")


def test_it_refuses_to_delete_a_queue_while_callers_wait(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    with app.app_context(), db.transaction() as session:
        session.add(
            Call(
                organisation_id=personas.alice.organisation_id,
                queue_id=personas.alice.queue_id,
                call_sid="CA" + "1" * 32,
                from_number="+46701234567",
                to_number=personas.alice.number,
                state="waiting",
                arrived_at=clock.now(),
            )
        )
    as_user(client, personas.alice.email)

    response = post(client, f"/admin/queues/{personas.alice.queue_id}/delete")

    assert response.status_code == 303
    page = html(client.get(response.headers["Location"]))
    assert "1" in page and "Växeln" in page
    with app.app_context(), db.transaction() as session:
        assert session.get(Queue, personas.alice.queue_id) is not None
    assert audit_actions(app, personas.alice.organisation_id) == []


def test_it_deletes_a_queue_and_its_licences_follow(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    as_user(client, personas.alice.email)

    response = post(client, f"/admin/queues/{personas.alice.queue_id}/delete")

    assert response.status_code == 302
    with app.app_context(), db.transaction() as session:
        assert session.get(Queue, personas.alice.queue_id) is None
        assert session.get(User, personas.bob.user_id) is not None
    entry = last_audit(app, personas.alice.organisation_id)
    assert entry.action == "queue.delete"
    assert entry.changes["slug"] == ["vaxeln", None]


def test_it_shows_the_week_and_next_changes_and_exports_ics(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    from datetime import time

    with app.app_context(), db.transaction() as session:
        schedule = Schedule(organisation_id=personas.alice.organisation_id, name="Kontor")
        schedule.rules.append(
            ScheduleRule(rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", starts=time(8), ends=time(17))
        )
        session.add(schedule)
        session.flush()
        session.get(Queue, personas.alice.queue_id).schedule_id = schedule.id
    as_user(client, personas.alice.email)

    page = html(client.get(f"/admin/queues/{personas.alice.queue_id}/hours"))
    assert "08:00–17:00" in page
    assert "17:00" in page  # closes today at 17:00 (clock: Wednesday 10:00)

    ics = client.get(f"/admin/queues/{personas.alice.queue_id}/hours.ics")
    assert ics.status_code == 200
    assert ics.mimetype == "text/calendar"
    assert "BEGIN:VCALENDAR" in ics.get_data(as_text=True)
