"""The browser phone's API (queue_app/web/operator_calls.py): token, call view, blind transfer, hang-up."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, OperatorStatus, Transfer, User
from queue_app.services import operators

from ..factories import Personas
from .test_console_api import API, Api, add_call, add_entry

SECRET = "api-key-secret-0123456789abcdefgh"


@pytest.fixture
def bob(client: FlaskClient, personas: Personas) -> Api:
    return Api(client, personas.bob.email)


@pytest.fixture
def alice(app: Flask, personas: Personas) -> Api:
    return Api(app.test_client(), personas.alice.email)


@pytest.fixture
def charlie(app: Flask, personas: Personas) -> Api:
    return Api(app.test_client(), personas.charlie.email)


def connected_call(app: Flask, clock: ManualClock, persona: Any, number: str = "+46701234567") -> int:
    """A caller of the persona's queue, answered by the persona, who is on the call."""
    now = clock.now()
    with app.app_context():
        operators.log_in(persona.user_id, [persona.queue_id], now)
    call_id = add_call(
        app,
        persona.organisation_id,
        persona.queue_id,
        number,
        now,
        state="connected",
        answered_at=now,
        answered_by_id=persona.user_id,
    )
    with app.app_context(), db.transaction() as session:
        status = session.get_one(OperatorStatus, persona.user_id)
        status.state = "on_call"
        status.current_call_id = call_id
    return call_id


def transfers_of(call_id: int) -> list[Transfer]:
    with db.transaction() as session:
        return list(session.scalars(select(Transfer).where(Transfer.call_id == call_id)))


# --- the token --------------------------------------------------------------------------------------


def test_the_token_needs_a_log_in(client: FlaskClient, personas: Personas) -> None:
    response = client.get(f"{API}/token")

    assert response.status_code == 401
    assert response.get_json()["error"] == "login_required"


def test_in_emulator_mode_the_token_is_for_the_emulator_adapter(app: Flask, bob: Api) -> None:
    from queue_app.sim import live

    response = bob.get("/token")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_json()
    assert data["mode"] == "emulator" and data["identity"] == "op_bob"
    assert data["ttl_seconds"] == 3600 and data["refresh_before_seconds"] > 0
    assert live.token_identity(app, data["token"]) == "op_bob"
    # The emulator's device routes take it.
    headers = {"X-Device-Token": data["token"]}
    assert bob.client.post("/emulator/demo/device/register", json={}, headers=headers).status_code == 200


def test_with_twilio_the_token_is_a_voice_grant_for_the_operator(app: Flask, bob: Api) -> None:
    app.config.update(
        TWILIO_EMULATOR=False,
        TWILIO_API_KEY="SK" + "2" * 32,
        TWILIO_API_SECRET=SECRET,
        TWILIO_TWIML_APP_SID="AP" + "3" * 32,
    )

    data = bob.get("/token").get_json()

    payload = jwt.decode(data["token"], SECRET, algorithms=["HS256"])
    assert data["mode"] == "twilio"
    assert payload["grants"]["identity"] == "op_bob"
    assert payload["grants"]["voice"]["incoming"] == {"allow": True}
    assert payload["exp"] - payload["nbf"] == 3600


def test_without_the_api_key_the_token_is_unavailable(app: Flask, bob: Api) -> None:
    app.config.update(TWILIO_EMULATOR=False, TWILIO_API_KEY=None)

    response = bob.get("/token")

    assert response.status_code == 503
    assert "TWILIO_API_KEY" in response.get_json()["message"]


def test_a_user_without_a_client_identity_or_plan_gets_no_token(
    app: Flask, bob: Api, personas: Personas
) -> None:
    with db.transaction() as session:
        session.get_one(User, personas.bob.user_id).client_identity = None
    assert bob.get("/token").status_code == 409

    with db.transaction() as session:
        session.get_one(User, personas.bob.user_id).plan = "basic"
    assert bob.get("/token").status_code == 403


# --- transfer ---------------------------------------------------------------------------------------


def test_it_transfers_the_operators_connected_call_to_a_colleague(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    entry = add_entry(app, personas.bob.organisation_id, "Åke Öberg", phone_number="+46846500413")

    response = bob.post(f"/calls/{call_id}/transfer", {"directory_entry_id": entry, "kind": "blind"})

    assert response.status_code == 202, response.get_json()
    data = response.get_json()
    assert data["transfer"]["to_number"] == "+46846500413"
    assert data["transfer"]["to_name"] == "Åke Öberg"
    assert data["transfer"]["state"] == "dialing" and data["transfer"]["active"]
    assert data["call"]["state"] == "transferring"
    [transfer] = transfers_of(call_id)
    assert transfer.directory_entry_id == entry and transfer.from_user_id == personas.bob.user_id
    # The operator is done with the caller: wrap-up.
    assert bob.get("/live").get_json()["operator"]["state"] == "wrap_up"
    # The call stays visible to the operator who transferred it.
    view = bob.get(f"/calls/{call_id}").get_json()["call"]
    assert [t["state"] for t in view["transfers"]] == ["dialing"]
    assert view["answered_by_me"] is True


def test_it_transfers_to_a_number_typed_in_national_form(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)

    response = bob.post(f"/calls/{call_id}/transfer", {"to_number": "070-174 06 08"})

    assert response.status_code == 202
    assert response.get_json()["transfer"]["to_number"] == "+46701740608"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_target"),
        ({"to_number": "12"}, "invalid_number"),
        ({"to_number": "not a number"}, "invalid_number"),
        ({"to_number": 4670}, "invalid_number"),
        ({"directory_entry_id": "7"}, "invalid_entry"),
        ({"to_number": "+46846500413", "kind": "warm"}, "invalid_kind"),
        ({"to_number": "12", "kind": "consult"}, "invalid_number"),
        ({"kind": "consult"}, "missing_target"),
    ],
)
def test_it_refuses_bad_transfer_input_with_422(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas, body: dict[str, Any], code: str
) -> None:
    call_id = connected_call(app, clock, personas.bob)

    response = bob.post(f"/calls/{call_id}/transfer", body)

    assert response.status_code == 422
    assert response.get_json()["error"] == code
    assert transfers_of(call_id) == []


def test_a_colleague_without_a_number_cannot_be_transferred_to(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    entry = add_entry(app, personas.bob.organisation_id, "Utan Nummer", email="utan@acme.test")

    response = bob.post(f"/calls/{call_id}/transfer", {"directory_entry_id": entry})

    assert response.status_code == 422
    assert "Utan Nummer" in response.get_json()["message"]


def test_an_unknown_or_foreign_colleague_is_404(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    foreign = add_entry(app, personas.charlie.organisation_id, "Beta Person", phone_number="+46846500499")

    for entry in (foreign, 999999):
        response = bob.post(f"/calls/{call_id}/transfer", {"directory_entry_id": entry})
        assert response.status_code == 404
        assert response.get_json()["message"] == "No such colleague in the directory."
    assert transfers_of(call_id) == []


def test_only_the_operators_own_connected_call_can_be_transferred(
    app: Flask, clock: ManualClock, bob: Api, alice: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    body = {"to_number": "+46846500413"}

    # Alice (same organisation, admin) did not answer it: for her it is not a call of hers.
    assert alice.post(f"/calls/{call_id}/transfer", body).status_code == 404
    # A waiting caller nobody answered.
    waiting = add_call(app, personas.bob.organisation_id, personas.bob.queue_id, "+46709999999", clock.now())
    assert bob.post(f"/calls/{waiting}/transfer", body).status_code == 404
    # A call Bob answered that has ended.
    ended = add_call(
        app,
        personas.bob.organisation_id,
        personas.bob.queue_id,
        "+46708888888",
        clock.now(),
        state="completed",
        answered_by_id=personas.bob.user_id,
    )
    response = bob.post(f"/calls/{ended}/transfer", body)
    assert response.status_code == 409
    assert response.get_json()["error"] == "not_connected"
    # The first transfer works, a second click finds the call already transferring.
    assert bob.post(f"/calls/{call_id}/transfer", body).status_code == 202
    assert bob.post(f"/calls/{call_id}/transfer", body).status_code == 409
    assert len(transfers_of(call_id)) == 1


def test_another_organisations_call_is_404(
    app: Flask, clock: ManualClock, bob: Api, charlie: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)

    assert charlie.get(f"/calls/{call_id}").status_code == 404
    assert charlie.post(f"/calls/{call_id}/transfer", {"to_number": "+46846500413"}).status_code == 404
    assert charlie.post(f"/calls/{call_id}/hangup").status_code == 404
    assert bob.get("/calls/2147483647").status_code == 404
    assert bob.get("/calls/2147483648").status_code == 404
    assert transfers_of(call_id) == []


def test_transfer_and_hangup_need_the_csrf_header(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)

    for path, body in (
        (f"/calls/{call_id}/transfer", {"to_number": "+46846500413"}),
        (f"/calls/{call_id}/hangup", {}),
    ):
        response = bob.client.post(API + path, json=body)
        assert response.status_code == 400
        assert response.get_json()["error"] == "csrf_failed"
    assert transfers_of(call_id) == []


def test_a_body_that_is_not_an_object_is_400(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)

    response = bob.post(f"/calls/{call_id}/transfer", ["+46846500413"])

    assert response.status_code == 400


# --- hang up ----------------------------------------------------------------------------------------


def test_hangup_ends_the_caller_leg_by_rest(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    from queue_app.telephony.rest import TwilioRest

    call_id = connected_call(app, clock, personas.bob)
    with db.transaction() as session:
        sid = session.get_one(Call, call_id).call_sid
    ended: list[str] = []
    monkeypatch.setattr(TwilioRest, "from_app", classmethod(lambda cls: cls(client=None)))  # type: ignore[arg-type]
    monkeypatch.setattr(TwilioRest, "hang_up", lambda self, call_sid: ended.append(call_sid))

    response = bob.post(f"/calls/{call_id}/hangup")

    assert response.status_code == 202
    assert ended == [sid]


def test_hangup_of_a_call_twilio_has_ended_is_409(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twilio.base.exceptions import TwilioRestException

    from queue_app.telephony.rest import TwilioRest

    call_id = connected_call(app, clock, personas.bob)

    def gone(self: Any, call_sid: str) -> None:
        raise TwilioRestException(400, "uri", "Call is not in-progress. Cannot redirect.", code=21220)

    monkeypatch.setattr(TwilioRest, "from_app", classmethod(lambda cls: cls(client=None)))  # type: ignore[arg-type]
    monkeypatch.setattr(TwilioRest, "hang_up", gone)

    response = bob.post(f"/calls/{call_id}/hangup")

    assert response.status_code == 409
    assert response.get_json()["error"] == "call_ended"


def test_hangup_of_a_call_that_is_not_connected_is_409(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    waiting = add_call(
        app,
        personas.bob.organisation_id,
        personas.bob.queue_id,
        "+46709999999",
        clock.now(),
        state="completed",
        answered_by_id=personas.bob.user_id,
    )

    assert bob.post(f"/calls/{waiting}/hangup").status_code == 409


# --- consult ----------------------------------------------------------------------------------------


def consult_path(call_id: int, action: str) -> str:
    return f"/calls/{call_id}/consult/{action}"


def test_a_consult_keeps_the_operator_on_the_call_while_the_colleague_is_dialled(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    entry = add_entry(app, personas.bob.organisation_id, "Åke Öberg", phone_number="+46846500413")

    response = bob.post(f"/calls/{call_id}/transfer", {"directory_entry_id": entry, "kind": "consult"})

    assert response.status_code == 202, response.get_json()
    data = response.get_json()
    assert data["transfer"]["kind"] == "consult" and data["transfer"]["state"] == "dialing"
    assert data["transfer"]["to_name"] == "Åke Öberg" and data["transfer"]["active"]
    assert data["call"]["state"] == "connected"
    assert bob.get("/live").get_json()["operator"]["state"] == "on_call"
    # A second consult (or a blind transfer) while it goes on is refused.
    again = bob.post(f"/calls/{call_id}/transfer", {"to_number": "+46846500413", "kind": "consult"})
    assert again.status_code == 409 and again.get_json()["error"] == "consult_active"
    blind = bob.post(f"/calls/{call_id}/transfer", {"to_number": "+46846500413", "kind": "blind"})
    assert blind.status_code == 409 and blind.get_json()["error"] == "consult_active"
    assert len(transfers_of(call_id)) == 1


def test_connect_before_the_colleague_answers_is_409_and_return_ends_the_consult(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    bob.post(f"/calls/{call_id}/transfer", {"to_number": "+46846500413", "kind": "consult"})

    early = bob.post(consult_path(call_id, "connect"))
    back = bob.post(consult_path(call_id, "return"))
    twice = bob.post(consult_path(call_id, "return"))

    assert early.status_code == 409 and early.get_json()["error"] == "not_answered"
    assert back.status_code == 202
    assert back.get_json()["transfer"]["state"] == "canceled"
    assert back.get_json()["transfer"]["recall_reason"] == "returned"
    assert twice.status_code == 409 and twice.get_json()["error"] == "no_consult"


def test_connect_after_the_colleague_answered_hands_the_call_over(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    from queue_app.services import consult

    call_id = connected_call(app, clock, personas.bob)
    transfer_id = bob.post(f"/calls/{call_id}/transfer", {"to_number": "+46846500413", "kind": "consult"})
    tid = transfer_id.get_json()["transfer"]["id"]
    with app.app_context():
        consult.record_colleague_status(tid, "in-progress", "CA" + "5" * 32, clock.now())

    response = bob.post(consult_path(call_id, "connect"))

    assert response.status_code == 202
    data = response.get_json()
    assert data["transfer"]["state"] == "connected" and data["call"]["state"] == "completed"
    assert bob.get("/live").get_json()["operator"]["state"] == "wrap_up"


def test_consult_actions_on_a_call_that_is_not_yours_or_is_foreign_are_404(
    app: Flask, clock: ManualClock, bob: Api, alice: Api, charlie: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    body = {"to_number": "+46846500413", "kind": "consult"}

    for api in (alice, charlie):
        assert api.post(f"/calls/{call_id}/transfer", body).status_code == 404
        for action in ("connect", "return"):
            assert api.post(consult_path(call_id, action)).status_code == 404
    assert bob.post(consult_path(2147483647, "connect")).status_code == 404
    assert transfers_of(call_id) == []


def test_a_consult_on_an_ended_call_or_an_unknown_colleague_is_refused(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    ended = add_call(
        app,
        personas.bob.organisation_id,
        personas.bob.queue_id,
        "+46708888888",
        clock.now(),
        state="completed",
        answered_by_id=personas.bob.user_id,
    )

    gone = bob.post(f"/calls/{ended}/transfer", {"to_number": "+46846500413", "kind": "consult"})
    unknown = bob.post(f"/calls/{call_id}/transfer", {"directory_entry_id": 999999, "kind": "consult"})
    no_consult = bob.post(consult_path(ended, "return"))

    assert gone.status_code == 409 and gone.get_json()["error"] == "not_connected"
    assert unknown.status_code == 404
    assert no_consult.status_code == 409 and no_consult.get_json()["error"] == "not_connected"
    assert transfers_of(call_id) == []


def test_a_plan_without_calls_is_refused_a_consult(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)
    with app.app_context(), db.transaction() as session:
        session.get_one(User, personas.bob.user_id).plan = "basic"

    response = bob.post(f"/calls/{call_id}/transfer", {"to_number": "+46846500413", "kind": "consult"})

    assert response.status_code == 403
    assert response.get_json()["error"] == "not_allowed"
    assert transfers_of(call_id) == []


def test_consult_actions_need_the_csrf_header(
    app: Flask, clock: ManualClock, bob: Api, personas: Personas
) -> None:
    call_id = connected_call(app, clock, personas.bob)

    for action in ("connect", "return"):
        response = bob.client.post(API + consult_path(call_id, action), json={})
        assert response.status_code == 400
        assert response.get_json()["error"] == "csrf_failed"
