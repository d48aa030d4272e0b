"""Which language a page is shown in: the user's, else the organisation's, else the browser's."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from flask import current_app, has_request_context, request
from flask_login import current_user

SUPPORTED_LOCALES = ("sv", "en")
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"

log = logging.getLogger(__name__)


def select_locale() -> str:
    if not has_request_context():
        return str(current_app.config["DEFAULT_LOCALE"])
    locale = getattr(current_user, "locale", None)
    if locale in SUPPORTED_LOCALES:
        return str(locale)
    chosen = request.cookies.get("locale")
    if chosen in SUPPORTED_LOCALES:
        return chosen
    return request.accept_languages.best_match(SUPPORTED_LOCALES) or current_app.config["DEFAULT_LOCALE"]


def select_timezone() -> str:
    """Dates and times on pages are shown in the organisation's time zone."""
    if has_request_context():
        timezone = getattr(current_user, "timezone", None)
        if timezone:
            return str(timezone)
    return str(current_app.config["DEFAULT_TIMEZONE"])


def ensure_compiled(directory: Path = TRANSLATIONS_DIR) -> None:
    """Compile each catalogue whose .mo is missing or older than its .po.

    `make translations` does this with pybabel; doing it at start-up too means a fresh checkout, the
    tests and a forgotten build step all still show Swedish. The .mo is written to a temporary file
    and renamed, so parallel test workers never read half a file.
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po_path in directory.glob("*/LC_MESSAGES/*.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        try:
            with po_path.open("rb") as po_file:
                catalog = read_po(po_file, locale=po_path.parent.parent.name)
            fd, tmp_name = tempfile.mkstemp(dir=mo_path.parent, suffix=".mo.tmp")
            try:
                with os.fdopen(fd, "wb") as tmp_file:
                    write_mo(tmp_file, catalog)
                os.replace(tmp_name, mo_path)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # A read-only deployment without a built .mo shows English rather than not starting.
            log.warning("could not compile %s: %s", po_path, exc)
