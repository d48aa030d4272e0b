"""Kö: the queue that answers a company's main number."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import extensions
from .clock import Clock, SystemClock
from .config import config_from_environment

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    config = config_from_environment(app.instance_path)
    if test_config:
        config.update(test_config)
    app.config.from_mapping(config)
    app.extensions["clock"] = app.config.get("CLOCK") or SystemClock()

    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(levelname)s %(name)s %(message)s")
    if app.config["TRUST_PROXY"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    extensions.db.configure(app.config["DATABASE_URL"])
    app.teardown_appcontext(lambda _exc: extensions.db.session.remove())
    from .auth import WebhookSessionInterface

    app.session_interface = WebhookSessionInterface()
    extensions.login_manager.init_app(app)
    extensions.csrf.init_app(app)
    from .i18n import ensure_compiled, select_locale, select_timezone

    extensions.babel.init_app(
        app,
        locale_selector=select_locale,
        timezone_selector=select_timezone,
        default_translation_directories=str(PROJECT_ROOT / "queue_app" / "translations"),
    )
    ensure_compiled()

    from .cli import register_cli
    from .web import register_blueprints

    register_blueprints(app)
    register_cli(app)
    from .web import wait_lane

    wait_lane.install(app)
    return app


def get_clock() -> Clock:
    from flask import current_app

    return current_app.extensions["clock"]  # type: ignore[no-any-return]
