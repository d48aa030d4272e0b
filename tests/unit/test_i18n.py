"""The Swedish catalogue compiles without `make`, and only when its .po changed."""

from __future__ import annotations

import os
import shutil
from gettext import GNUTranslations
from pathlib import Path

from queue_app.i18n import TRANSLATIONS_DIR, ensure_compiled


def copy_catalogue(tmp_path: Path) -> Path:
    po = tmp_path / "sv" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    shutil.copyfile(TRANSLATIONS_DIR / "sv" / "LC_MESSAGES" / "messages.po", po)
    return po


def test_it_compiles_a_missing_catalogue(tmp_path: Path) -> None:
    po = copy_catalogue(tmp_path)

    ensure_compiled(tmp_path)

    with po.with_suffix(".mo").open("rb") as mo:
        swedish = GNUTranslations(mo)
    assert swedish.gettext("Log in") == "Logga in"
    assert swedish.gettext("Wrong e-mail or password") == "Fel e-postadress eller lösenord"


def test_it_leaves_an_up_to_date_catalogue_alone(tmp_path: Path) -> None:
    po = copy_catalogue(tmp_path)
    ensure_compiled(tmp_path)
    mo = po.with_suffix(".mo")
    os.utime(po, (1_000_000, 1_000_000))
    mo.write_bytes(b"left alone")

    ensure_compiled(tmp_path)

    assert mo.read_bytes() == b"left alone"


def test_it_recompiles_when_the_po_is_newer(tmp_path: Path) -> None:
    po = copy_catalogue(tmp_path)
    mo = po.with_suffix(".mo")
    mo.write_bytes(b"stale")
    os.utime(mo, (1_000_000, 1_000_000))

    ensure_compiled(tmp_path)

    assert mo.read_bytes() != b"stale"
    assert not list(mo.parent.glob("*.tmp"))


def test_it_translates_every_message_of_the_catalogue() -> None:
    from babel.messages.pofile import read_po

    with (TRANSLATIONS_DIR / "sv" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalogue = read_po(po)

    untranslated = [m.id for m in catalogue if m.id and (not m.string or m.fuzzy)]
    assert untranslated == []
