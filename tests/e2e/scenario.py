"""A small switchboard for end-to-end tests: one queue, its number, operators who may log in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from queue_app.extensions import db
from queue_app.models import Call, Prompt, Queue
from queue_app.services import operators as operator_service
from queue_app.sim import CallerScript, ClientDevice

from ..factories import make_membership, make_number, make_org, make_queue, make_user

NUMBER = "+46855501000"
CALLER = "+46701234567"
LONG_WELCOME = (
    "Välkommen till Exempel AB. Samtalet kan komma att spelas in för att vi ska kunna förbättra vår "
    "service. Vi öppnar klockan åtta och stänger klockan fem på vardagar."
)


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


def call_state(call_sid: str) -> str | None:
    with db.transaction() as session:
        return session.scalar(select(Call.state).where(Call.call_sid == call_sid))


def answered_during_welcome(
    app: Any, clock: Any, emulator: Any, incoming_number: Any
) -> tuple[Switchboard, Any]:
    """Anna's browser answers at once while the caller still hears a long welcome: her own leg is
    taken (the call is connected) but waits for the caller to reach their queue (not yet bridged)."""
    with app.app_context():
        board = make_switchboard(("op_anna",))
        with db.transaction() as session:
            session.add(
                Prompt(
                    organisation_id=board.organisation_id, kind="welcome", language="sv", text=LONG_WELCOME
                )
            )
        operator_service.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=0))
    call = emulator.place_call(CALLER, incoming_number(board.number), CallerScript(patience=None))
    with app.app_context():
        assert call.wait_until(lambda: call_state(call.sid) == "connected", timeout=60)
    assert call.bridged_with is None
    return board, call
