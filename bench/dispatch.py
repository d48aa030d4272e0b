"""Dispatch decision + commit time at 10, 1,000 and 10,000 waiting calls with 10, 100 and 1,000 operators.

For each backend and each (waiting calls, operators) pair this
1. creates a fresh database (a temporary SQLite file; PostgreSQL `koe_bench_dispatch`), migrates it,
   and seeds with bulk inserts one organisation with 4 queues (strategy fair, the costliest: it
   counts each operator's calls answered today), the operators (each logged in to 2 queues, 5 calls
   answered today each, all on a call but `--free` of them), and the waiting callers spread over
   the queues, a few with a higher priority;
2. times `dispatch_once(now)` alone: read, decide, claim, write the offers, commit. The REST
   redirect that follows in the worker is not timed. Each round then cancels its offers (untimed),
   which returns callers and operators to where they were, so every round decides the same thing;
3. prints median and p95 per pair (and JSON with --json).

    .venv/bin/python -m bench.dispatch                           # SQLite and PostgreSQL
    .venv/bin/python -m bench.dispatch --rounds 50 --free 1 --json
    .venv/bin/python -m bench.dispatch --backends postgresql --pg postgresql://postgres@127.0.0.1:5432/postgres

Target: under 20 ms per dispatch at 10,000 waiting calls and 1,000 operators on PostgreSQL, with
flat or logarithmic growth. `--free 1` is the steady state (an operator comes free, the dispatcher
hands them the next caller); a larger `--free` measures a burst of offers in one round.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from queue_app import create_app
from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import (
    Call,
    OperatorStatus,
    Organisation,
    Queue,
    QueueLogin,
    QueueMembership,
    User,
)
from queue_app.services import dispatch, offers

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_NAME = "koe_bench_dispatch"
WAITING = (10, 1_000, 10_000)
OPERATORS = (10, 100, 1_000)
QUEUES = 4
ANSWERED_TODAY = 5
NOW = utc("2026-11-25 09:00")


def seed(waiting: int, operators: int, free: int) -> None:
    with db.transaction() as session:
        org = Organisation(name="Bench AB", slug="bench", timezone="Europe/Stockholm")
        session.add(org)
        session.flush()
        queues = [
            Queue(organisation_id=org.id, name=f"Kö {i}", slug=f"ko-{i}", strategy="fair")
            for i in range(QUEUES)
        ]
        session.add_all(queues)
        session.flush()
        qids = [q.id for q in queues]
        session.execute(
            insert(User),
            [
                {
                    "organisation_id": org.id,
                    "email": f"op{i}@bench.test",
                    "name": f"Operator {i}",
                    "password_hash": "-",
                    "role": "operator",
                    "plan": "pro",
                    "client_identity": f"op_{i}",
                }
                for i in range(operators)
            ],
        )
        user_ids = sorted(session.scalars(User.__table__.select().with_only_columns(User.id)))
        pairs = [(uid, (qids[i % QUEUES], qids[(i + 1) % QUEUES])) for i, uid in enumerate(user_ids)]
        session.execute(
            insert(QueueMembership),
            [
                {"queue_id": q, "user_id": uid, "may_see": True, "may_log_in": True}
                for uid, qs in pairs
                for q in qs
            ],
        )
        session.execute(
            insert(QueueLogin),
            [
                {"queue_id": q, "user_id": uid, "logged_in_at": NOW - timedelta(hours=2)}
                for uid, qs in pairs
                for q in qs
            ],
        )
        session.execute(
            insert(OperatorStatus),
            [
                {
                    "user_id": uid,
                    "organisation_id": org.id,
                    "state": "available" if i < free else "on_call",
                    "state_since": NOW - timedelta(minutes=i % 60),
                    "last_call_ended_at": NOW - timedelta(seconds=30 + i),
                    "missed_no_answer": 0,
                    "missed_declined": 0,
                    "missed_unreachable": 0,
                    "version": 0,
                }
                for i, uid in enumerate(user_ids)
            ],
        )
        calls: list[dict[str, Any]] = []
        for i, (uid, qs) in enumerate(pairs):
            for k in range(ANSWERED_TODAY):
                at = NOW - timedelta(minutes=10 + 7 * k + i % 5)
                calls.append(_call(org.id, qs[k % 2], f"done-{i}-{k}", "completed", at, answered_by=uid))
        for i in range(waiting):
            entered = NOW - timedelta(seconds=waiting - i)
            calls.append(
                _call(org.id, qids[i % QUEUES], f"wait-{i}", "waiting", entered, priority=i % 97 == 0)
            )
        for start in range(0, len(calls), 5_000):
            session.execute(insert(Call), calls[start : start + 5_000])


def _call(
    org_id: int,
    queue_id: int,
    sid: str,
    state: str,
    at: Any,
    answered_by: int | None = None,
    priority: int = 0,
) -> dict[str, Any]:
    return {
        "organisation_id": org_id,
        "queue_id": queue_id,
        "call_sid": f"CA{sid:0>32}"[:34],
        "from_number": "+46701234567",
        "to_number": "+46855500001",
        "state": state,
        "priority": int(priority),
        "arrived_at": at - timedelta(seconds=5),
        "entered_queue_at": at,
        "answered_at": at if answered_by else None,
        "answered_by_id": answered_by,
        "ended_at": at + timedelta(minutes=3) if answered_by else None,
        "required_skills": {},
        "announcement_state": {},
        "last_status_sequence": -1,
        "version": 0,
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def measure(url: str, waiting: int, operators: int, free: int, rounds: int, tmp: Path) -> dict[str, Any]:
    from queue_app import migrations

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "DATABASE_URL": url,
            "CLOCK": ManualClock(NOW),
            "AUDIO_DIR": str(tmp / "audio"),
            "TWILIO_EMULATOR": True,
            "RUN_WORKER_IN_PROCESS": False,
        }
    )
    with app.app_context():
        migrations.upgrade("head")
        seed(waiting, operators, free)
        if db.dialect == "postgresql":
            with db.transaction() as session:
                session.execute(text("ANALYZE"))  # fresh statistics, as autovacuum would keep
        timings: list[float] = []
        made = 0
        for i in range(rounds + 3):  # three warm-up rounds fill caches and the pool
            now = NOW + timedelta(seconds=i)
            started = time.perf_counter()
            redirects = dispatch.dispatch_once(now)
            elapsed = (time.perf_counter() - started) * 1000
            assert len(redirects) == min(free, waiting), (len(redirects), free, waiting)
            for redirect in redirects:
                assert redirect.group_key is not None
                offers.cancel_group(redirect.group_key, now, "bench")
            if i >= 3:
                timings.append(elapsed)
                made += len(redirects)
    db.dispose()
    return {
        "waiting": waiting,
        "operators": operators,
        "free": free,
        "rounds": len(timings),
        "offers_per_round": made / len(timings),
        "median_ms": statistics.median(timings),
        "p95_ms": pct(timings, 0.95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--free", type=int, default=1, help="operators available per round (offers made)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--waiting", default=",".join(map(str, WAITING)))
    parser.add_argument("--operators", default=",".join(map(str, OPERATORS)))
    parser.add_argument("--pg", default=None, help=f"admin URL of a PostgreSQL server (default {DEFAULT_PG})")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    admin = args.pg or os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for backend in args.backends.split(","):
            for waiting in map(int, args.waiting.split(",")):
                for operators in map(int, args.operators.split(",")):
                    free = min(args.free, operators)
                    if backend == "sqlite":
                        path = tmp / f"dispatch-{waiting}-{operators}.sqlite3"
                        url = f"sqlite:///{path}"
                    else:
                        plain = (
                            make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
                        )
                        with psycopg.connect(plain, autocommit=True) as conn:
                            conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
                            conn.execute(f'CREATE DATABASE "{PG_NAME}"')
                        url = make_url(admin).set(drivername="postgresql+psycopg", database=PG_NAME)
                        url = url.render_as_string(hide_password=False)
                    result = measure(url, waiting, operators, free, args.rounds, tmp)
                    results.append({"backend": backend} | result)
                    if not args.json:
                        print(_row(results[-1]), flush=True)
                    if backend != "sqlite":
                        with psycopg.connect(plain, autocommit=True) as conn:
                            conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
    if args.json:
        print(json.dumps(results, indent=2))


_header_printed = False


def _row(r: dict[str, Any]) -> str:
    global _header_printed
    line = (
        f"{r['backend']:<11} {r['waiting']:>8} {r['operators']:>9} {r['offers_per_round']:>7.0f} "
        f"{r['median_ms']:>10.2f} {r['p95_ms']:>8.2f}"
    )
    if _header_printed:
        return line
    _header_printed = True
    head = f"{'backend':<11} {'waiting':>8} {'operators':>9} {'offers':>7} {'median ms':>10} {'p95 ms':>8}"
    return head + "\n" + line


if __name__ == "__main__":
    main()
