"""Stress on PostgreSQL: a real server, processes posting signed webhooks, two workers, one killed.

Everything runs on this machine in real time: the app under werkzeug's threaded server on a free
port with its own fresh database; a tiny stand-in for Twilio (`Twilio` behind `RestStub`); three
processes of callers, one thread per call; and two worker processes running `run_forever`. The
first worker is killed with SIGKILL while calls are flowing.

The offer protocol simulated is the one of web/offers.py: the caller waits in a Twilio queue of
their own while each offered operator rings on a leg of their own.
- A caller posts `/twilio/voice`, gets `<Enqueue>` into `koe-caller-<call id>` (after the welcome,
  if any), tells the stand-in which queue they are in, and fetches the waitUrl `/twilio/wait` about
  once a second while they wait (the first fetch is what lets an answering operator take them). A
  caller with little patience who is not taken in time hangs up: the Enqueue action says `hangup`
  and their status callback `completed` (abandoned).
- The worker creates each operator's leg with the REST API (`POST /Calls.json`, Url `.../answer`,
  StatusCallback `.../leg`), hangs up legs whose offer is over (`POST /Calls/<leg>.json`
  Status=completed) and deletes the Twilio queues of ended calls (`DELETE /Queues/<QU>.json`).
- The stand-in runs each leg (the operator's browser) in a thread of the test process: it rings
  (status callback `ringing`), then does not answer (`no-answer`), is hung up by the worker while
  it rings (`canceled`), or answers: it posts the Url while the `answered` status callback (with
  `in-progress`) goes out at the same moment. The answer is `<Hangup/>` (another operator was
  first, or the offer is over), a `<Pause/><Redirect>` back to `/answer` (HOLD: the caller is not
  in their queue yet; followed a bounded number of times) or `<Dial><Queue>` of the caller. The
  Dial takes the caller out of their queue, unless they hung up just before: then its action
  `/done` says `no-answer` (and may be told to try `/answer` again). Otherwise the Queue url
  `/bridged` is posted on the caller's side, they talk a moment, and the end is reported as Twilio
  does, either side hanging up first: the leg's Dial action `/done` and its status callback
  `completed`, the caller's Enqueue action (`bridged`) and their status callback `completed`.
Caller processes wait until the stand-in says their call is over; the test waits until every leg
has ended. Afterwards:
- no double booking: no operator's offers overlap in time (from the Offer rows' intervals), no
  offer reaches an operator while they talk, and no operator's device ever talked on two legs at once;
- no lost caller: every call has ended answered (completed) or abandoned, the ones caught in the
  kill included, and every offer has ended;
- the stand-in saw nothing wrong: no caller taken twice, no talking operator hung up, no caller
  redirected (the simulation would not follow), no queue deleted under a waiting caller, no leg
  held for ever; and every caller's Twilio queue was deleted once the call had ended.
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
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
CALLER_NUMBER = "+46701234567"
FINAL = ("completed", "abandoned")  # what every call must have become
# A leg told to wait (HOLD, or its Dial found nobody yet) looks again this often, this many times.
HOLD_SECONDS = 0.2
MAX_HOLDS = 50
# How long the test waits for the last legs to end, then for the worker to delete the last queues.
LEGS_DEADLINE_SECONDS = 15
QUEUES_DEADLINE_SECONDS = 10


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


def signed_post(url: str, **params: str) -> str:
    """A webhook as Twilio posts it: form-encoded, signed over the full URL and the parameters."""
    params = {"AccountSid": TEST_ACCOUNT_SID} | params
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(url, params)
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(params).encode(), headers={"X-Twilio-Signature": signature}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return str(response.read().decode())


def stub_call(url: str, form: dict[str, str] | None = None) -> Any:
    """The stand-in's own side door (`/_...`): GET without a form, POST with one."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    with urllib.request.urlopen(url, data=data, timeout=10) as response:
        return json.loads(response.read())


def verbs(document: str) -> list[ET.Element]:
    root = ET.fromstring(document)
    assert root.tag == "Response", document
    return list(root)


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
    threads, errors = [], []
    for i in range(CALLS_PER_PROCESS):
        sid = f"CA{seed:02d}{i:030d}"
        caller = Caller(public, rest, sid, numbers[i % len(numbers)], random.Random(rng.random()), errors)
        thread = threading.Thread(target=caller.run)
        thread.start()
        threads.append(thread)
        time.sleep(rng.uniform(0.05, 0.3))
    for thread in threads:
        thread.join(DEADLINE_SECONDS)
    if errors or any(thread.is_alive() for thread in threads):
        print("\n".join(errors) or "a caller thread did not end", file=sys.stderr)
        raise SystemExit(1)


class Caller:
    """One caller and the Twilio behaviour around their call while they wait, in real time. The
    operator's leg that takes them (`run_leg`) reports the rest of their call."""

    def __init__(
        self, public: str, rest: str, sid: str, number: str, rng: random.Random, errors: list[str]
    ) -> None:
        self.public, self.rest, self.sid, self.number, self.rng = public, rest, sid, number, rng
        self.errors = errors
        self.queue_sid = ""
        self.joined = 0.0

    def post(self, url: str, **form: str) -> str:
        url = url if "://" in url else self.public + url
        return signed_post(url, CallSid=self.sid, From=CALLER_NUMBER, To=self.number, **form)

    def state(self) -> str:
        return str(stub_call(f"{self.rest}/_state/{self.sid}")["state"])

    def run(self) -> None:
        try:
            self.call()
        except Exception:
            self.errors.append(f"caller {self.sid}:\n{traceback.format_exc()}")

    def call(self) -> None:
        started = time.monotonic()
        document = self.post("/twilio/voice", CallStatus="ringing", Direction="inbound")
        said = [v for v in verbs(document) if v.tag in ("Say", "Play")]
        enqueue = next((v for v in verbs(document) if v.tag == "Enqueue"), None)
        assert enqueue is not None and enqueue.text, f"{self.sid} was not enqueued: {document}"
        name, wait_url, action = enqueue.text.strip(), enqueue.get("waitUrl"), enqueue.get("action")
        assert wait_url and action, document
        time.sleep(self.rng.uniform(0.3, 1.0) if said else self.rng.uniform(0.02, 0.1))  # the welcome
        self.queue_sid = stub_call(f"{self.rest}/_queue/{name}", {"CallSid": self.sid, "To": self.number})[
            "queue_sid"
        ]
        self.joined = time.monotonic()
        patience = self.rng.uniform(1.0, 6.0) if self.rng.random() < 0.15 else None
        next_fetch = 0.0  # Twilio fetches the waitUrl as the caller enters the queue
        state = "waiting"
        while time.monotonic() - started < DEADLINE_SECONDS:
            state = self.state()
            if state == "finished":
                return
            if state == "waiting":
                if patience is not None and time.monotonic() - started > patience:
                    if self.give_up(action):
                        return
                elif time.monotonic() >= next_fetch:
                    self.fetch_wait(wait_url)
                    next_fetch = time.monotonic() + 1.0
            time.sleep(0.1)
        raise AssertionError(f"{self.sid}: the call was not over within {DEADLINE_SECONDS} s ({state})")

    def queue_time(self) -> str:
        return str(int(time.monotonic() - self.joined))

    def fetch_wait(self, wait_url: str) -> None:
        document = self.post(
            wait_url,
            CallStatus="in-progress",
            QueueSid=self.queue_sid,
            QueueTime=self.queue_time(),
            QueuePosition="1",
            CurrentQueueSize="1",
            AvgQueueTime="0",
        )
        leaves = [v.tag for v in verbs(document) if v.tag in ("Leave", "Hangup", "Redirect")]
        # Taken meanwhile (Twilio would not have fetched it): the answer no longer matters.
        assert not leaves or self.state() != "waiting", f"{self.sid}: the waitUrl said {leaves}: {document}"

    def give_up(self, action: str) -> bool:
        """Hang up while waiting, unless an operator's Dial took the caller a moment ago."""
        gone = stub_call(f"{self.rest}/_give_up/{self.sid}", {})
        if not gone["gone"]:
            return False
        self.post(
            action,
            CallStatus="completed",
            QueueResult="hangup",
            QueueSid=self.queue_sid,
            QueueTime=self.queue_time(),
        )
        self.post("/twilio/status", CallStatus="completed", SequenceNumber=str(gone["sequence"]))
        return True


# --- the Twilio stand-in -------------------------------------------------------------------------


@dataclass
class Party:
    """A caller as Twilio sees them: in their queue, taken by an operator's Dial, or gone."""

    sid: str
    to: str
    queue: str
    queue_sid: str
    joined: float
    state: str = "waiting"  # waiting | taken | finished | gone
    sequence: int = 0  # of their status callbacks

    def next_sequence(self) -> str:
        self.sequence += 1
        return str(self.sequence)


@dataclass
class Leg:
    """An operator's leg created by the worker."""

    sid: str
    to: str
    from_: str
    url: str
    status_callback: str
    events: frozenset[str]
    hung_up: threading.Event = field(default_factory=threading.Event)
    talking: bool = False
    over: bool = False


class Twilio:
    """What the stand-in knows, shared by its request handlers and the legs' threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parties: dict[str, Party] = {}  # by call sid
        self.queues: dict[str, str] = {}  # queue name -> call sid
        self.queue_sids: dict[str, str] = {}  # queue sid -> call sid
        self.deleted: list[str] = []
        self.legs: dict[str, Leg] = {}
        self.hung_up: list[str] = []
        self.redirects: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.seed = itertools.count()

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def live_legs(self) -> list[str]:
        with self.lock:
            return [leg.sid for leg in self.legs.values() if not leg.over]

    # --- the REST API (the worker's side) --------------------------------------------------------

    def create_call(self, form: dict[str, str], events: list[str]) -> tuple[int, dict[str, Any]]:
        missing = [name for name in ("To", "From", "Url") if not form.get(name)]
        if missing:
            return 400, {"code": 21205, "message": f"missing {missing}", "status": 400}
        wanted = frozenset(e for value in events for e in value.replace(",", " ").split())
        leg = Leg(
            sid=f"CA{uuid.uuid4().hex}",
            to=form["To"],
            from_=form["From"],
            url=form["Url"],
            status_callback=form.get("StatusCallback", ""),
            events=wanted | {"completed"},
        )
        with self.lock:
            self.legs[leg.sid] = leg
            rng = random.Random(next(self.seed))
        threading.Thread(target=run_leg, args=(self, leg, rng), daemon=True).start()
        return 201, call_json(leg.sid, leg.to, leg.from_, "queued")

    def update_call(self, sid: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            leg, party = self.legs.get(sid), self.parties.get(sid)
            if leg is not None and form.get("Status") in ("completed", "canceled"):
                self.hung_up.append(sid)
                if leg.talking:
                    self.problems.append(f"the worker hung up {leg.to}'s leg {sid} while they talked")
                leg.hung_up.set()
                return 200, call_json(sid, leg.to, leg.from_, "completed")
            if party is not None:  # a caller moved (Url) or hung up by the REST API
                self.redirects.append((sid, json.dumps(form)))
                if party.state == "gone":
                    return 400, {"code": 21220, "message": "Call is not in-progress.", "status": 400}
                return 200, call_json(sid, party.to, CALLER_NUMBER, "in-progress")
            if leg is not None:
                self.problems.append(f"the worker updated {leg.to}'s leg {sid} with {form}")
                return 200, call_json(sid, leg.to, leg.from_, "in-progress")
        return 404, {"code": 20404, "message": f"no call {sid} to update with {form}", "status": 404}

    def delete_queue(self, queue_sid: str) -> int:
        with self.lock:
            sid = self.queue_sids.get(queue_sid)
            if sid is None or queue_sid in self.deleted:
                return 404
            if self.parties[sid].state == "waiting":
                self.problems.append(f"the queue {queue_sid} was deleted while {sid} waited in it")
            self.deleted.append(queue_sid)
            return 204

    # --- the callers' side door ------------------------------------------------------------------

    def enter_queue(self, name: str, sid: str, to: str) -> dict[str, Any]:
        with self.lock:
            queue_sid = f"QU{uuid.uuid4().hex}"
            self.parties[sid] = Party(sid, to, name, queue_sid, time.monotonic())
            self.queues[name] = sid
            self.queue_sids[queue_sid] = sid
            return {"queue_sid": queue_sid}

    def state(self, sid: str) -> dict[str, Any]:
        with self.lock:
            party = self.parties.get(sid)
            return {"state": party.state if party else "unknown"}

    def give_up(self, sid: str) -> dict[str, Any]:
        with self.lock:
            party = self.parties[sid]
            if party.state != "waiting":
                return {"gone": False}
            party.state = "gone"
            return {"gone": True, "sequence": party.next_sequence()}

    # --- a Dial of a caller's queue ----------------------------------------------------------------

    def take(self, name: str, leg: Leg) -> Party | None:
        """The Dial's `<Queue>` dequeues the caller, if they are still there."""
        with self.lock:
            sid = self.queues.get(name)
            party = self.parties.get(sid) if sid else None
            if party is None:
                self.problems.append(f"{leg.to} was bridged with the queue {name}, where nobody ever was")
                return None
            if party.state != "waiting":
                if party.state != "gone":
                    self.problems.append(f"{leg.to} was bridged with {sid}, whom another leg had taken")
                return None
            party.state = "taken"
            talking = [o.sid for o in self.legs.values() if o.talking and o.to == leg.to]
            if talking:
                self.problems.append(f"{leg.to} talks on {leg.sid} and on {talking} at once")
            leg.talking = True
            return party


def call_json(sid: str, to: str, from_: str, status: str) -> dict[str, Any]:
    uri = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{sid}.json"
    return {
        "sid": sid,
        "account_sid": TEST_ACCOUNT_SID,
        "parent_call_sid": None,
        "date_created": formatdate(usegmt=True),
        "date_updated": formatdate(usegmt=True),
        "to": to,
        "from": from_,
        "status": status,
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "queue_time": "0",
        "uri": uri,
        "subresource_uris": {},
    }


def run_leg(twilio: Twilio, leg: Leg, rng: random.Random) -> None:
    """An operator's browser: it rings, then lets it ring out or answers, as the TwiML says."""
    try:
        LegRun(twilio, leg, rng).run()
    except Exception:
        twilio.problem(f"leg {leg.sid} to {leg.to}:\n{traceback.format_exc()}")
    finally:
        with twilio.lock:
            leg.talking = False
            leg.over = True


class LegRun:
    def __init__(self, twilio: Twilio, leg: Leg, rng: random.Random) -> None:
        self.twilio, self.leg, self.rng = twilio, leg, rng

    def post(self, url: str, **form: str) -> str:
        leg = self.leg
        return signed_post(url, CallSid=leg.sid, To=leg.to, From=leg.from_, Direction="outbound-api", **form)

    def status(self, call_status: str, event: str) -> None:
        if event in self.leg.events and self.leg.status_callback:
            self.post(self.leg.status_callback, CallStatus=call_status, CallbackSource="call-progress-events")

    def run(self) -> None:
        self.status("ringing", "ringing")
        if self.leg.hung_up.wait(self.rng.uniform(0.2, 1.5)):
            self.status("canceled", "completed")  # the worker hung it up while it rang
            return
        if self.rng.random() < 0.2:
            self.status("no-answer", "completed")
            return
        # The answered event and the Url's fetch are separate requests, in no set order.
        answered = threading.Thread(target=self.answered_event)
        answered.start()
        try:
            self.answered(self.leg.url)
        finally:
            answered.join()

    def answered_event(self) -> None:
        try:
            self.status("in-progress", "answered")
        except Exception:
            self.twilio.problem(f"leg {self.leg.sid} to {self.leg.to}:\n{traceback.format_exc()}")

    def answered(self, url: str) -> None:
        for _ in range(MAX_HOLDS):
            if self.leg.hung_up.is_set():
                self.status("completed", "completed")
                return
            document = self.post(url, CallStatus="in-progress")
            tags = [v.tag for v in verbs(document)]
            if "Dial" in tags:
                again = self.dial(next(v for v in verbs(document) if v.tag == "Dial"))
                if again is None:
                    return
                url = again
            elif "Redirect" in tags:  # HOLD: the caller still hears their welcome
                url = str(next(v for v in verbs(document) if v.tag == "Redirect").text).strip()
            elif tags == ["Hangup"]:  # another operator was first, or the offer is over
                self.status("completed", "completed")
                return
            else:
                raise AssertionError(f"unexpected answer TwiML: {document}")
            self.leg.hung_up.wait(HOLD_SECONDS)
        self.twilio.problem(f"{self.leg.to}'s leg {self.leg.sid} was held {MAX_HOLDS} times")
        self.status("completed", "completed")

    def dial(self, dial: ET.Element) -> str | None:
        """`<Dial action><Queue url>koe-caller-N</Queue></Dial>`; returns where a Redirect leads."""
        queue = dial.find("Queue")
        action = dial.get("action")
        assert queue is not None and queue.text and action, ET.tostring(dial)
        party = self.twilio.take(queue.text.strip(), self.leg)
        if party is None:  # the caller hung up just now: nobody in their queue
            document = self.post(action, CallStatus="in-progress", DialCallStatus="no-answer")
            redirect = next((v for v in verbs(document) if v.tag == "Redirect"), None)
            if redirect is not None:
                return str(redirect.text).strip()
            self.status("completed", "completed")
            return None
        self.bridge(party, action, str(queue.get("url")))
        return None

    def bridge(self, party: Party, action: str, bridged_url: str) -> None:
        def caller_post(url: str, **form: str) -> str:
            return signed_post(url, CallSid=party.sid, From=CALLER_NUMBER, To=party.to, **form)

        queue_time = str(int(time.monotonic() - party.joined))
        on_queue = {"QueueSid": party.queue_sid, "QueueTime": queue_time}
        operator_first = self.rng.random() < 0.5  # who hangs up
        leg_status = "completed" if operator_first else "in-progress"
        caller_status = "in-progress" if operator_first else "completed"
        public = bridged_url.split("/twilio/", 1)[0]

        def operator_side() -> None:
            ended = {"DialCallStatus": "completed", "DialCallSid": party.sid}
            done = self.post(action, CallStatus=leg_status, **ended, **on_queue)
            assert [v.tag for v in verbs(done)] == ["Hangup"], done
            self.status("completed", "completed")

        def caller_side() -> None:
            after = caller_post(
                f"{public}/twilio/queue-result", CallStatus=caller_status, QueueResult="bridged", **on_queue
            )
            assert [v.tag for v in verbs(after)] in ([], ["Hangup"]), after
            with self.twilio.lock:
                sequence = party.next_sequence()
            caller_post(f"{public}/twilio/status", CallStatus="completed", SequenceNumber=sequence)

        try:
            caller_post(bridged_url, CallStatus="in-progress", DequeingCallSid=self.leg.sid, **on_queue)
            time.sleep(self.rng.uniform(0.1, 0.5))  # the conversation
            with self.twilio.lock:
                self.leg.talking = False
            for side in [operator_side, caller_side] if operator_first else [caller_side, operator_side]:
                side()
        finally:  # the caller's process stops waiting (a failure here is a problem already)
            with self.twilio.lock:
                party.state = "finished"


class RestStub(BaseHTTPRequestHandler):
    """Twilio's REST API as far as the worker uses it, and a side door (`/_...`) for the callers."""

    server: ThreadingHTTPServer

    def log_message(self, *_args: Any) -> None:
        pass

    @property
    def twilio(self) -> Twilio:
        return self.server.twilio  # type: ignore[attr-defined,no-any-return]

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode() if status != 204 else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, list[str]]:
        length = int(self.headers.get("Content-Length") or 0)
        return urllib.parse.parse_qs(self.rfile.read(length).decode())

    def do_GET(self) -> None:
        match = re.fullmatch(r"/_state/(\w+)", self.path)
        if match:
            self._json(200, self.twilio.state(match.group(1)))
        else:
            self._json(404, {"code": 20404, "message": f"not found: GET {self.path}", "status": 404})

    def do_POST(self) -> None:
        lists = self._form()
        form = {name: values[0] for name, values in lists.items()}
        if match := re.fullmatch(r"/_queue/([\w-]+)", self.path):
            self._json(200, self.twilio.enter_queue(match.group(1), form["CallSid"], form["To"]))
        elif match := re.fullmatch(r"/_give_up/(\w+)", self.path):
            self._json(200, self.twilio.give_up(match.group(1)))
        elif re.search(r"/Accounts/AC\w+/Calls\.json$", self.path):
            self._json(*self.twilio.create_call(form, lists.get("StatusCallbackEvent", [])))
        elif match := re.search(r"/Accounts/AC\w+/Calls/(CA\w+)\.json$", self.path):
            self._json(*self.twilio.update_call(match.group(1), form))
        else:
            self._json(404, {"code": 20404, "message": f"not found: POST {self.path}", "status": 404})

    def do_DELETE(self) -> None:
        match = re.search(r"/Accounts/AC\w+/Queues/(QU\w+)\.json$", self.path)
        status = self.twilio.delete_queue(match.group(1)) if match else 404
        self._json(status, {"code": 20404, "message": f"not found: DELETE {self.path}", "status": 404})


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


def wait_until(condition: Any, seconds: float) -> bool:
    """Bounded polling: True as soon as `condition()` holds, False after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_it_never_double_books_nor_loses_a_caller_when_a_worker_is_killed(
    fresh_database: str, tmp_path: Path
) -> None:
    twilio = Twilio()
    rest_server = ThreadingHTTPServer(("127.0.0.1", 0), RestStub)
    rest_server.daemon_threads = True
    rest_server.twilio = twilio  # type: ignore[attr-defined]
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
        wait_until(lambda: not twilio.live_legs(), LEGS_DEADLINE_SECONDS)
        wait_until(lambda: not queues_to_delete(fresh_database), QUEUES_DEADLINE_SECONDS)
        check(fresh_database)
        assert [process.exitcode for process in callers] == [0] * CALLER_PROCESSES
        check_twilio(twilio)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join(5)
        rest_server.shutdown()
        rest_server.server_close()


def queues_to_delete(database_url: str) -> int:
    """Twilio queues of ended calls the worker has yet to delete."""
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        row = conn.execute(
            "SELECT count(*) FROM calls WHERE twilio_queue_sid IS NOT NULL AND state = ANY(%s)",
            (list(FINAL),),
        ).fetchone()
    return int(row[0]) if row else 0


def check(database_url: str) -> None:
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        calls = conn.execute("SELECT call_sid, state FROM calls ORDER BY id").fetchall()
        offers = conn.execute(
            "SELECT user_id, created_at, ended_at, state FROM offers ORDER BY user_id, created_at, id"
        ).fetchall()
        talks = conn.execute(
            "SELECT answered_by_id, answered_at, ended_at, call_sid FROM calls"
            " WHERE answered_by_id IS NOT NULL ORDER BY answered_by_id, answered_at"
        ).fetchall()
        unfinished = [story(conn, sid, state) for sid, state in calls if state not in FINAL]
    assert len(calls) == CALLER_PROCESSES * CALLS_PER_PROCESS
    assert unfinished == [], "\n".join(unfinished)
    states = {state for _sid, state in calls}
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
    # An accepted offer ends at the answer; the operator is busy until the call ends: no offer, and
    # no other answered call, for them in between.
    busy = []
    for user, answered, ended, sid in talks:
        assert ended is not None, f"{sid} was answered by {user} and never ended"
        busy += [
            (user, sid, start)
            for other, start, _end, _state in offers
            if other == user and answered + skew < start < ended - skew
        ]
    for (user_a, _at, end_a, sid_a), (user_b, start_b, _end, sid_b) in itertools.pairwise(talks):
        if user_a == user_b and end_a - skew > start_b:
            busy.append((user_a, sid_a, sid_b))
    assert busy == [], "an operator was offered a call while talking"


def story(conn: psycopg.Connection[Any], call_sid: str, state: str) -> str:
    """What happened to a call, for the message of a failed check."""
    offers = conn.execute(
        "SELECT o.id, o.user_id, o.group_key, o.state, o.leg_sid FROM offers o"
        " JOIN calls c ON c.id = o.call_id WHERE c.call_sid = %s ORDER BY o.id",
        (call_sid,),
    ).fetchall()
    events = conn.execute(
        "SELECT e.kind FROM call_events e JOIN calls c ON c.id = e.call_id"
        " WHERE c.call_sid = %s ORDER BY e.at, e.id",
        (call_sid,),
    ).fetchall()
    return f"{call_sid} {state}: offers {offers}; events {[kind for (kind,) in events]}"


def check_twilio(twilio: Twilio) -> None:
    with twilio.lock:
        assert twilio.problems == [], "\n".join(twilio.problems)
        assert [leg.sid for leg in twilio.legs.values() if not leg.over] == [], "a leg is still up"
        assert twilio.legs, "no operator's leg was ever created"
        assert twilio.redirects == [], "a caller's call was updated (this simulation does not follow it)"
        states = {party.state for party in twilio.parties.values()}
        assert states <= {"finished", "gone"}, states
        assert sorted(twilio.deleted) == sorted(twilio.queue_sids), "a caller's Twilio queue was kept"
