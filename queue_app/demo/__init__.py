"""The demo company, Exempelbolaget AB: a configuration file loaded through the ordinary import.

Its passwords are for the demo only and are printed by `flask --app app demo load`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_CONFIG_PATH = Path(__file__).with_name("koe-demo.yaml")
DEMO_SLUG = "demo"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    role: str
    plan: str


def demo_logins(data: dict[str, Any]) -> list[DemoLogin]:
    """The admin first, then the operators, as the file lists them."""
    logins = [
        DemoLogin(u["email"], u["password"], u.get("role", "operator"), u.get("plan", "basic"))
        for u in data.get("users", [])
        if u.get("password")
    ]
    return sorted(logins, key=lambda login: login.role != "admin")
