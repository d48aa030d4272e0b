"""Access tokens for the operator's browser phone (twilio.md §6).

With Twilio: an AccessToken with a VoiceGrant (incoming calls allowed; outgoing calls through the
TwiML App `TWILIO_TWIML_APP_SID`) for the operator's client identity, the one `<Dial><Client>` rings,
signed with the API key secret (HS256, `cty: twilio-fpa;v=1`), valid for TOKEN_TTL_SECONDS. The
browser swaps in a fresh one before it expires (`tokenWillExpire` -> `device.updateToken`).

In emulator mode: the signed token that the emulator's device adapter (static/js/emulator_device.js,
the /emulator/demo/device routes) accepts, for the same identity.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from itsdangerous import URLSafeTimedSerializer
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

TOKEN_TTL_SECONDS = 3600
# The browser asks for a new token this long before the old one expires (the SDK's
# `tokenWillExpire` fires at ttl - tokenRefreshMs; the console also keeps its own timer).
REFRESH_BEFORE_SECONDS = 60
IDENTITY = re.compile(r"^[A-Za-z0-9_]{1,128}$")

MODE_TWILIO = "twilio"
MODE_EMULATOR = "emulator"


class TokenUnavailable(Exception):
    """No token can be made: the message says which setting is missing."""


@dataclass(frozen=True, slots=True)
class VoiceToken:
    token: str
    identity: str
    mode: str  # "twilio" or "emulator"
    ttl_seconds: int
    expires_at: int  # Unix time


def voice_token(config: Mapping[str, Any], identity: str, ttl: int = TOKEN_TTL_SECONDS) -> VoiceToken:
    """A token for `identity`: Twilio's AccessToken, or the emulator adapter's token."""
    if not IDENTITY.match(identity or ""):
        raise TokenUnavailable("The client identity must be 1-128 letters, digits or underscores.")
    now = int(time.time())
    if config.get("TWILIO_EMULATOR"):
        return VoiceToken(emulator_token(config, identity), identity, MODE_EMULATOR, ttl, now + ttl)
    missing = [
        name
        for name in ("TWILIO_API_KEY", "TWILIO_API_SECRET", "TWILIO_TWIML_APP_SID")
        if not config.get(name)
    ]
    if missing:
        raise TokenUnavailable("The browser phone needs " + ", ".join(missing) + " (see the README).")
    token = AccessToken(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_API_KEY"],
        config["TWILIO_API_SECRET"],
        identity=identity,
        ttl=ttl,
    )
    token.add_grant(VoiceGrant(incoming_allow=True, outgoing_application_sid=config["TWILIO_TWIML_APP_SID"]))
    jwt = token.to_jwt()
    return VoiceToken(jwt if isinstance(jwt, str) else jwt.decode(), identity, MODE_TWILIO, ttl, now + ttl)


def emulator_token(config: Mapping[str, Any], identity: str) -> str:
    """What `sim.live.device_token` makes: the adapter's routes check it with `live.token_identity`."""
    from ..sim.live import TOKEN_SALT

    return URLSafeTimedSerializer(config["SECRET_KEY"], salt=TOKEN_SALT).dumps({"identity": identity})
