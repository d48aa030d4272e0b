"""The audit log: record in the caller's transaction, diffs before -> after, filters."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from flask import Flask

from queue_app.auth import load_current_user
from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Queue
from queue_app.services import audit
from tests.factories import Personas


def test_diff_lists_only_changed_fields_as_before_and_after() -> None:
    before = {"ring_timeout_seconds": 20, "opens": time(8), "label": None, "same": 1}
    after = {"ring_timeout_seconds": 45, "opens": time(9, 30), "label": "Lunch", "same": 1}

    assert audit.diff(before, after) == {
        "label": [None, "Lunch"],
        "opens": ["08:00:00", "09:30:00"],
        "ring_timeout_seconds": [20, 45],
    }


def test_created_and_deleted_leave_out_empty_values() -> None:
    assert audit.created({"a": 1, "b": None, "d": date(2026, 12, 24)}) == {
        "a": [None, 1],
        "d": [None, "2026-12-24"],
    }
    assert audit.deleted({"a": 1, "b": None}) == {"a": [1, None]}


def test_it_records_who_when_and_what_and_filters(app: Flask, personas: Personas, clock: ManualClock) -> None:
    with app.app_context():
        alice = load_current_user(db.session, personas.alice.user_id)
        bob = load_current_user(db.session, personas.bob.user_id)
        with db.transaction() as session:
            queue = session.get(Queue, personas.alice.queue_id)
            audit.record(session, alice, "queue.update", queue, {"wrap_up_seconds": [30, 0]}, at=clock.now())
            audit.record(
                session, bob, "closure.create", ("closures", 7), {}, at=clock.now() + timedelta(days=1)
            )
        with db.transaction() as session:
            everything = audit.entries(session, personas.alice.organisation_id)
            by_alice = audit.entries(session, personas.alice.organisation_id, user_id=alice.id)
            by_prefix = audit.entries(session, personas.alice.organisation_id, action="closure")
            later = audit.entries(
                session, personas.alice.organisation_id, since=clock.now() + timedelta(hours=1)
            )
            other_org = audit.entries(session, personas.charlie.organisation_id)

    assert [e.action for e in everything] == ["closure.create", "queue.update"]
    [entry] = by_alice
    assert (entry.user_name, entry.target_type, entry.target_id) == (
        "Alice",
        "queues",
        str(personas.alice.queue_id),
    )
    assert entry.changes == {"wrap_up_seconds": [30, 0]}
    assert entry.at == clock.now()
    assert [e.action for e in by_prefix] == ["closure.create"]
    assert [e.action for e in later] == ["closure.create"]
    assert other_org == []


def test_an_entry_is_rolled_back_with_its_change(app: Flask, personas: Personas, clock: ManualClock) -> None:
    with app.app_context():
        alice = load_current_user(db.session, personas.alice.user_id)
        with pytest.raises(RuntimeError), db.transaction() as session:
            audit.record(session, alice, "queue.update", ("queues", 1), {}, at=clock.now())
            raise RuntimeError("the change failed")
        with db.transaction() as session:
            assert audit.entries(session, personas.alice.organisation_id) == []
