"""Stress on PostgreSQL: a real server, processes posting signed webhooks, two workers, one killed.

Everything runs on this machine in real time: the app under werkzeug's threaded server on a free
port with its own fresh database; a tiny stand-in for Twilio's REST API (Calls update answers 200,
or 21220 for a caller who has hung up) that also tells the simulated callers where they were
redirected; three processes of callers, one thread per call, which post what Twilio would post
(the incoming call, the offer's TwiML, the operator's leg answering, the Dial's action, the final
status); and two worker processes running `run_forever`. The first worker is killed with SIGKILL
while calls are flowing. Afterwards:
- no double booking: no operator's offers overlap in time (from the Offer rows' intervals);
- no lost caller: every call has ended answered (completed) or abandoned, the ones caught in the
  kill included.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from ..conftest import DB_PREFIX, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="the stress test needs PostgreSQL")

ORGS = 2
OPERATORS_PER_ORG = 3
CALLER_PROCESSES = 3
CALLS_PER_PROCESS = 12
DEADLINE_SECONDS = 45


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_config(database_url: str, public: str, rest: str, tmp: str) -> dict[str, Any]:
    return {
        "SECRET_KEY": "stress",
        "DATABASE_URL": database_url,
        "AUDIO_DIR": str(Path(tmp) / "audio"),
        "PUBLIC_BASE_URL": public,
        "TWILIO_EMULATOR": False,
        "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "TWILIO_API_BASE": rest,
        "RUN_WORKER_IN_PROCESS": False,
        "LOG_LEVEL": "WARNING",
    }


# --- processes (module-level functions: they are started with spawn) -----------------------------


def serve_app(config: dict[str, Any], port: int) -> None:
    from werkzeug.serving import make_server

    from queue_app import create_app

    make_server("127.0.0.1", port, create_app(config), threaded=True).serve_forever()


def run_worker(config: dict[str, Any]) -> None:
    from queue_app import create_app, worker

    worker.run_forever(create_app(config), interval=0.3)


def run_callers(public: str, rest: str, numbers: list[str], seed: int) -> None:
    rng = random.Random(seed)
    threads = []
    for i in range(CALLS_PER_PROCESS):
        sid = f"CA{seed:02d}{i:030d}"
        caller = Caller(public, rest, sid, numbers[i % len(numbers)], random.Random(rng.random()))
        thread = threading.Thread(target=caller.run)
        thread.start()
        threads.append(thread)
        time.sleep(rng.uniform(0.05, 0.3))
    for thread in threads:
        thread.join(DEADLINE_SECONDS)


class Caller:
    """One caller and the Twilio behaviour around their call, in real time."""

    def __init__(self, public: str, rest: str, sid: str, number: str, rng: random.Random) -> None:
        self.public, self.rest, self.sid, self.number, self.rng = public, rest, sid, number, rng
        self.sequence = 0
        self.seen = 0

    def post(self, path: str, **form: str) -> str:
        params = {"CallSid": self.sid, "AccountSid": TEST_ACCOUNT_SID, "From": "+46701234567"} | form
        url = self.public + path
        signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(url, params)
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(params).encode(), headers={"X-Twilio-Signature": signature}
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            return str(response.read().decode())

    def status(self, call_status: str) -> None:
        self.sequence += 1
        self.post("/twilio/status", CallStatus=call_status, SequenceNumber=str(self.sequence))

    def redirects(self) -> list[str]:
        with urllib.request.urlopen(f"{self.rest}/_redirects/{self.sid}", timeout=10) as response:
            return list(json.loads(response.read()))

    def run(self) -> None:
        self.post("/twilio/voice", To=self.number, CallStatus="ringing", Direction="inbound")
        patience = self.rng.uniform(1.0, 6.0) if self.rng.random() < 0.15 else None
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE_SECONDS:
            urls = self.redirects()
            if len(urls) > self.seen:
                url = urls[self.seen]
                self.seen = len(urls)
                if self.take_offer(url):
                    return
            elif patience is not None and time.monotonic() - started > patience:
                urllib.request.urlopen(f"{self.rest}/_hang_up/{self.sid}", data=b"", timeout=10).close()
                self.status("completed")  # gave up waiting: abandoned
                return
            else:
                time.sleep(0.05)

    def take_offer(self, url: str) -> bool:
        path = urllib.parse.urlsplit(url).path
        twiml = self.post(path, CallStatus="in-progress")
        operators = re.findall(r"operator=(\d+)", twiml)
        if not operators:  # the offer was over before the caller got there: back to the queue
            self.post("/twilio/enqueue", CallStatus="in-progress")
            return False
        if self.rng.random() < 0.2:  # nobody answered in time
            self.post(f"{path}/result", DialCallStatus="no-answer", CallStatus="in-progress")
            self.post("/twilio/enqueue", CallStatus="in-progress")
            return False
        who = self.rng.choice(sorted(set(operators)))
        self.post(f"{path}/leg?operator={who}", CallStatus="in-progress", To=f"client:op_{who}")
        time.sleep(self.rng.uniform(0.1, 0.5))  # the conversation
        self.post(f"{path}/result", DialCallStatus="completed", CallStatus="in-progress", DialBridged="true")
        self.status("completed")
        return True


# --- the REST stand-in ---------------------------------------------------------------------------


class RestStub(BaseHTTPRequestHandler):
    redirects: ClassVar[dict[str, list[str]]] = {}
    gone: ClassVar[set[str]] = set()
    lock = threading.Lock()

    def log_message(self, *_args: Any) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        sid = self.path.rsplit("/", 1)[-1]
        with self.lock:
            self._json(200, list(self.redirects.get(sid, [])))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if self.path.startswith("/_hang_up/"):
            with self.lock:
                self.gone.add(self.path.rsplit("/", 1)[-1])
            self._json(200, {})
            return
        match = re.search(r"/Calls/(CA\w+)\.json$", self.path)
        if not match:
            self._json(404, {"code": 20404, "message": "not found", "status": 404})
            return
        sid = match.group(1)
        with self.lock:
            if sid in self.gone:
                self._json(400, {"code": 21220, "message": "Call is not in-progress.", "status": 400})
                return
            self.redirects.setdefault(sid, []).append(form.get("Url", [""])[0])
        self._json(200, {"sid": sid, "status": "in-progress", "account_sid": TEST_ACCOUNT_SID})


@pytest.fixture
def fresh_database() -> Iterator[str]:
    name = f"{DB_PREFIX}_stress_{os.getpid()}".lower()
    admin = make_url(TEST_DATABASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(TEST_DATABASE_URL).set(drivername="postgresql+psycopg", database=name)
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(config: dict[str, Any]) -> list[str]:
    from queue_app import create_app, migrations
    from queue_app.clock import SystemClock
    from queue_app.extensions import db
    from queue_app.services import operators

    from ..factories import make_membership, make_number, make_org, make_queue, make_user

    app = create_app(config)
    numbers = []
    with app.app_context():
        migrations.upgrade("head")
        now = SystemClock().now()
        for o in range(ORGS):
            with db.transaction() as session:
                org = make_org(session)
                queue = make_queue(
                    session,
                    org,
                    strategy=["fair", "parallel"][o % 2],
                    parallel_count=2,
                    ring_timeout_seconds=5,
                    wrap_up_seconds=0,
                    max_missed_offers=0,
                )
                number = make_number(session, org, queue).number
                users = [make_user(session, org) for _ in range(OPERATORS_PER_ORG)]
                for user in users:
                    make_membership(session, queue, user)
                    user.client_identity = f"op_{user.id}"
                ids, qid = [u.id for u in users], queue.id
            for user_id in ids:
                operators.log_in(user_id, [qid], now)
            numbers.append(number)
    db.dispose()
    return numbers


def test_it_never_double_books_nor_loses_a_caller_when_a_worker_is_killed(
    fresh_database: str, tmp_path: Path
) -> None:
    rest_server = ThreadingHTTPServer(("127.0.0.1", 0), RestStub)
    threading.Thread(target=rest_server.serve_forever, daemon=True).start()
    rest = f"http://127.0.0.1:{rest_server.server_address[1]}"
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    config = app_config(fresh_database, public, rest, str(tmp_path))
    numbers = seed(config)

    spawn = multiprocessing.get_context("spawn")
    server = spawn.Process(target=serve_app, args=(config, port), daemon=True)
    workers = [spawn.Process(target=run_worker, args=(config,), daemon=True) for _ in range(2)]
    processes = [server, *workers]
    for process in processes:
        process.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # the server is up when it answers
            try:
                urllib.request.urlopen(f"{public}/healthz", timeout=1).close()
                break
            except Exception:
                assert time.monotonic() < deadline, "the app server did not start"
                time.sleep(0.1)
        callers = [
            spawn.Process(target=run_callers, args=(public, rest, numbers, seed))
            for seed in range(CALLER_PROCESSES)
        ]
        for process in callers:
            process.start()
        time.sleep(2.0)  # calls are flowing: kill the first worker wherever it is
        os.kill(workers[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
        for process in callers:
            process.join(DEADLINE_SECONDS + 10)
            assert process.exitcode == 0
        check(fresh_database)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join(5)
        rest_server.shutdown()
        rest_server.server_close()


def check(database_url: str) -> None:
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        calls = conn.execute("SELECT call_sid, state FROM calls ORDER BY id").fetchall()
        offers = conn.execute(
            "SELECT user_id, created_at, ended_at, state FROM offers ORDER BY user_id, created_at, id"
        ).fetchall()
    assert len(calls) == CALLER_PROCESSES * CALLS_PER_PROCESS
    states = {state for _sid, state in calls}
    assert states <= {"completed", "abandoned"}, [c for c in calls if c[1] not in ("completed", "abandoned")]
    assert "completed" in states
    # Each use case reads the clock once, at its start: a webhook that frees an operator stamps the
    # offer's end when it begins, and a dispatcher that began a moment earlier but claimed the
    # operator after that commit stamps the next offer a few milliseconds "before" it. A real double
    # booking overlaps by a ring: seconds.
    skew = timedelta(milliseconds=250)
    clashes = []
    for (user_a, start_a, end_a, _s), (user_b, start_b, _e, _t) in itertools.pairwise(offers):
        if user_a == user_b and (end_a is None or end_a - skew > start_b):
            clashes.append((user_a, start_a, end_a, start_b))
    assert clashes == []
    assert all(end is not None for _u, _s, end, _t in offers), "an offer is still ringing"
