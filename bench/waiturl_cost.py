"""What one waitUrl fetch costs, in CPU: the app's own and PostgreSQL's, per kind of fetch.

    .venv/bin/python bench/waiturl_cost.py                  # 1,000 callers, 3 x 3,000 fetches each
    .venv/bin/python bench/waiturl_cost.py --callers 10000 --fetches 5000

`bench/waiturl.py` measures ceilings through gunicorn, which are what counts but move by a quarter
as this machine's speed drifts. This one calls the lane (`queue_app.web.wait_lane`) in-process, one
fetch after another, on the same seeded PostgreSQL database, and reads two CPU clocks around each
run: this process's (`time.process_time`: the lane, psycopg, planning, TwiML) and the PostgreSQL
backends' serving this database (utime + stime from /proc). It reports microseconds per fetch for:
- music: every caller has heard what was due, so the fetch reads and plays music;
- announcing: the queue's intervals at 1 s, so each fetch says the periodic message, the position
  and the expected wait, and writes what was said.
Each kind runs `--runs` times; the median is printed beside the spread. No gunicorn, no HTTP: what
it shows is the part of a fetch the app can change.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from waiturl import database_url, fresh_database, seed  # noqa: E402

from queue_app.config import EMULATOR_AUTH_TOKEN  # noqa: E402

BASE = "http://127.0.0.1:5000"
TICKS = os.sysconf("SC_CLK_TCK")
ROUND_SECONDS = 1.5  # the app's clock moves this far each time every caller has fetched once


class RoundClock:
    """The real time, moved ROUND_SECONDS on at the end of each round of fetches: with the queue's
    intervals at 1 s every fetch then finds its announcements due, however fast the fetches come."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def environs(sids: list[str]) -> list[dict[str, Any]]:
    """One signed waitUrl WSGI environ per caller (its body re-read from a fresh stream per call)."""
    validator = RequestValidator(EMULATOR_AUTH_TOKEN)
    out = []
    for i, sid in enumerate(sids):
        params = {"CallSid": sid, "CallStatus": "in-progress", "From": f"+4670{i:07d}", "QueueTime": "30"}
        body = "&".join(f"{k}={v}".replace("+", "%2B") for k, v in params.items()).encode()
        signature = validator.compute_signature(BASE + "/twilio/wait", params)
        out.append(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/twilio/wait",
                "QUERY_STRING": "",
                "CONTENT_TYPE": "application/x-www-form-urlencoded",
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_X_TWILIO_SIGNATURE": signature,
                "wsgi.url_scheme": "http",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "5000",
                "body": body,
            }
        )
    return out


def backend_ticks() -> tuple[int, int]:
    """CPU ticks used so far by the PostgreSQL backends connected to the bench database."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    return process_ticks(pids)


def process_ticks(pids: list[int]) -> tuple[int, int]:
    """(user, kernel) CPU ticks used so far by `pids` (fields 14 and 15 of /proc/PID/stat)."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def run(app: Any, requests: list[dict[str, Any]], fetches: int) -> dict[str, Any]:
    """CPU µs per fetch (the app's and PostgreSQL's, each in user and kernel mode) and the answers."""
    clock = app.extensions["clock"]
    answers: dict[str, int] = {}

    def start_response(status: str, _headers: Any) -> None:
        answers[status] = answers.get(status, 0) + 1

    pg_before, app_before = backend_ticks(), os.times()
    for i in range(fetches):
        if i and i % len(requests) == 0:
            clock.offset += timedelta(seconds=ROUND_SECONDS)
        environ = dict(requests[i % len(requests)])
        environ["wsgi.input"] = io.BytesIO(environ.pop("body"))
        if b"<Say" in b"".join(app(environ, start_response)):
            answers["said something"] = answers.get("said something", 0) + 1
    writes = app.extensions.get("koe.wait_writes")
    if writes is not None:
        writes.flush()  # what the run handed over is part of its cost
    app_after, pg_after = os.times(), backend_ticks()
    per_fetch = 1e6 / fetches
    return {
        "app_user": (app_after.user - app_before.user) * per_fetch,
        "app_kernel": (app_after.system - app_before.system) * per_fetch,
        "pg_user": (pg_after[0] - pg_before[0]) / TICKS * per_fetch,
        "pg_kernel": (pg_after[1] - pg_before[1]) / TICKS * per_fetch,
        "answers": answers,
    }


def set_intervals(seconds: int) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(
            "UPDATE queues SET announce_interval_seconds = %(s)s, periodic_interval_seconds = %(s)s",
            {"s": seconds},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--fetches", type=int, default=3000, help="fetches per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    fresh_database()
    sids = seed(args.callers, 10)
    os.environ |= {
        "DATABASE_URL": database_url(),
        "PUBLIC_BASE_URL": BASE,
        "RUN_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
    }
    from app import app

    app.extensions["clock"] = RoundClock()
    requests = environs(sids)
    results: dict[str, Any] = {}
    run(app, requests, len(requests))  # warm-up: everyone hears what is due, caches fill
    for kind, interval in (("music", 3600), ("announcing", 1)):
        set_intervals(interval)
        run(app, requests, 200)
        samples = [run(app, requests, args.fetches) for _ in range(args.runs)]
        results[kind] = row = {"answers": samples[-1]["answers"]}
        for part in ("app_user", "app_kernel", "pg_user", "pg_kernel"):
            values = [sample[part] for sample in samples]
            row[part] = round(statistics.median(values))
            row[part + "_range"] = [round(min(values)), round(max(values))]
        print(
            f"{kind:<11}"
            + "".join(
                f"  {part} {row[part]:>4} ({row[part + '_range'][0]}–{row[part + '_range'][1]})"
                for part in ("app_user", "app_kernel", "pg_user", "pg_kernel")
            )
            + f"  µs  {row['answers']}",
            flush=True,
        )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
