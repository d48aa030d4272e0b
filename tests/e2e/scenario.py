"""A small switchboard for end-to-end tests: one queue, its number, operators who may log in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queue_app.extensions import db
from queue_app.models import Queue

from ..factories import make_membership, make_number, make_org, make_queue, make_user

NUMBER = "+46855501000"


@dataclass(frozen=True)
class Switchboard:
    organisation_id: int
    queue_id: int
    number: str
    operators: dict[str, int]  # client identity -> user id


def make_switchboard(operators: tuple[str, ...] = ("op_anna",), **queue_settings: Any) -> Switchboard:
    """An open queue (no schedule: always open) with operators whose device is the browser."""
    with db.transaction() as session:
        org = make_org(session, name="Exempel AB", slug="exempel")
        settings: dict[str, Any] = {
            "name": "Växeln",
            "slug": "vaxeln",
            "ring_timeout_seconds": 15,
            "wrap_up_seconds": 10,
        } | queue_settings
        queue = make_queue(session, org, **settings)
        make_number(session, org, queue, number=NUMBER)
        ids = {}
        for identity in operators:
            user = make_user(session, org, client_identity=identity, name=identity, plan="pro")
            make_membership(session, queue, user)
            ids[identity] = user.id
        return Switchboard(org.id, queue.id, NUMBER, ids)


def queue_settings(queue_id: int, **values: Any) -> None:
    with db.transaction() as session:
        queue = session.get(Queue, queue_id)
        assert queue is not None
        for name, value in values.items():
            setattr(queue, name, value)


def operator_legs(emulator: Any, *identities: str) -> list[Any]:
    """The outbound calls that rang these operators' browsers (a queue offer's own legs)."""
    wanted = {f"client:{identity}" for identity in identities}
    return [c for c in emulator.calls if c.to in wanted and c.direction == "outbound-api"]
