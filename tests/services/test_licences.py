"""Licences: one per user who may log in somewhere; events on every change; this month; CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import LicenceEvent, Organisation, Queue, QueueMembership, User
from queue_app.services import licences
from tests.factories import Personas, make_membership, make_queue, make_user


def events(app: Flask) -> list[tuple[int, bool]]:
    with app.app_context(), db.transaction() as session:
        return [
            (e.user_id, e.licensed) for e in session.scalars(select(LicenceEvent).order_by(LicenceEvent.id))
        ]


def sync(app: Flask, org_id: int, at) -> list[LicenceEvent]:  # type: ignore[no-untyped-def]
    with app.app_context(), db.transaction() as session:
        return licences.sync(session, org_id, None, at)


def test_it_licenses_a_user_once_however_many_queues(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    org_id = personas.alice.organisation_id
    with app.app_context(), db.transaction() as session:
        org = session.get(Organisation, org_id)
        second = make_queue(session, org)
        make_membership(session, second, session.get(User, personas.bob.user_id))

    sync(app, org_id, clock.now())
    sync(app, org_id, clock.now())

    # alice may only see her queue; bob may log in to two queues: one licence, one event.
    assert events(app) == [(personas.bob.user_id, True)]


def test_it_ends_the_licence_when_the_last_log_in_right_goes(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    org_id = personas.alice.organisation_id
    sync(app, org_id, clock.now())
    with app.app_context(), db.transaction() as session:
        session.execute(
            QueueMembership.__table__.update()
            .where(QueueMembership.user_id == personas.bob.user_id)
            .values(may_log_in=False)
        )

    sync(app, org_id, clock.advance(hours=1))

    assert events(app) == [(personas.bob.user_id, True), (personas.bob.user_id, False)]


def test_a_basic_plan_or_inactive_user_holds_no_licence(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    org_id = personas.alice.organisation_id
    with app.app_context(), db.transaction() as session:
        org = session.get(Organisation, org_id)
        queue = session.get(Queue, personas.alice.queue_id)
        make_membership(session, queue, make_user(session, org, plan="basic"))
        make_membership(session, queue, make_user(session, org, is_active=False))

    with app.app_context(), db.transaction() as session:
        assert licences.licensed_user_ids(session, org_id) == {personas.bob.user_id}


def test_this_month_counts_everyone_licensed_at_some_time_since_the_first(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    org_id = personas.alice.organisation_id
    with app.app_context(), db.transaction() as session:
        org = session.get(Organisation, org_id)
        carol = make_user(session, org, name="Carol")
        # Carol was licensed in October and lost it then: not this month.
        session.add(
            LicenceEvent(organisation_id=org_id, user_id=carol.id, at=utc("2026-10-05 08:00"), licensed=True)
        )
        session.add(
            LicenceEvent(organisation_id=org_id, user_id=carol.id, at=utc("2026-10-20 08:00"), licensed=False)
        )
        # Dan was licensed in October and lost it on 3 November: counts this month.
        dan = make_user(session, org, name="Dan")
        session.add(
            LicenceEvent(organisation_id=org_id, user_id=dan.id, at=utc("2026-10-05 08:00"), licensed=True)
        )
        session.add(
            LicenceEvent(organisation_id=org_id, user_id=dan.id, at=utc("2026-11-03 08:00"), licensed=False)
        )
        carol_id, dan_id = carol.id, dan.id
    sync(app, org_id, clock.now())

    with app.app_context(), db.transaction() as session:
        rows = licences.this_month(session, org_id, clock.now())

    assert [(r.user_id, r.licensed_now) for r in rows] == [(personas.bob.user_id, True), (dan_id, False)]
    assert carol_id not in [r.user_id for r in rows]


def test_the_month_follows_the_organisations_time_zone(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    # 23:30 UTC on 31 October is already 1 November in Stockholm.
    assert (
        licences.month_start(utc("2026-10-31 23:30"), "Europe/Stockholm").isoformat()
        == "2026-11-01T00:00:00+01:00"
    )


def test_the_csv_has_one_row_per_user_and_defuses_formulas(
    app: Flask, personas: Personas, clock: ManualClock
) -> None:
    rows = [
        licences.LicensedUser(
            1, "=HYPERLINK(1)", "a@example.test", "pro", True, clock.now() - timedelta(days=1)
        ),
        licences.LicensedUser(2, "Bo", "b@example.test", "business", False, None),
    ]

    text = licences.month_csv(rows, "Europe/Stockholm")

    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == list(licences.CSV_HEADER)
    assert parsed[1] == ["1", "'=HYPERLINK(1)", "a@example.test", "pro", "yes", "2026-11-24T10:00:00+01:00"]
    assert parsed[2] == ["2", "Bo", "b@example.test", "business", "no", ""]
