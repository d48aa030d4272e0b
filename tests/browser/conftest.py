"""The app for real, for the browser: a fresh SQLite file, migrated, the demo company loaded, served by
werkzeug on 127.0.0.1 (a free port) in a background thread with the worker thread beside it, and the
real-time emulator calling the app back over HTTP at PUBLIC_BASE_URL = that server. Playwright drives
Debian's Chromium (/usr/bin/chromium; `make test` installs it). No browser is downloaded.

The app's clock runs at real speed from a Wednesday 10:00 in Stockholm, so the demo queues are open
whenever the tests run. Camp-on is short (20 s, retried every 5 s) so a busy colleague is recalled
within the test.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DEMO_START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # Wednesday 10:00 in Stockholm

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed at /usr/bin/chromium (`make test` installs it as root: "
        "apt-get install -y chromium)",
        allow_module_level=True,
    )


class RunningClock:
    """Real-time seconds, starting from `start`: the app's `Clock` for a live server in the tests."""

    def __init__(self, start: datetime) -> None:
        self._offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


@dataclass
class LiveServer:
    app: Flask
    url: str
    emulator: Any

    def route_demo_numbers(self) -> list[str]:
        from queue_app.sim import live
        from queue_app.sim.web import emulator_for

        with self.app.app_context():
            numbers = [n["number"] for n in live.demo_numbers(_demo_org_id())]
            live.route_numbers(self.app, emulator_for(self.app), numbers)
        return numbers


def _demo_org_id() -> int:
    from sqlalchemy import select

    from queue_app.demo import DEMO_SLUG
    from queue_app.extensions import db
    from queue_app.models import Organisation

    with db.transaction() as session:
        return session.scalars(select(Organisation.id).where(Organisation.slug == DEMO_SLUG)).one()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from werkzeug.serving import make_server

    from queue_app import create_app, migrations, worker
    from queue_app.config import EMULATOR_ACCOUNT_SID, EMULATOR_AUTH_TOKEN
    from queue_app.demo import DEMO_CONFIG_PATH
    from queue_app.extensions import db
    from queue_app.services import config_io, dispatch
    from queue_app.sim.web import emulator_for

    folder = tmp_path_factory.mktemp("browser")
    app = create_app(
        {
            "SECRET_KEY": "browser-test-secret",
            "DATABASE_URL": f"sqlite:///{folder / 'koe.sqlite3'}",
            "CLOCK": RunningClock(DEMO_START),
            "AUDIO_DIR": str(folder / "audio"),
            "PUBLIC_BASE_URL": "http://127.0.0.1:0",
            "TWILIO_EMULATOR": True,
            "TWILIO_ACCOUNT_SID": EMULATOR_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": EMULATOR_AUTH_TOKEN,
            "TWILIO_API_BASE": "http://127.0.0.1:0/emulator",
            "RUN_WORKER_IN_PROCESS": False,
            "SESSION_COOKIE_SECURE": False,
            "REMEMBER_COOKIE_SECURE": False,
            "CAMP_ON_SECONDS": 20,
            "CAMP_ON_RETRY_SECONDS": 5,
            "LOG_LEVEL": "WARNING",
        }
    )
    with app.app_context():
        migrations.upgrade("head")
        report = config_io.import_config(config_io.read_config_file(DEMO_CONFIG_PATH), dry_run=False)
        assert not report.errors, report.lines()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config.update(PUBLIC_BASE_URL=url, TWILIO_API_BASE=f"{url}/emulator")
    serving = threading.Thread(target=server.serve_forever, name="koe-browser-server", daemon=True)
    serving.start()
    _thread, stop = worker.start_in_thread(app, interval=0.5)
    emulator = emulator_for(app)
    try:
        yield LiveServer(app, url, emulator)
    finally:
        stop.set()
        dispatch.wake_event.set()
        emulator.scheduler.stop()
        server.shutdown()
        serving.join(timeout=10)
        _thread.join(timeout=10)
        db.dispose()


@pytest.fixture(scope="module")
def browser(live_server: LiveServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def log_in(page: Any, base_url: str, email: str, password: str = "demo1234") -> None:
    page.goto(f"{base_url}/login?next=/console")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/console")
