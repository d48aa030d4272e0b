"""The domain stays pure: no web framework, ORM, telephony SDK or cloud SDK in queue_app/domain."""

from __future__ import annotations

import ast
from pathlib import Path

import queue_app

FORBIDDEN = (
    "flask",
    "sqlalchemy",
    "twilio",
    "boto3",
    "requests",
    "werkzeug",
    "queue_app.models",
    "queue_app.db",
    "queue_app.services",
    "queue_app.web",
    "queue_app.telephony",
)
DOMAIN = Path(queue_app.__file__).parent / "domain"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against queue_app.domain
                base = "queue_app.domain" if node.level == 1 else "queue_app"
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def test_it_keeps_infrastructure_out_of_the_domain() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in DOMAIN.glob("*.py")
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert offenders == set()


def test_it_finds_domain_modules_to_check() -> None:
    assert (DOMAIN / "states.py").exists()
