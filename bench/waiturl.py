"""The hot path: Twilio's waitUrl fetches for N waiting callers, against a bare Flask endpoint.

    .venv/bin/python bench/waiturl.py                 # 1,000 and 10,000 callers, PostgreSQL
    .venv/bin/python bench/waiturl.py --callers 1000 --duration 20 --json

What it does, all on this machine:
1. creates a fresh PostgreSQL database (`koe_bench`), migrates it, and seeds one organisation, one
   queue, a few logged-in operators and N callers waiting in it, each in the steady state (they
   heard their last announcement a random part of the interval ago, so fetches announce as often as
   in a real queue, about 40%);
2. starts the app with the Procfile's web line (gunicorn, its worker count and class, access log;
   `--workers N` sets WEB_CONCURRENCY) and, the same way, `bench/bare_app.py`, a Flask endpoint
   answering a fixed TwiML document;
3. for each N: sends signed waitUrl requests open-loop at the rate Twilio would make them (each
   caller fetches again when its ~25 s document ends, so N/25 a second), then at the 500/s target;
4. measures each endpoint's ceiling with the same open-loop generator at rising rates (the highest
   rate served with no errors and p99 under 50 ms; steps of 25%, then of 8% above the last rate held;
   a rate not held is tried once more, as one pause of the machine can spoil a phase),
   bare Flask's again for each N just before the waitUrl's, and reports each waitUrl ceiling as a
   share of that one (`share_of_bare`): this machine's speed drifts within minutes.
   Fetched that fast, a caller has mostly heard what was due, so most fetches are music only: the
   waitUrl's ceiling is measured again with the queue's intervals at 1 s, where every fetch says the
   periodic message, the position and the expected wait (the worst case; in a real queue about
   half the fetches announce, as the documents last until the next announcement is due);
5. after each waitUrl ceiling, measures both endpoints' throughput at saturation (a closed loop,
   8 requests always in flight: `loadgen.c cN`), bare Flask and the waitUrl taking turns three
   times, and reports the waitUrl's median as a share of bare's. A ceiling is decided by the p99 of
   one short phase, so one pause of the machine moves it by a step; this is the steadier ratio.
   `--rounds` repeats everything per N and reports each share's median.
Prints a table (and JSON with --json): requests/s, p50/p99 latency and errors per phase, and from the
app's own log lines the mix of outcomes (announced, music) with their server-side median times
(music-only fetches log at DEBUG: their number comes from gunicorn's access log, their time is not known).
The load generator is `bench/loadgen.c`, built with the system gcc at run time (a tenth to half a
core at 1,000–5,000 requests/s); without gcc, or with `--loadgen python`, the asyncio one in
`bench/loadgen.py`, which needs about a core at 1,000/s, so it caps the bare endpoint's ceiling.
It shares the machine's cores with the servers and PostgreSQL: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loadgen import Request, native_available, run_native, run_open_loop, saturate_native  # noqa: E402

from queue_app.config import EMULATOR_ACCOUNT_SID, EMULATOR_AUTH_TOKEN  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("BENCH_DB_NAME", "koe_bench")  # another name lets two benches run at once
TWILIO_DOCUMENT_SECONDS = 25.0  # each waitUrl answer lasts about this long (announcements + music)
ANNOUNCE_INTERVAL_SECONDS = 60  # the seeded queue's position and periodic message intervals
LOADGEN = {"native": True}  # bench/loadgen.c; False: the asyncio generator in bench/loadgen.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url() -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{DB_NAME}"


def fresh_database() -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    env = os.environ | {"DATABASE_URL": database_url(), "LOG_LEVEL": "WARNING"}
    subprocess.run(
        [str(ROOT / ".venv/bin/flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True
    )


def heard_so_far(i: int, now: datetime, rng: random.Random, operators: int) -> str:
    """A caller in the steady state: each heard their last position and periodic message a uniformly
    random part of the 60 s interval ago, so about as many fetches announce as in a real queue."""
    status_at = now - timedelta(seconds=rng.uniform(0, ANNOUNCE_INTERVAL_SECONDS))
    periodic_at = now - timedelta(seconds=rng.uniform(0, ANNOUNCE_INTERVAL_SECONDS))
    return json.dumps(
        {
            "first_message_at": (now - timedelta(minutes=5)).isoformat(),
            "status_at": status_at.isoformat(),
            "periodic_at": periodic_at.isoformat(),
            "position": i + 1,
            "estimate_seconds": 60 * (i + 1) // max(operators, 1),
            "serving_operators": operators,
        }
    )


def seed(callers: int, operators: int) -> list[str]:
    """One queue with `callers` waiting and `operators` logged in and busy; returns the CallSids."""
    now = datetime.now(UTC)
    rng = random.Random(callers)
    sids = [f"CA{i:032x}" for i in range(callers)]
    with psycopg.connect(database_url(), autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM calls")
        cur.execute("SELECT id FROM organisations WHERE slug = 'bench'")
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO organisations (name, slug, timezone, locale, holiday_country, created_at)"
                " VALUES ('Bench AB', 'bench', 'Europe/Stockholm', 'sv', 'SE', %s) RETURNING id",
                (now.replace(tzinfo=None),),
            )
            row = cur.fetchone()
        org_id = row[0]
        cur.execute("SELECT id FROM queues WHERE organisation_id = %s", (org_id,))
        queue = cur.fetchone()
        if queue is None:
            queue = _insert_queue(cur, org_id, now)
            _insert_operators(cur, org_id, queue[0], operators, now)
        queue_id = queue[0]
        cur.execute(  # as `_insert_queue` made it, in case an earlier N's worst case changed it
            "UPDATE queues SET announce_interval_seconds = %(s)s, periodic_interval_seconds = %(s)s"
            " WHERE id = %(id)s",
            {"s": ANNOUNCE_INTERVAL_SECONDS, "id": queue_id},
        )
        naive = now.replace(tzinfo=None)
        with cur.copy(
            "COPY calls (organisation_id, queue_id, call_sid, from_number, to_number, state, priority,"
            " arrived_at, entered_queue_at, required_skills, announcement_state, last_status_sequence,"
            " version) FROM STDIN"
        ) as copy:
            for i, sid in enumerate(sids):
                entered = naive - timedelta(seconds=callers - i)
                copy.write_row(
                    (
                        org_id,
                        queue_id,
                        sid,
                        f"+4670{i:07d}",
                        "+46855512345",
                        "waiting",
                        0,
                        entered,
                        entered,
                        "{}",
                        heard_so_far(i, now, rng, operators),
                        -1,
                        0,
                    )
                )
        conn.commit()
    with psycopg.connect(database_url(), autocommit=True) as conn:
        # As autovacuum keeps a live table: the rows an earlier N left are gone, the statistics and
        # the visibility map are fresh (the line's snapshot reads the index only).
        conn.execute("VACUUM ANALYZE")
    return sids


def _insert_queue(cur: Any, org_id: int, now: datetime) -> Any:
    columns = {
        "organisation_id": org_id,
        "name": "Växeln",
        "slug": "vaxeln",
        "language": "sv",
        "strategy": "fair",
        "parallel_count": 1,
        "ring_timeout_seconds": 20,
        "wrap_up_seconds": 30,
        "max_missed_offers": 3,
        "priority": 0,
        "welcome_enabled": True,
        "first_message_enabled": True,
        "periodic_message_enabled": True,
        "periodic_interval_seconds": ANNOUNCE_INTERVAL_SECONDS,
        "announce_position": True,
        "announce_expected_wait": True,
        "announce_interval_seconds": ANNOUNCE_INTERVAL_SECONDS,
        "closed_action": "hangup",
        "closing_while_waiting": "serve",
        "overflow_action": "busy",
        "overflow_active": False,
        "no_operator_action": "queue",
        "callback_enabled": False,
        "voicemail_enabled": False,
        "caller_options_after_seconds": 120,
        "created_at": now.replace(tzinfo=None),
    }
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    cur.execute(f"INSERT INTO queues ({names}) VALUES ({marks}) RETURNING id", list(columns.values()))
    queue = cur.fetchone()
    cur.execute(
        "INSERT INTO phone_numbers (organisation_id, number, queue_id) VALUES (%s, '+46855512345', %s)",
        (org_id, queue[0]),
    )
    return queue


def _insert_operators(cur: Any, org_id: int, queue_id: int, count: int, now: datetime) -> None:
    naive = now.replace(tzinfo=None)
    for i in range(count):
        cur.execute(
            "INSERT INTO users (organisation_id, email, name, role, plan, client_identity, is_active,"
            " created_at) VALUES (%s, %s, %s, 'operator', 'pro', %s, true, %s) RETURNING id",
            (org_id, f"op{i}@bench.test", f"Operator {i}", f"op_{i}", naive),
        )
        user_id = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO operator_statuses (user_id, organisation_id, state, state_since, missed_no_answer,"
            " missed_declined, missed_unreachable, version) VALUES (%s, %s, 'on_call', %s, 0, 0, 0, 0)",
            (user_id, org_id, naive),
        )
        cur.execute(
            "INSERT INTO queue_logins (user_id, queue_id, logged_in_at) VALUES (%s, %s, %s)",
            (user_id, queue_id, naive),
        )


def signed_requests(sids: list[str], port: int) -> list[Request]:
    """One signed waitUrl request per caller, shuffled so fetches come from the whole line."""
    validator = RequestValidator(EMULATOR_AUTH_TOKEN)
    url = f"http://127.0.0.1:{port}/twilio/wait"
    requests = []
    for i, sid in enumerate(sids):
        params = {
            "AccountSid": EMULATOR_ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": sid,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "From": f"+4670{i:07d}",
            "To": "+46855512345",
            "Caller": f"+4670{i:07d}",
            "Called": "+46855512345",
            "QueuePosition": str(i + 1),
            "QueueSid": "QU" + "0" * 32,
            "QueueTime": "30",
            "AvgQueueTime": "60",
            "CurrentQueueSize": str(len(sids)),
            "MaxQueueSize": "5000",
        }
        signature = validator.compute_signature(url, params)
        requests.append(
            Request("/twilio/wait", urlencode(params).encode(), (("X-Twilio-Signature", signature),))
        )
    random.Random(len(sids)).shuffle(requests)
    return requests


def announce_on_every_fetch() -> None:
    """The worst case for the waitUrl: every status and periodic announcement due on each fetch."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute("UPDATE queues SET announce_interval_seconds = 1, periodic_interval_seconds = 1")


def outcome_mix(log_path: Path, start: int = 0, end: int | None = None) -> dict[str, dict[str, float]]:
    """From the app's log (bytes `start` to `end`): how many fetches announced or played music, and
    the server-side milliseconds of those the app's webhook lines time (the loadgen's latency adds
    the machine's queueing). Music-only fetches log at DEBUG, so they are counted from gunicorn's
    access log lines: every waitUrl fetch that no webhook line names."""
    seen: dict[str, list[float]] = {}
    with log_path.open("rb") as log:
        log.seek(start)
        text = log.read(None if end is None else end - start).decode("utf-8", "replace")
    for match in re.finditer(r"outcome=(\w+) status=\d+ ms=([\d.]+)", text):
        seen.setdefault(match[1], []).append(float(match[2]))
    mix: dict[str, dict[str, float]] = {
        outcome: {"count": len(ms), "median_ms": round(sorted(ms)[len(ms) // 2], 2)}
        for outcome, ms in seen.items()
    }
    unnamed = text.count('"POST /twilio/wait ') - sum(len(ms) for ms in seen.values())
    if unnamed > 0 and "music" not in mix:
        mix["music"] = {"count": unnamed}
    return mix


def procfile_web(app: str) -> str:
    """The Procfile's web command, serving `app` instead of the product's `app:app`."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip().replace(" app:app ", f" {app} ", 1)
    raise RuntimeError("the Procfile has no web line")


@contextmanager
def gunicorn(app: str, port: int, env: dict[str, str], log_path: Path, workers: int | None) -> Any:
    """`app` served exactly as the Procfile's web line serves the product (worker count and class,
    access log), on `port`; `workers` sets WEB_CONCURRENCY, None keeps the Procfile's default."""
    log = log_path.open("w")
    env = env | {"PORT": str(port), "PATH": f"{ROOT / '.venv/bin'}:{env.get('PATH', '')}"}
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    else:
        env.pop("WEB_CONCURRENCY", None)
    process = subprocess.Popen(
        ["bash", "-c", f"exec {procfile_web(app)}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def load(port: int, requests: list[Request], rate: float, duration: float) -> dict[str, Any]:
    """One open-loop run with the generator chosen by `--loadgen` (LOADGEN)."""
    if LOADGEN["native"]:
        return run_native("127.0.0.1", port, requests, rate, duration)
    return asyncio.run(run_open_loop("127.0.0.1", port, requests, rate, duration)).summary()


def phase(name: str, port: int, requests: list[Request], rate: float, duration: float) -> dict[str, Any]:
    row = {"phase": name, "target_rps": rate} | load(port, requests, rate, duration)
    generator = f"  loadgen {row['loadgen_cpu_s'] / duration:.0%} cpu" if "loadgen_cpu_s" in row else ""
    print(
        f"{name:<34} target {rate:>6.0f}/s  got {row['rps']:>7.1f}/s  p50 {row['p50_ms']:>7.2f} ms"
        f"  p99 {row['p99_ms']:>7.2f} ms  errors {row['errors']}{generator}",
        flush=True,
    )
    return row


def ceiling(name: str, port: int, requests: list[Request], duration: float, start: float) -> dict[str, Any]:
    """The highest open-loop rate served with no errors and p99 under 50 ms: rates rise by 25% until
    one is not held, then by 8% from the last one held. A rate not held is tried once more before
    the search moves on: in a phase of a few seconds, one pause of this machine (70-100 ms, bare
    Flask's phases have them too) is enough to miss the p99 bound, and would decide the ceiling."""
    best: dict[str, Any] = {"phase": f"{name} ceiling", "rps": 0.0}
    rate = start
    for step in (1.25, 1.08):
        while rate < 40000:
            row = held(name, port, requests, rate, duration)
            if row is None:
                break
            best = row | {"phase": f"{name} ceiling"}
            rate *= step
        rate = best.get("target_rps", start / step) * 1.08
    return best


def held(
    name: str, port: int, requests: list[Request], rate: float, duration: float
) -> dict[str, Any] | None:
    """The phase at `rate` if one of two tries meets the bound, else None."""
    for attempt in ("", " (again)"):
        row = phase(f"{name} at {rate:.0f}/s{attempt}", port, requests, rate, duration)
        if not (row["errors"] or row["p99_ms"] >= 50 or row["rps"] < 0.95 * rate):
            return row
    return None


BARE_REQUESTS = [Request("/twiml", b"CallSid=CA1", ())]
SATURATING = 8  # requests in flight for the throughput at saturation: the 2 workers always have work
TURNS = 3  # bare Flask and the waitUrl take turns this many times


def throughput(
    name: str, bare: tuple[int, list[Request]], app: tuple[int, list[Request]], duration: float
) -> dict[str, Any] | None:
    """Each endpoint's throughput at saturation (a closed loop, SATURATING requests in flight),
    bare Flask and the waitUrl in turns, TURNS times, so a drift of the machine's speed touches
    both: the medians and the waitUrl's as a share of bare's. Not bound by p99 as the ceilings
    are, it is the steadier ratio. None without `bench/loadgen.c`."""
    if not LOADGEN["native"]:
        return None
    turns: dict[str, list[float]] = {"bare": [], "waitUrl": []}
    errors = 0
    for _ in range(TURNS):
        for label, (port, requests) in (("bare", bare), ("waitUrl", app)):
            got = saturate_native("127.0.0.1", port, requests, SATURATING, duration)
            turns[label].append(got["rps"])
            errors += got["errors"]
    bare_rps, app_rps = statistics.median(turns["bare"]), statistics.median(turns["waitUrl"])
    share = round(app_rps / bare_rps, 3) if bare_rps else 0.0
    print(
        f"{name} at saturation: {app_rps:.0f}/s, bare Flask {bare_rps:.0f}/s, {share:.0%} of bare"
        f" (turns: waitUrl {', '.join(f'{x:.0f}' for x in turns['waitUrl'])};"
        f" bare {', '.join(f'{x:.0f}' for x in turns['bare'])}; errors {errors})",
        flush=True,
    )
    return {
        "phase": f"{name} at saturation",
        "rps": app_rps,
        "bare_rps": bare_rps,
        "share_of_bare": share,
        "turns": turns,
        "errors": errors,
    }


def servers_setup() -> tuple[Path, int, int, dict[str, str]]:
    """The results folder, a free port each for the app and bare Flask, and the app's environment
    (the bench database, the public URL its signatures are made for, its log at INFO)."""
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    app_port, bare_port = free_port(), free_port()
    env = os.environ | {
        "DATABASE_URL": database_url(),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{app_port}",
        "RUN_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "INFO",
    }
    return out, app_port, bare_port, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--callers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--operators", type=int, default=10)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--target", type=float, default=500.0, help="the waitUrl rate to hold")
    parser.add_argument(
        "--workers", type=int, default=None, help="WEB_CONCURRENCY for both apps (default: the Procfile's)"
    )
    parser.add_argument(
        "--loadgen",
        choices=["c", "python"],
        default="c" if native_available() else "python",
        help="c: bench/loadgen.c built with gcc (default when gcc exists); python: asyncio, ~1 core",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure each N this many times; reports each share's median"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    LOADGEN["native"] = args.loadgen == "c"

    fresh_database()
    out, app_port, bare_port, env = servers_setup()
    rows: list[dict[str, Any]] = []
    bare = BARE_REQUESTS
    with gunicorn("bench.bare_app:app", bare_port, os.environ | {}, out / "bare.log", args.workers):
        phase("warm-up bare", bare_port, bare, 100, 2)
        for n in args.callers:
            shares: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                got = measure_callers(n, args, env, app_port, (bare_port, bare), out / f"app-{n}.log")
                for row in got:
                    if "share_of_bare" in row:
                        shares.setdefault(row["phase"], []).append(row["share_of_bare"])
                rows += got
            if args.rounds > 1:
                rows += median_shares(shares)
    if args.json:
        print(json.dumps(rows, indent=2))


def median_shares(shares: dict[str, list[float]]) -> list[dict[str, Any]]:
    """One row per ceiling measured in several rounds: its shares of bare Flask and their median."""
    rows = []
    for phase_name, values in shares.items():
        middle = round(statistics.median(values), 3)
        rows.append(
            {"phase": f"{phase_name}, median of {len(values)}", "shares": values, "share_of_bare": middle}
        )
        listed = ", ".join(f"{value:.0%}" for value in values)
        print(f"{phase_name}: {middle:.0%} of bare, the median of {listed}", flush=True)
    return rows


def measure_callers(
    n: int,
    args: argparse.Namespace,
    env: dict[str, str],
    app_port: int,
    bare: tuple[int, list[Request]],
    log_path: Path,
) -> list[dict[str, Any]]:
    """The phases for `n` waiting callers. Bare Flask's ceiling is measured again just before the
    waitUrl's, and each waitUrl ceiling is reported as a share of it: this machine's speed drifts
    within minutes, so only ceilings measured close together make a fair ratio."""
    rows = []
    sids = seed(n, args.operators)
    with gunicorn("app:app", app_port, env, log_path, args.workers):
        requests = signed_requests(sids, app_port)
        phase(f"warm-up {n}", app_port, requests, 100, 3)
        twilio_rate = n / TWILIO_DOCUMENT_SECONDS
        rows.append(phase(f"{n} callers at Twilio's rate", app_port, requests, twilio_rate, args.duration))
        rows.append(
            phase(f"{n} callers at {args.target:.0f}/s", app_port, requests, args.target, args.duration)
        )
        bare_row = ceiling(f"bare Flask (before {n} callers)", *bare, args.duration / 2, 400)
        rows.append(bare_row)
        steady_row = ceiling(f"waitUrl, {n} callers", app_port, requests, args.duration / 2, 400)
        saturated = [throughput(f"waitUrl, {n} callers", bare, (app_port, requests), args.duration / 3)]
        steady = log_path.stat().st_size
        announce_on_every_fetch()
        name = f"waitUrl, {n} callers, all announcing"
        worst_row = ceiling(name, app_port, requests, args.duration / 2, 200)
        saturated.append(throughput(name, bare, (app_port, requests), args.duration / 3))
    for row in (steady_row, worst_row):
        row["share_of_bare"] = round(row["rps"] / bare_row["rps"], 3) if bare_row["rps"] else 0.0
        print(f"{row['phase']}: {row['rps']:.0f}/s, {row['share_of_bare']:.0%} of bare", flush=True)
        rows.append(row)
    rows += [row for row in saturated if row is not None]
    for label, start, end in (("", 0, steady), (", all announcing", steady, None)):
        mix = outcome_mix(log_path, start, end)
        rows.append({"phase": f"{n} callers{label}, server side", "outcomes": mix})
        print(f"{n} callers{label}, server side: {mix}", flush=True)
    return rows


if __name__ == "__main__":
    main()
