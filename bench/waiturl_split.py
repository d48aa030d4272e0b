"""Where the machine's CPU goes per request: the waitUrl beside bare Flask, at the same fixed rate.

    .venv/bin/python bench/waiturl_split.py                        # 1,000 callers, 1,200/s, 10 s
    .venv/bin/python bench/waiturl_split.py --callers 10000 --rate 1500 --runs 3

`bench/waiturl.py`'s ceilings say how far each endpoint goes; this says why they differ. Both apps
run as the Procfile's web line serves them (gunicorn) on the seeded PostgreSQL database of
`bench/waiturl.py`, and take the same open-loop load from `bench/loadgen.c`, below either ceiling.
Around each run it reads the CPU used (user and kernel, from /proc) by the gunicorn master and
workers, by PostgreSQL's processes and by the load generator, and the whole machine's busy time
from /proc/stat (softirq included: the loopback's packets), each per request in µs. The two
endpoints alternate, `--runs` times each, so a drift of the machine's speed touches both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loadgen import Request  # noqa: E402
from waiturl import (  # noqa: E402
    BARE_REQUESTS,
    announce_on_every_fetch,
    fresh_database,
    gunicorn,
    load,
    seed,
    servers_setup,
    signed_requests,
)
from waiturl_cost import process_ticks  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
IDLE = ("idle", "iowait")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _processes() -> list[tuple[int, int, bytes]]:
    """(pid, parent pid, command line) of every process."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields is not None:
            out.append((int(entry.name), int(fields[1]), command))
    return out


def _machine() -> dict[str, int]:
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    values = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return dict(zip(names, map(int, values), strict=False))


def measure(master: int, port: int, requests: list[Request], rate: float, duration: float) -> dict[str, Any]:
    """One run: µs of CPU per request in each group, user and kernel apart."""
    processes = _processes()
    groups = {
        "gunicorn": [master] + [pid for pid, parent, _ in processes if parent == master],
        "postgres": [pid for pid, _, command in processes if command.startswith(b"postgres")],
    }
    before = {name: process_ticks(pids) for name, pids in groups.items()}
    machine_before = _machine()
    row = load(port, requests, rate, duration)
    machine_after = _machine()
    per_request = 1e6 / TICKS / max(row["requests"], 1)
    out: dict[str, Any] = {"rps": row["rps"], "p99_ms": row["p99_ms"], "errors": row["errors"]}
    for name, pids in groups.items():
        user, kernel = process_ticks(pids)
        out[f"{name}_user"] = round((user - before[name][0]) * per_request)
        out[f"{name}_kernel"] = round((kernel - before[name][1]) * per_request)
    out["loadgen"] = round(row.get("loadgen_cpu_s", 0.0) * TICKS * per_request)
    spent = {key: machine_after[key] - machine_before[key] for key in machine_after}
    out["softirq"] = round(spent["softirq"] * per_request)
    out["machine_busy"] = round(sum(v for k, v in spent.items() if k not in IDLE) * per_request)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1200.0, help="requests a second, below both ceilings")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--announcing", action="store_true", help="the queue's intervals at 1 s (waiturl.py's worst case)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    fresh_database()
    sids = seed(args.callers, 10)
    if args.announcing:
        announce_on_every_fetch()
    out, app_port, bare_port, env = servers_setup()
    bare = BARE_REQUESTS
    samples: dict[str, list[dict[str, Any]]] = {"bare": [], "waitUrl": []}
    with (
        gunicorn("bench.bare_app:app", bare_port, os.environ | {}, out / "bare.log", None) as bare_server,
        gunicorn("app:app", app_port, env, out / "split-app.log", None) as app_server,
    ):
        wait = signed_requests(sids, app_port)
        load(bare_port, bare, 200, 2)  # warm-up: imports, caches, connections
        load(app_port, wait, 200, 5)
        for _ in range(args.runs):
            samples["bare"].append(measure(bare_server.pid, bare_port, bare, args.rate, args.duration))
            samples["waitUrl"].append(measure(app_server.pid, app_port, wait, args.rate, args.duration))
    result = {name: _medians(runs) for name, runs in samples.items()}
    for name, row in result.items():
        print(f"{name:<8} " + "  ".join(f"{key} {value}" for key, value in row.items()), flush=True)
    share = result["bare"]["machine_busy"] / max(result["waitUrl"]["machine_busy"], 1)
    print(f"bare's machine CPU per request is {share:.0%} of the waitUrl's", flush=True)
    if args.json:
        print(
            json.dumps({"callers": args.callers, "rate": args.rate, **result, "cpu_share": round(share, 3)})
        )


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: round(statistics.median(run[key] for run in runs), 1) for key in runs[0]}


if __name__ == "__main__":
    main()
