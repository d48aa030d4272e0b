"""What one waitUrl fetch costs the app, in instructions: a figure this machine's drift cannot move.

    .venv/bin/python bench/waiturl_instructions.py                  # 1,000 callers, music and announcing
    .venv/bin/python bench/waiturl_instructions.py --kinds announcing --fetches 300

The CPU benches (`waiturl_cost.py`, `waiturl_split.py`) and the ceilings (`waiturl.py`) move by a
quarter within the hour on this machine, more than most changes to the fetch are worth. Here
valgrind's callgrind counts the instructions the app's process runs (Python, psycopg, libpq; not the
kernel, not PostgreSQL), which repeat for the same code and inputs whatever else the machine does.
Each kind runs the lane in-process as `waiturl_cost.py` does (its signed requests, its clock), under
callgrind twice: `--fetches` fetches and three times as many. The difference, divided by the extra
fetches, is the cost of one fetch; start-up, imports and the warm-up cancel out. The log runs at
INFO (`--log-level`) into /dev/null, so an announcing fetch's log line is counted, its write(2) not.
- music: every caller has heard what was due, so the fetch reads and plays music;
- announcing: the queue's intervals at 1 s, so each fetch says the periodic message, the position
  and the expected wait, and hands over a write of what was said (flushed at the end of the run).
Needs valgrind (Debian's package). Each kind takes a few minutes: callgrind runs ~50x slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from waiturl import database_url, fresh_database, seed  # noqa: E402
from waiturl_cost import BASE, environs, run, set_intervals  # noqa: E402

INTERVALS = {"music": 3600, "announcing": 1}
SAME_HASHES = os.environ | {"PYTHONHASHSEED": "0"}  # the same dict and set layouts in every child


class SteppedClock:
    """`waiturl_cost.RoundClock` without the real time: it moves only when `run` moves it on, so
    the caches' reloads (every LINE_TTL, QUEUE_FACTS_TTL of this clock) come after the same
    fetches in every child, however slowly callgrind runs it."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self.start + self.offset


def fetch_in_process(kind: str, fetches: int, sids: list[str], log_level: str) -> None:
    """The child: warm up on every caller once, then `fetches` fetches of `kind`."""
    os.environ |= {
        "DATABASE_URL": database_url(),
        "PUBLIC_BASE_URL": BASE,
        "RUN_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": log_level,
    }
    import logging

    from app import app
    from queue_app.services import calls
    from queue_app.services.wait_writes import BATCH, WaitWrites

    # Full batches only: a timer's batches would depend on how fast callgrind runs.
    app.extensions["koe.wait_writes"] = WaitWrites(calls.write_heard, batch=BATCH, every=3600)
    for handler in logging.getLogger().handlers:
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    clock = SteppedClock()
    app.extensions["clock"] = clock
    requests = environs(sids)
    set_intervals(INTERVALS[kind])
    run(app, requests, len(requests))
    clock.offset += timedelta(seconds=2)  # what the warm-up said is due again
    run(app, requests, fetches)


def child(kind: str, fetches: int, sids_file: Path, log_level: str) -> list[str]:
    return [sys.executable, __file__, "--child", kind, str(fetches), str(sids_file), log_level]


def instructions(kind: str, fetches: int, ids: Path, log: str) -> int:
    """Instructions callgrind counted for a whole child process."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *child(kind, fetches, ids, log)],
            check=True,
            cwd=ROOT,
            env=SAME_HASHES,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for line in out.read_text().splitlines():
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, fetches, sids_file, log_level = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
        fetch_in_process(kind, fetches, json.loads(sids_file.read_text()), log_level)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--fetches", type=int, default=500, help="the shorter run; the longer has 3x")
    parser.add_argument("--kinds", nargs="+", choices=sorted(INTERVALS), default=["music", "announcing"])
    parser.add_argument(
        "--log-level", default="INFO", help="the app's LOG_LEVEL (WARNING leaves out the webhook lines)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    fresh_database()
    sids = seed(args.callers, 10)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        sids_file = Path(folder) / "sids.json"
        sids_file.write_text(json.dumps(sids))
        # Compiles what changed since the last run: compiling in only one of the two would count.
        warm = child(args.kinds[0], 1, sids_file, args.log_level)
        subprocess.run(warm, check=True, cwd=ROOT, capture_output=True)
        for kind in args.kinds:
            short = instructions(kind, args.fetches, sids_file, args.log_level)
            long = instructions(kind, 3 * args.fetches, sids_file, args.log_level)
            results[kind] = round((long - short) / (2 * args.fetches))
            print(f"{kind:<11} {results[kind]:>10,} instructions per fetch", flush=True)
    if args.json:
        print(json.dumps({"callers": args.callers, "log_level": args.log_level, **results}))


if __name__ == "__main__":
    main()
