"""The browser phone's access tokens: Twilio's VoiceGrant JWT, and the emulator adapter's token."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from queue_app.sim import live
from queue_app.telephony import tokens

ACCOUNT = "AC" + "1" * 32
KEY = "SK" + "2" * 32
SECRET = "api-key-secret-0123456789abcdefgh"  # 32 bytes, as Twilio's are
APP_SID = "AP" + "3" * 32


def twilio_config(**overrides: Any) -> dict[str, Any]:
    return {
        "TWILIO_EMULATOR": False,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_API_KEY": KEY,
        "TWILIO_API_SECRET": SECRET,
        "TWILIO_TWIML_APP_SID": APP_SID,
        "SECRET_KEY": "app-secret-0123456789abcdefghijkl",
    } | overrides


def test_it_makes_a_voice_grant_for_the_operators_identity_valid_for_an_hour() -> None:
    before = int(time.time())
    token = tokens.voice_token(twilio_config(), "op_anna")

    header = jwt.get_unverified_header(token.token)
    payload = jwt.decode(token.token, SECRET, algorithms=["HS256"])

    assert header["alg"] == "HS256" and header["cty"] == "twilio-fpa;v=1"
    assert payload["iss"] == KEY and payload["sub"] == ACCOUNT
    assert payload["jti"].startswith(f"{KEY}-")
    assert payload["grants"] == {
        "identity": "op_anna",
        "voice": {"incoming": {"allow": True}, "outgoing": {"application_sid": APP_SID}},
    }
    assert before + 3600 <= payload["exp"] <= int(time.time()) + 3600
    assert token.ttl_seconds == tokens.TOKEN_TTL_SECONDS == 3600
    assert token.mode == "twilio" and token.identity == "op_anna"
    assert token.expires_at == payload["exp"]


def test_the_token_is_signed_with_the_api_key_secret() -> None:
    token = tokens.voice_token(twilio_config(), "op_anna")

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token.token, "another-secret-0123456789abcdefgh", algorithms=["HS256"])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token.token, "app-secret-0123456789abcdefghijkl", algorithms=["HS256"])


@pytest.mark.parametrize("missing", ["TWILIO_API_KEY", "TWILIO_API_SECRET", "TWILIO_TWIML_APP_SID"])
def test_it_names_the_missing_setting(missing: str) -> None:
    with pytest.raises(tokens.TokenUnavailable, match=missing):
        tokens.voice_token(twilio_config(**{missing: None}), "op_anna")


@pytest.mark.parametrize("identity", ["", "op anna", "op-anna", "x" * 129])
def test_it_refuses_an_identity_dial_client_cannot_ring(identity: str) -> None:
    with pytest.raises(tokens.TokenUnavailable):
        tokens.voice_token(twilio_config(), identity)


def test_in_emulator_mode_it_makes_the_token_the_emulator_adapter_accepts() -> None:
    config = {"TWILIO_EMULATOR": True, "SECRET_KEY": "app-secret"}

    token = tokens.voice_token(config, "op_anna")

    class App:
        pass

    app = App()
    app.config = config  # type: ignore[attr-defined]
    assert token.mode == "emulator"
    assert live.token_identity(app, token.token) == "op_anna"  # type: ignore[arg-type]
    app.config = {"SECRET_KEY": "other"}  # type: ignore[attr-defined]
    with pytest.raises(live.DemoError):
        live.token_identity(app, token.token)  # type: ignore[arg-type]
