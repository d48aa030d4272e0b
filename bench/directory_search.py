"""Directory search latency: 5,000 colleagues, search as you type, on SQLite and PostgreSQL.

For each backend this
1. creates a fresh database (a temporary SQLite file; PostgreSQL `koe_bench_directory`), migrates
   it, and seeds one organisation with N directory entries (Swedish names with diacritics,
   departments, titles, keywords, numbers) plus a second organisation of the same size, so the
   organisation filter has work to do;
2. times `GET /api/v1/directory?q=...` through the whole Flask stack (log-in check, search,
   availability, JSON) with the test client, for a mix of what a receptionist types: first letters
   of a name, a whole name, a surname, a department, a keyword, a number, one letter, no match;
3. prints median, p95 and max per backend and per kind of query.

    .venv/bin/python -m bench.directory_search                      # SQLite and PostgreSQL
    .venv/bin/python -m bench.directory_search --entries 5000 --rounds 400 --backends sqlite
    .venv/bin/python -m bench.directory_search --pg postgresql://postgres@127.0.0.1:5432/postgres

Target: under 100 ms per search at 5,000 entries.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from queue_app import create_app
from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import DirectoryEntry, Organisation, User
from queue_app.services.config_import import search_text

FIRST = [
    "Åke",
    "Örjan",
    "Märta",
    "Ingrid",
    "Håkan",
    "Björn",
    "Göran",
    "Sören",
    "Åsa",
    "Maria",
    "Karl-Johan",
    "Anna",
    "Lena",
    "Per",
    "Ulla",
    "Jöns",
    "Tove",
    "Elin",
    "Oskar",
    "Ebba",
    "Agnes",
    "Nils",
    "Sven",
    "Stina",
    "Linnéa",
    "Björk",
    "Zoë",
    "José",
    "Ängla",
    "Östen",
    "Ylva",
    "Rut",
    "Bengt",
    "Gunnel",
    "Kjell",
]
LAST = [
    "Öberg",
    "Åkesson",
    "Ekström",
    "Wästberg",
    "Lind",
    "Ström",
    "Nordström",
    "Bäckström",
    "Sjögren",
    "Holmqvist",
    "Lindqvist",
    "Öhman",
    "Ågren",
    "Hägglund",
    "Fältskog",
    "Mårtensson",
    "Dahlén",
    "Söderberg",
    "Hedén",
    "Lundén",
    "Berglöf",
    "Nyström",
    "Jönsson",
    "Ärlig",
]
DEPARTMENTS = [
    "Ekonomi",
    "Ledning",
    "Lager",
    "Sälj",
    "Support",
    "IT",
    "Personal",
    "Inköp",
    "Marknad",
    "Juridik",
    "Kundtjänst",
    "Logistik",
]
TITLES = [
    "Chef",
    "Handläggare",
    "Säljare",
    "Ekonom",
    "Tekniker",
    "Koordinator",
    "Assistent",
    "Specialist",
    "Controller",
    "Jurist",
]
KEYWORDS = [
    "budget",
    "bokslut",
    "avtal",
    "faktura",
    "leverans",
    "reklamation",
    "lön",
    "rekrytering",
    "server",
    "nätverk",
    "offert",
]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_NAME = "koe_bench_directory"


def seed(entries: int, rng: random.Random) -> dict[str, Any]:
    with db.transaction() as session:
        orgs = [Organisation(name=f"Bench {i}", slug=f"bench-{i}") for i in (1, 2)]
        session.add_all(orgs)
        session.flush()
        user = User(organisation_id=orgs[0].id, email="bench@example.test", name="Bench", role="operator")
        session.add(user)
        session.flush()
        rows = []
        for org in orgs:
            for i in range(entries):
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                department, title = rng.choice(DEPARTMENTS), rng.choice(TITLES)
                keywords = ", ".join(rng.sample(KEYWORDS, 2))
                rows.append(
                    {
                        "organisation_id": org.id,
                        "name": name,
                        "department": department,
                        "title": title,
                        "keywords": keywords,
                        "phone_number": f"+468465{org.id}{i:05d}",
                        "mobile_number": f"+46701{org.id}{i:05d}",
                        "availability": rng.choice(["free", "free", "free", "busy", "away"]),
                        "search_text": search_text(name, department, title, keywords),
                    }
                )
        session.execute(DirectoryEntry.__table__.insert(), rows)
        return {"user_id": user.id, "org_id": orgs[0].id}


def queries(rng: random.Random, rounds: int) -> list[tuple[str, str]]:
    kinds = {
        "one letter": lambda: rng.choice("abcdeghijklmnoprstuvy"),
        "name prefix (3)": lambda: rng.choice(FIRST)[:3].lower(),
        "folded name": lambda: "ake" if rng.random() < 0.5 else "orjan",
        "first + last": lambda: f"{rng.choice(FIRST)} {rng.choice(LAST)[:4]}",
        "surname": lambda: rng.choice(LAST),
        "department": lambda: rng.choice(DEPARTMENTS).lower(),
        "keyword": lambda: rng.choice(KEYWORDS),
        "number": lambda: f"08-465 1{rng.randrange(0, 5000):05d}"[: rng.randrange(8, 15)],
        "no match": lambda: "xyzzy",
    }
    names = list(kinds)
    return [(kind, kinds[kind]()) for kind in (rng.choice(names) for _ in range(rounds))]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run_backend(label: str, url: str, entries: int, rounds: int, tmp: Path) -> dict[str, Any]:
    from queue_app import migrations

    clock = ManualClock(utc("2026-11-25 09:00"))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "DATABASE_URL": url,
            "CLOCK": clock,
            "AUDIO_DIR": str(tmp / "audio"),
            "TWILIO_EMULATOR": True,
            "RUN_WORKER_IN_PROCESS": False,
        }
    )
    rng = random.Random(7)
    with app.app_context():
        migrations.upgrade("head")
        ids = seed(entries, rng)
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(ids["user_id"])
        session["_fresh"] = True
    workload = queries(rng, rounds)
    for _kind, q in workload[:20]:  # warm up caches and the connection pool
        client.get("/api/v1/directory", query_string={"q": q})
    by_kind: dict[str, list[float]] = defaultdict(list)
    all_ms: list[float] = []
    for kind, q in workload:
        started = time.perf_counter()
        response = client.get("/api/v1/directory", query_string={"q": q})
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.get_data(as_text=True)
        by_kind[kind].append(elapsed)
        all_ms.append(elapsed)
    db.dispose()
    return {"label": label, "all": all_ms, "by_kind": by_kind}


def row(kind: str, values: list[float]) -> str:
    median, p95, top = statistics.median(values), pct(values, 0.95), max(values)
    return f"  {kind:<18} {len(values):>5} {median:>10.2f} {p95:>8.2f} {top:>8.2f}"


def report(result: dict[str, Any], entries: int) -> None:
    all_ms = result["all"]
    searches = f"{len(all_ms)} searches via GET /api/v1/directory"
    print(f"\n{result['label']}: {entries} entries (x2 organisations), {searches}")
    print(f"  {'query':<18} {'n':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for kind, values in sorted(result["by_kind"].items()):
        print(row(kind, values))
    print(row("ALL", all_ms))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg", default=None, help=f"admin URL of a PostgreSQL server (default {DEFAULT_PG})")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    import os

    admin = args.pg or os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{tmp / 'directory.sqlite3'}"
            else:
                plain = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
                with psycopg.connect(plain, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
                    conn.execute(f'CREATE DATABASE "{PG_NAME}"')
                url = make_url(admin).set(drivername="postgresql+psycopg", database=PG_NAME)
                url = url.render_as_string(hide_password=False)
            report(run_backend(backend, url, args.entries, args.rounds, tmp), args.entries)
            if backend != "sqlite":
                with psycopg.connect(plain, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
