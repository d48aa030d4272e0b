"""Configuration as code: export, validate, import (dry run, idempotent, all-or-nothing)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from queue_app import create_app, migrations
from queue_app.clock import ManualClock
from queue_app.db import Base
from queue_app.demo import DEMO_CONFIG_PATH
from queue_app.extensions import db
from queue_app.models import DirectoryEntry, PhoneNumber, Queue, QueueMembership, User
from queue_app.services.config_io import dump_config, export_config, import_config, parse_config

from ..conftest import base_config
from ..factories import Personas


def demo_data() -> dict[str, Any]:
    return yaml.safe_load(DEMO_CONFIG_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def row_counts() -> dict[str, int]:
    with db.transaction() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def load_demo(app: Flask) -> dict[str, Any]:
    with app.app_context():
        report = import_config(demo_data(), dry_run=False)
        assert report.ok, report.errors
        return export_config("demo")


def test_it_reproduces_the_export_after_importing_it_into_an_empty_database(
    app: Flask, tmp_path: Path
) -> None:
    first = load_demo(app)
    assert parse_config(dump_config(first, "yaml")) == first
    assert parse_config(dump_config(first, "json")) == first

    other_url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    # `db` is process-global: the second app takes it over, and the first gets it back at the end.
    other = create_app(base_config(other_url, tmp_path, ManualClock()))
    try:
        with other.app_context():
            migrations.upgrade()
            report = import_config(parse_config(dump_config(first, "yaml"), name="x.yaml"), dry_run=False)
            assert report.ok, report.errors
            second = export_config("demo")
            assert import_config(second, dry_run=False).change_count == 0
    finally:
        db.configure(app.config["DATABASE_URL"])
    assert second == first


def test_it_exports_in_a_stable_order_and_never_a_password(app: Flask) -> None:
    first = load_demo(app)
    with app.app_context():
        assert export_config("demo") == first
    text = dump_config(first)
    assert "password" not in text
    assert "demo1234" not in text
    assert [u["email"] for u in first["users"]] == sorted(u["email"] for u in first["users"])
    assert list(first)[:3] == ["version", "organisation", "skills"]


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


INVALID_CASES = [
    (("queues", 1, "ring_timeout_seconds"), 3, "queues[1].ring_timeout_seconds: must be between 5 and 600"),
    (("users", 3, "email"), "not-an-address", "users[3].email: not a valid e-mail address"),
    (
        ("queues", 0, "memberships", 2, "user"),
        "x@exempel.se",
        "queues[0].memberships[2].user: no user with e-mail x@exempel.se",
    ),
    (("phone_numbers", 0, "number"), "08-465 004 00", "phone_numbers[0].number: not E.164"),
    (
        ("phone_numbers", 0, "number"),
        46846500400,
        'phone_numbers[0].number: not E.164 (write it as +46812345678); put the number in quotes: "+468',
    ),
    (("queues", 0, "colour"), "blue", "queues[0].colour: unknown key"),
    (("queues", 0, "strategy"), "random", "queues[0].strategy: must be one of fair, round_robin"),
    (("queues", 0, "schedule"), "Nattöppet", "queues[0].schedule: no schedule named Nattöppet"),
    (
        ("schedules", 0, "rules", 0, "rrule"),
        "FREQ=WEEKLY;BYDAY=XX",
        "schedules[0].rules[0].rrule: not a valid RRULE",
    ),
    (
        ("schedules", 0, "rules", 0, "ends"),
        1020,
        'schedules[0].rules[0].ends: must be a time "HH:MM" in quotes',
    ),
    (("schedules", 0, "rules", 0, "ends"), "07:00", "schedules[0].rules[0].ends: must be after starts"),
    (
        ("schedules", 0, "holiday_categories"),
        ["public", "pagan"],
        "schedules[0].holiday_categories[1]: not a",
    ),
    (
        ("schedules", 0, "holiday_choices"),
        [{"holiday": "Kräftskiva"}],
        "schedules[0].holiday_choices[0].holiday: no holiday of SE has this name",
    ),
    (("schedules", 0, "exceptions", 0, "opens"), None, "schedules[0].exceptions[0]: needs opens and closes"),
    (("users", 1, "skills", "kinesiska"), 5, "users[1].skills.kinesiska: no skill named kinesiska"),
    (("users", 1, "skills", "engelska"), 11, "users[1].skills.engelska: must be between 1 and 10"),
    (("users", 1, "client_identity"), "op anna", "users[1].client_identity: only letters"),
    (("users", 2, "client_identity"), "op_anna", "users[2]: duplicate client_identity"),
    (("queues", 1, "slug"), "vaxeln", "queues[1]: duplicate queues entry"),
    (("queues", 1, "overflow_forward_number"), None, "queues[1].overflow_forward_number: is required when"),
    (("queues", 1, "parallel_count"), 4, "queues[1].parallel_count: is larger than the 3 members"),
    (
        ("queues", 0, "memberships", 5, "may_log_in"),
        True,
        "queues[0].memberships[5].may_log_in: elin@exempel.se is on the basic plan; only pro, business",
    ),
    (
        ("message_templates", 0, "body"),
        "Ring {caller} om {weather}",
        "message_templates[0].body: unknown field",
    ),
    (("closures", 0, "ends_at"), "2026-12-18T11:00:00+01:00", "closures[0].ends_at: must be after starts_at"),
    (("closures", 0, "starts_at"), "2026-12-18T12:00:00", "closures[0].starts_at: needs a UTC offset"),
    (("closures", 0, "queues"), ["vaxeln", "support"], "closures[0].queues[1]: no queue with slug support"),
    (("prompts", 0, "kind"), "jingle", "prompts[0].kind: must be one of welcome"),
    (("organisation", "timezone"), "Europe/Stockhom", "organisation.timezone: not a time zone"),
    (
        ("organisation", "holiday_country"),
        False,
        "organisation.holiday_country: must be a country code; quote",
    ),
    (("directory", 0, "phone_number"), "+4612", "directory[0].phone_number: not E.164"),
    (("users", 0, "name"), None, "users[0].name: is required"),
    (("extras",), [], "extras: unknown key"),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID_CASES, ids=[c[2][:40] for c in INVALID_CASES])
def test_it_reports_an_invalid_value_with_its_path_and_changes_nothing(
    app: Flask, path: tuple[Any, ...], value: Any, message: str
) -> None:
    data = demo_data()
    _set(data, path, value)
    with app.app_context():
        report = import_config(data, dry_run=False)
        assert not report.ok
        assert any(error.startswith(message) for error in report.errors), report.errors
        assert sum(row_counts().values()) == 0


def test_it_collects_every_error_at_once_and_changes_nothing(app: Flask) -> None:
    load_demo(app)
    data = demo_data()
    data["queues"][0]["name"] = "Nya växeln"  # valid, but must not be applied either
    data["queues"][1]["ring_timeout_seconds"] = 700
    data["users"][3]["email"] = "cecilia(at)exempel.se"
    data["phone_numbers"][0]["number"] = "12345"
    data["queues"][0]["memberships"].append({"user": "nobody@exempel.se"})
    with app.app_context():
        before = row_counts()
        report = import_config(data, dry_run=False)
        assert len(report.errors) >= 4
        assert "queues[1].ring_timeout_seconds: must be between 5 and 600" in report.errors
        assert any(e.startswith("users[3].email: not a valid e-mail address") for e in report.errors)
        assert any(e.startswith("phone_numbers[0].number: not E.164") for e in report.errors)
        assert "queues[0].memberships[6].user: no user with e-mail nobody@exempel.se" in report.errors
        assert row_counts() == before
        with db.transaction() as session:
            assert session.scalar(select(Queue.name).where(Queue.slug == "vaxeln")) == "Växeln"


def test_it_refuses_numbers_and_users_of_another_organisation(app: Flask, personas: Personas) -> None:
    data = demo_data()
    data["phone_numbers"][0]["number"] = personas.alice.number
    data["users"][1]["email"] = personas.bob.email
    with app.app_context():
        report = import_config(data, dry_run=False)
    assert f"phone_numbers: {personas.alice.number} belongs to another organisation" in report.errors
    assert f"users: e-mail {personas.bob.email} belongs to another organisation" in report.errors
    assert "queues[0].memberships[1].user: no user with e-mail anna@exempel.se" in report.errors


def test_it_never_touches_other_organisations(app: Flask, personas: Personas) -> None:
    with app.app_context():
        acme_before = export_config("acme")
        assert import_config(demo_data(), dry_run=False).ok
        assert export_config("acme") == acme_before
        assert export_config("beta")["queues"][0]["slug"] == "support"


def test_it_makes_the_database_equal_the_file_removing_what_it_omits(app: Flask) -> None:
    exported = load_demo(app)
    data = copy.deepcopy(exported)
    vaxeln = data["queues"][1]
    assert vaxeln["slug"] == "vaxeln"
    vaxeln["memberships"] = [m for m in vaxeln["memberships"] if m["user"] != "david@exempel.se"]
    vaxeln["wrap_up_seconds"] = 45
    removed = data["directory"].pop(0)
    data["users"][-1]["skills"] = {"teknik": 2}
    data["schedules"][0]["rules"].pop()
    with app.app_context():
        report = import_config(data, dry_run=False)
        assert report.ok, report.errors
        assert report.changes["queues"].updated == ["vaxeln"]
        assert report.changes["directory"].deleted == [f"{removed['name']} / {removed['department']}"]
        assert export_config("demo") == data
        with db.transaction() as session:
            david = session.scalar(select(User).where(User.email == "david@exempel.se"))
            assert david is not None
            assert not session.scalar(select(QueueMembership).where(QueueMembership.user_id == david.id))


def test_it_leaves_collections_the_file_does_not_list(app: Flask) -> None:
    load_demo(app)
    data = {"organisation": demo_data()["organisation"], "directory": []}
    with app.app_context():
        report = import_config(data, dry_run=False)
        assert report.ok, report.errors
        assert len(report.changes["directory"].deleted) == 30
        assert set(report.changes) == {"directory"}
        with db.transaction() as session:
            assert session.scalar(select(func.count()).select_from(DirectoryEntry)) == 0
            assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 2


def test_it_changes_nothing_on_a_dry_run_and_says_what_would_change(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    exported = load_demo(app)
    data = copy.deepcopy(exported)
    data["queues"][0]["name"] = "Kundtjänsten"
    data["directory"] = data["directory"][1:]
    data["users"].append({"email": "frida@exempel.se", "name": "Frida Holm", "plan": "pro"})
    path = tmp_path / "changed.yaml"
    path.write_text(dump_config(data), encoding="utf-8")

    result = runner.invoke(args=["config", "import", str(path), "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "Would change organisation demo: 3 change(s)." in result.output
    assert "queues updated (1): kundtjanst" in result.output
    assert "users created (1): frida@exempel.se" in result.output
    assert "directory deleted (1): Ali Haddad / Lager" in result.output
    with app.app_context():
        assert export_config("demo") == exported

    result = runner.invoke(args=["config", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "Changed organisation demo: 3 change(s)." in result.output
    result = runner.invoke(args=["config", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "No changes to organisation demo." in result.output


def test_it_reports_zero_changes_when_the_same_file_is_imported_twice(app: Flask) -> None:
    with app.app_context():
        first = import_config(demo_data(), dry_run=False)
        second = import_config(demo_data(), dry_run=False)
    assert first.change_count > 50
    assert second.ok
    assert second.change_count == 0


def test_it_prints_the_line_of_a_yaml_syntax_error(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("organisation:\n  name: Trasig\n  slug: [trasig\nqueues: []\n", encoding="utf-8")
    result = runner.invoke(args=["config", "import", str(path)])
    assert result.exit_code != 0
    assert "line 4" in result.output
    with app.app_context():
        assert sum(row_counts().values()) == 0


def test_it_prints_the_line_of_a_json_syntax_error(runner: FlaskCliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "organisation": {"name": "X",}\n}\n', encoding="utf-8")
    result = runner.invoke(args=["config", "import", str(path)])
    assert result.exit_code != 0
    assert "line 2" in result.output


def test_it_prints_every_error_and_exits_non_zero_for_an_invalid_file(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    data = demo_data()
    data["queues"][1]["ring_timeout_seconds"] = 1
    data["users"][0]["plan"] = "gold"
    path = tmp_path / "invalid.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(args=["config", "import", str(path)])
    assert result.exit_code == 1
    assert "2 error(s); nothing was changed" in result.output
    assert "queues[1].ring_timeout_seconds: must be between 5 and 600" in result.output
    assert "users[0].plan: must be one of basic, pro, business, enterprise" in result.output
    with app.app_context():
        assert sum(row_counts().values()) == 0


def test_it_exports_through_the_cli_as_yaml_or_json(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    exported = load_demo(app)
    result = runner.invoke(args=["config", "export", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == exported
    out = tmp_path / "demo.yaml"
    result = runner.invoke(args=["config", "export", "--org", "demo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text(encoding="utf-8")) == exported
    assert runner.invoke(args=["config", "export", "--org", "nope"]).exit_code != 0


def test_it_asks_which_organisation_when_there_are_several(
    runner: FlaskCliRunner, personas: Personas
) -> None:
    result = runner.invoke(args=["config", "export"])
    assert result.exit_code != 0
    assert "--org" in result.output


def test_it_keeps_holiday_choices_all_queue_closures_and_english_prompts(app: Flask) -> None:
    data = demo_data()
    data["schedules"][0]["holiday_choices"] = [{"holiday": "Klämdag", "closed": True}]
    data["closures"].append(
        {
            "queues": "all",
            "starts_at": "2027-01-07T08:00:00+01:00",
            "reason": "Inventering",
            "message": "Stängt.",
        }
    )
    data["prompts"].append({"kind": "welcome", "language": "en", "text": "Welcome to Exempelbolaget."})
    with app.app_context():
        assert import_config(data, dry_run=False).ok
        exported = export_config("demo")
        assert import_config(exported, dry_run=False).change_count == 0
    assert exported["schedules"][0]["holiday_choices"] == [{"holiday": "Klämdag", "closed": True}]
    assert {"queues": "all", "starts_at": "2027-01-07T08:00:00+01:00", "reason": "Inventering"}.items() <= (
        exported["closures"][1].items()
    )
    assert {"kind": "welcome", "language": "en", "text": "Welcome to Exempelbolaget."} in exported["prompts"]
