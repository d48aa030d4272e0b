"""The demo company, Exempelbolaget AB, loaded through the ordinary config import."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from werkzeug.security import check_password_hash

from queue_app.extensions import db
from queue_app.models import (
    DirectoryEntry,
    MessageTemplate,
    Organisation,
    PhoneNumber,
    Queue,
    Schedule,
    User,
)
from queue_app.services.config_schema import template_fields


def test_it_loads_the_demo_twice_without_changing_anything_the_second_time(
    app: Flask, runner: FlaskCliRunner
) -> None:
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "Changed organisation demo" in first.output

    second = runner.invoke(args=["demo", "load"])

    assert second.exit_code == 0, second.output
    assert "No changes to organisation demo." in second.output
    lines = second.output.splitlines()
    logins = lines[lines.index("Demo log-ins (demo passwords, never use them for real accounts):") + 1 :]
    assert logins[0].split() == ["admin", "admin@exempel.se", "demo1234", "business"]
    assert [line.split()[1] for line in logins[1:]] == [
        "anna@exempel.se",
        "bjorn@exempel.se",
        "cecilia@exempel.se",
        "david@exempel.se",
        "elin@exempel.se",
    ]


def test_it_gives_the_demo_users_the_printed_passwords(app: Flask, runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    with app.app_context(), db.transaction() as session:
        users = session.scalars(select(User).order_by(User.email)).all()
        assert len(users) == 6
        for user in users:
            assert user.password_hash is not None
            assert check_password_hash(user.password_hash, "demo1234")


def test_it_describes_a_swedish_company_with_two_queues_and_five_operators(
    app: Flask, runner: FlaskCliRunner
) -> None:
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    with app.app_context(), db.transaction() as session:
        org = session.scalars(select(Organisation).where(Organisation.slug == "demo")).one()
        assert (org.name, org.timezone, org.locale, org.holiday_country) == (
            "Exempelbolaget AB",
            "Europe/Stockholm",
            "sv",
            "SE",
        )
        queues = {q.slug: q for q in session.scalars(select(Queue))}
        assert queues["vaxeln"].strategy == "fair"
        assert queues["kundtjanst"].strategy == "parallel"
        assert queues["kundtjanst"].parallel_count == 2
        assert [s.skill.name for s in queues["kundtjanst"].required_skills] == ["fakturor"]
        numbers = {n.number: n.queue_id for n in session.scalars(select(PhoneNumber))}
        assert sorted(numbers.values()) == sorted(q.id for q in queues.values())

        operators = session.scalars(select(User).where(User.role == "operator")).all()
        assert len(operators) == 5
        assert {u.plan for u in operators} == {"basic", "pro", "business", "enterprise"}
        assert all(u.client_identity and u.client_identity.startswith("op_") for u in operators)
        basic = next(u for u in operators if u.plan == "basic")
        for queue in queues.values():
            for membership in queue.memberships:
                if membership.user_id == basic.id:
                    assert membership.may_see and not membership.may_log_in

        kontorstid = session.scalars(select(Schedule).where(Schedule.name == "Kontorstid")).one()
        assert kontorstid.rules[0].rrule == "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
        assert (kontorstid.rules[0].starts.hour, kontorstid.rules[0].ends.hour) == (8, 17)
        assert set(kontorstid.holiday_categories) == {"public", "de_facto"}
        assert any(e.closes is not None and e.closes.hour == 14 for e in kontorstid.exceptions)

        directory = session.scalars(select(DirectoryEntry)).all()
        assert len(directory) == 30
        assert {d.department for d in directory} >= {
            "Ekonomi",
            "Försäljning",
            "IT",
            "HR",
            "Ledning",
            "Lager",
            "Kundtjänst",
        }
        assert any(d.name.startswith("Åke") for d in directory)
        assert all(d.phone_number and d.phone_number.startswith("+46") for d in directory)
        ake = next(d for d in directory if d.name == "Åke Öberg")
        assert "ake oberg" in ake.search_text

        templates = {t.name: t for t in session.scalars(select(MessageTemplate))}
        assert set(templates) == {"Ring tillbaka", "Meddelande", "Besök"}
        assert {"caller", "time", "topic"} <= set(template_fields(templates["Ring tillbaka"].body))
