"""Directory search: folding, ranking, numbers, availability; on real SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.domain import directory_search as rules
from queue_app.domain.text import fold
from queue_app.extensions import db
from queue_app.models import AuditEntry, Call, DirectoryEntry, OperatorStatus, Transfer
from queue_app.services import directory
from queue_app.services.config_import import search_text

from ..factories import make_org, make_user


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Åke Öberg", "ake oberg"),
        ("ÖRJAN", "orjan"),
        ("Karl-Johan Wästberg", "karl johan wastberg"),
        ("vd, ledningsgrupp", "vd ledningsgrupp"),
        ("Søren Ærø", "soren aero"),
        ("Straße", "strasse"),
        ("  José   Núñez ", "jose nunez"),
        (None, ""),
    ],
)
def test_it_folds_case_diacritics_and_punctuation(text: str | None, folded: str) -> None:
    assert fold(text) == folded


def test_config_import_stores_the_same_folding() -> None:
    assert (
        search_text("Åke Öberg", None, "Ekonomichef", "budget, bokslut")
        == "ake oberg ekonomichef budget bokslut"
    )


@pytest.mark.parametrize(
    ("query", "terms", "number"),
    [
        ("ake", ("ake",), None),
        ("Åke ÖB", ("ake", "ob"), None),
        ("08-465 004 13", ("08", "465", "004", "13"), "846500413"),
        ("+46 8 465", ("46", "8", "465"), "468465"),
        ("12", ("12",), None),
        ("", (), None),
    ],
)
def test_it_reads_a_query(query: str, terms: tuple[str, ...], number: str | None) -> None:
    parsed = rules.parse_query(query)

    assert (parsed.terms, parsed.number) == (terms, number)


def candidate(i: int, name: str, *rest: str, phone: str | None = None) -> rules.Candidate:
    return rules.Candidate(i, name, search_text(name, *rest), phone)


def test_it_ranks_name_prefixes_before_other_fields() -> None:
    people = [
        candidate(1, "Håkan Ek", "Sälj", "ake-projektet"),
        candidate(2, "Åke Öberg", "Ekonomi"),
        candidate(3, "Berit Åkesson", "Lager"),
        candidate(4, "Anna Ek", "Ekonomi", phone="+46846500413"),
    ]

    assert rules.rank(rules.parse_query("ake"), people, 10) == [2, 3, 1]
    assert rules.rank(rules.parse_query("ek"), people, 10) == [4, 1, 2]
    assert rules.rank(rules.parse_query("oberg ake"), people, 10) == [2]
    assert rules.rank(rules.parse_query("08 465 004 13"), people, 10) == [4]
    assert rules.rank(rules.parse_query("ake"), people, 1) == [2]


def test_it_shows_availability_as_it_is_now(clock: ManualClock) -> None:
    now = clock.now()
    later = now + timedelta(hours=1)

    assert rules.shown_availability("away", "Lunch", later, on_call=False, now=now).state == "away"
    assert rules.shown_availability("away", "Lunch", now, on_call=False, now=now).state == "free"
    assert rules.shown_availability("away", "Semester", None, on_call=True, now=now).state == "away"
    on_call = rules.shown_availability("free", None, None, on_call=True, now=now)
    assert (on_call.state, on_call.on_call) == ("busy", True)


# --- on real SQL ------------------------------------------------------------------------------------


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture
def world(ctx: None) -> dict[str, Any]:
    with db.transaction() as session:
        org = make_org(session)
        other = make_org(session)
        admin = make_user(session, org, role="admin")
        maria = make_user(session, org, name="Maria Ekström")
        ids: dict[str, Any] = {"org": org.id, "other": other.id, "admin": admin.id, "maria": maria.id}
        for key, name, dept, title, keywords, phone, user in [
            ("kj", "Karl-Johan Wästberg", "Ledning", "VD", "vd, styrelse", "+46846500410", None),
            ("ingrid", "Ingrid Åkesson", "Ledning", "Vice VD", "avtal", "+46846500411", None),
            (
                "maria_entry",
                "Maria Ekström",
                "Ledning",
                "Kontorschef",
                "reception, växel",
                "+46846500412",
                maria.id,
            ),
            ("ake", "Åke Öberg", "Ekonomi", "Ekonomichef", "budget, bokslut", "+46846500413", None),
            ("orjan", "Örjan Lind", "Lager", "Lagerchef", None, "+46846500414", None),
            ("percent", "100% Procent_Test", None, None, None, None, None),
        ]:
            entry = DirectoryEntry(
                organisation_id=org.id, name=name, department=dept, title=title, keywords=keywords,
                phone_number=phone, user_id=user,
            )  # fmt: skip
            entry.search_text = search_text(name, dept, title, keywords)
            session.add(entry)
            session.flush()
            ids[key] = entry.id
        stranger = DirectoryEntry(organisation_id=other.id, name="Åke Främling", search_text="ake framling")
        session.add(stranger)
        session.flush()
        ids["stranger"] = stranger.id
        return ids


def found(world: dict[str, Any], query: str, clock: ManualClock, limit: int = 20) -> list[str]:
    return [h.name for h in directory.search(db.session, world["org"], query, clock.now(), limit)]


def test_it_finds_without_diacritics_and_never_another_organisation(
    world: dict[str, Any], clock: ManualClock
) -> None:
    assert found(world, "ake", clock) == ["Åke Öberg", "Ingrid Åkesson"]
    assert found(world, "orjan", clock) == ["Örjan Lind"]
    assert found(world, "ÅKE öberg", clock) == ["Åke Öberg"]
    assert found(world, "johan", clock) == ["Karl-Johan Wästberg"]


def test_it_searches_department_title_keywords_and_numbers(world: dict[str, Any], clock: ManualClock) -> None:
    assert found(world, "ledning", clock) == ["Ingrid Åkesson", "Karl-Johan Wästberg", "Maria Ekström"]
    assert found(world, "vd", clock) == ["Ingrid Åkesson", "Karl-Johan Wästberg"]
    assert found(world, "bokslut", clock) == ["Åke Öberg"]
    assert found(world, "ekonomi", clock) == ["Åke Öberg"]
    assert found(world, "08-465 004 14", clock) == ["Örjan Lind"]
    assert found(world, "+46846500412", clock) == ["Maria Ekström"]


def test_it_treats_like_wildcards_as_text(world: dict[str, Any], clock: ManualClock) -> None:
    assert found(world, "%", clock) == found(world, "", clock)  # nothing to search for: the whole list
    assert found(world, "_", clock) == found(world, "", clock)
    assert found(world, "100%", clock) == ["100% Procent_Test"]


def test_an_empty_query_lists_the_directory_by_name(world: dict[str, Any], clock: ManualClock) -> None:
    assert found(world, "", clock, limit=2) == ["100% Procent_Test", "Ingrid Åkesson"]


def test_it_shows_a_colleague_on_a_call_or_with_a_caller_camped_on_as_busy(
    world: dict[str, Any], clock: ManualClock
) -> None:
    with db.transaction() as session:
        session.add(
            OperatorStatus(
                user_id=world["maria"], organisation_id=world["org"], state="on_call", state_since=clock.now()
            )
        )
        call = Call(
            organisation_id=world["org"], call_sid="CAcamp", from_number="+46701", to_number="+46855",
            state="camped_on", arrived_at=clock.now(),
        )  # fmt: skip
        session.add(call)
        session.flush()
        session.add(
            Transfer(
                organisation_id=world["org"], call_id=call.id, directory_entry_id=world["ake"],
                to_number="+46846500413", state="camped_on", created_at=clock.now(),
            )
        )  # fmt: skip

    hits = {h.name: h.availability for h in directory.search(db.session, world["org"], "", clock.now(), 20)}

    assert (hits["Maria Ekström"].state, hits["Maria Ekström"].on_call) == ("busy", True)
    assert (hits["Åke Öberg"].state, hits["Åke Öberg"].on_call) == ("busy", True)
    assert hits["Örjan Lind"].state == "free"


def test_a_colleague_sets_away_with_a_note_and_it_is_audited(
    world: dict[str, Any], clock: ManualClock
) -> None:
    maria = directory.Editor(world["maria"], world["org"], is_admin=False)
    until = clock.now() + timedelta(hours=1)

    hit = directory.set_availability(maria, world["maria_entry"], "away", " Lunch ", until, clock.now())

    assert (hit.availability.state, hit.availability.note, hit.availability.until) == ("away", "Lunch", until)
    with db.transaction() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "directory.availability")).one()
    assert audit.user_id == world["maria"]
    assert audit.changes["after"]["away_note"] == "Lunch"


def test_only_admins_and_the_colleague_change_availability(world: dict[str, Any], clock: ManualClock) -> None:
    maria = directory.Editor(world["maria"], world["org"], is_admin=False)
    admin = directory.Editor(world["admin"], world["org"], is_admin=True)
    outsider = directory.Editor(world["admin"], world["other"], is_admin=True)

    with pytest.raises(directory.NotPermitted):
        directory.set_availability(maria, world["ake"], "busy", None, None, clock.now())
    assert (
        directory.set_availability(admin, world["ake"], "busy", None, None, clock.now()).availability.state
        == "busy"
    )
    with pytest.raises(directory.EntryNotFound):
        directory.set_availability(outsider, world["ake"], "free", None, None, clock.now())


@pytest.mark.parametrize(
    ("availability", "note", "hours", "message"),
    [
        ("gone", None, None, "free, busy or away"),
        ("away", "x" * 201, None, "at most 200"),
        ("away", None, -1, "in the future"),
    ],
)
def test_it_refuses_bad_availability(
    world: dict[str, Any],
    clock: ManualClock,
    availability: str,
    note: str | None,
    hours: int | None,
    message: str,
) -> None:
    admin = directory.Editor(world["admin"], world["org"], is_admin=True)
    until = clock.now() + timedelta(hours=hours) if hours is not None else None

    with pytest.raises(directory.DirectoryError, match=message):
        directory.set_availability(admin, world["ake"], availability, note, until, clock.now())


def test_setting_free_clears_the_note(world: dict[str, Any], clock: ManualClock) -> None:
    admin = directory.Editor(world["admin"], world["org"], is_admin=True)
    directory.set_availability(admin, world["ake"], "away", "Semester", None, clock.now())

    hit = directory.set_availability(
        admin, world["ake"], "free", "ignored", clock.now() + timedelta(1), clock.now()
    )

    assert (hit.availability.state, hit.availability.note, hit.availability.until) == ("free", None, None)
