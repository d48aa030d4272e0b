"""Config import and the users a file leaves out: deactivated with their history, never deleted."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, LicenceEvent, OperatorStatus, Queue, QueueLogin, User
from queue_app.services import licences, operators, users
from queue_app.services.config_io import dump_config, export_config, import_config

from .test_config_io import load_demo

ANNA = "anna@exempel.se"


def without(data: dict[str, Any], email: str) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    changed["users"] = [u for u in changed["users"] if u["email"] != email]
    for queue in changed["queues"]:
        queue["memberships"] = [m for m in queue["memberships"] if m["user"] != email]
    return changed


def user_id(email: str) -> int:
    with db.transaction() as session:
        found = session.scalar(select(User.id).where(User.email == email))
        assert found is not None
        return found


def anna_on_duty(app: Flask, clock: ManualClock) -> tuple[int, int]:
    """Anna logged in to every queue she may log in to, with one answered call in the books."""
    with app.app_context():
        anna = user_id(ANNA)
        with db.transaction() as session:
            queue_ids = list(session.scalars(select(Queue.id).order_by(Queue.id)))
            call = Call(
                organisation_id=session.scalar(select(User.organisation_id).where(User.id == anna)),
                queue_id=queue_ids[0],
                call_sid="CA" + "a" * 32,
                from_number="+46701234567",
                to_number="+46812345678",
                state="completed",
                arrived_at=clock.now(),
                answered_by_id=anna,
            )
            session.add(call)
            session.flush()
            call_id = call.id
        allowed = [q for q in queue_ids if operators_may_log_in(anna, q)]
        operators.log_in(anna, allowed, clock.now())
        with db.transaction() as session:
            licences.sync(session, session.get_one(User, anna).organisation_id, None, clock.now())
        return anna, call_id


def operators_may_log_in(user: int, queue_id: int) -> bool:
    from queue_app.models import QueueMembership

    with db.transaction() as session:
        return bool(
            session.scalar(
                select(QueueMembership.may_log_in).where(
                    QueueMembership.user_id == user, QueueMembership.queue_id == queue_id
                )
            )
        )


def test_a_user_the_file_omits_is_deactivated_logged_out_and_unlicensed_but_kept(
    app: Flask, clock: ManualClock
) -> None:
    data = load_demo(app)
    anna, call_id = anna_on_duty(app, clock)
    clock.advance(60)

    with app.app_context():
        report = import_config(without(data, ANNA), dry_run=False)

        assert report.ok, report.errors
        assert report.changes["users"].deactivated == [ANNA]
        assert report.changes["users"].deleted == []
        with db.transaction() as session:
            row = session.get_one(User, anna)
            assert row.is_active is False
            assert session.scalars(select(QueueLogin).where(QueueLogin.user_id == anna)).all() == []
            status = session.get_one(OperatorStatus, anna)
            assert (status.state, status.logged_out_reason) == ("offline", operators.REASON_DEACTIVATED)
            assert session.get_one(Call, call_id).answered_by_id == anna  # the history stays
            assert anna not in licences.licensed_user_ids(session, row.organisation_id)
            last = session.scalars(
                select(LicenceEvent).where(LicenceEvent.user_id == anna).order_by(LicenceEvent.id.desc())
            ).first()
            assert last is not None and (last.licensed, last.at) == (False, clock.now())
        assert users.authenticate(ANNA, "demo1234", clock.now()) is None
        exported = {u["email"]: u for u in export_config("demo")["users"]}
        assert exported[ANNA]["active"] is False


def test_importing_the_same_file_again_changes_nothing(app: Flask, clock: ManualClock) -> None:
    data = load_demo(app)
    with app.app_context():
        assert import_config(without(data, ANNA), dry_run=False).changes["users"].deactivated == [ANNA]
        again = import_config(without(data, ANNA), dry_run=False)
        assert again.ok and "users" not in again.changes


def test_a_user_in_the_file_may_take_the_browser_identity_of_one_it_omits(
    app: Flask, clock: ManualClock
) -> None:
    data = load_demo(app)
    changed = without(data, ANNA)
    changed["users"].append(
        {"email": "frida@exempel.se", "name": "Frida Holm", "plan": "pro", "client_identity": "op_anna"}
    )
    with app.app_context():
        report = import_config(changed, dry_run=False)
        assert report.ok, report.errors
        with db.transaction() as session:
            anna = session.scalar(select(User).where(User.email == ANNA))
            frida = session.scalar(select(User).where(User.email == "frida@exempel.se"))
            assert anna is not None and frida is not None
            assert (anna.is_active, anna.client_identity) == (False, None)
            assert frida.client_identity == "op_anna"


def test_a_user_listed_again_as_active_is_reactivated(app: Flask, clock: ManualClock) -> None:
    data = load_demo(app)
    with app.app_context():
        import_config(without(data, ANNA), dry_run=False)
        report = import_config(data, dry_run=False)
        assert report.changes["users"].updated == [ANNA]
        assert users.authenticate(ANNA, "demo1234", clock.now()) is not None


def test_the_dry_run_says_deactivate_and_changes_nothing(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, clock: ManualClock
) -> None:
    data = load_demo(app)
    path = tmp_path / "without-anna.yaml"
    path.write_text(dump_config(without(data, ANNA)), encoding="utf-8")

    result = runner.invoke(args=["config", "import", str(path), "--dry-run"])

    assert result.exit_code == 0, result.output
    assert f"users deactivated (1): {ANNA}" in result.output
    assert "deleted" not in result.output.split("users", 1)[1].splitlines()[0]
    with app.app_context():
        assert users.authenticate(ANNA, "demo1234", clock.now()) is not None


def test_the_recording_number_survives_export_and_import(app: Flask, clock: ManualClock) -> None:
    data = load_demo(app)
    changed = copy.deepcopy(data)
    changed["phone_numbers"].append({"number": "+46855509999", "records_prompts": True})
    with app.app_context():
        report = import_config(changed, dry_run=False)
        assert report.ok, report.errors
        exported = export_config("demo")
        assert {"number": "+46855509999", "records_prompts": True} in exported["phone_numbers"]
        assert all(
            "records_prompts" not in n for n in exported["phone_numbers"] if n["number"] != "+46855509999"
        )
        assert import_config(exported, dry_run=False).change_count == 0


def test_a_recording_number_that_reaches_a_queue_is_refused(app: Flask) -> None:
    data = load_demo(app)
    changed = copy.deepcopy(data)
    changed["phone_numbers"][0]["records_prompts"] = True
    changed["phone_numbers"].append({"number": "+46855509999", "records_prompts": True})
    with app.app_context():
        report = import_config(changed, dry_run=False)
    assert "phone_numbers[0].records_prompts: a number that records prompts reaches no queue" in report.errors
    assert "phone_numbers: at most one number may record prompts" in report.errors
