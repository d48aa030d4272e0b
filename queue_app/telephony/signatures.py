"""Checking `X-Twilio-Signature` on every webhook, with the official `RequestValidator`.

The signature covers the URL Twilio requested, so the check is made against the configured public
origin (`PUBLIC_BASE_URL`), never the internal one a TLS-terminating proxy hands to Flask.
In emulator mode the emulator's own auth token is used: the check is never off.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from flask import Request, current_app, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import Forbidden

log = logging.getLogger("koe.webhooks")
F = TypeVar("F", bound=Callable[..., Any])


def public_url(req: Request) -> str:
    """The URL as Twilio requested it: public origin + the raw path and query, byte-exact.

    The path comes from the server's raw request line where it keeps one (gunicorn's RAW_URI,
    REQUEST_URI), the query always from QUERY_STRING: not every server puts the query in the former.
    """
    raw = req.environ.get("RAW_URI") or req.environ.get("REQUEST_URI")
    path = raw.split("?", 1)[0] if raw else quote(req.script_root + req.path, safe="/%:@!$&'()*+,;=-._~")
    query = req.environ.get("QUERY_STRING", "")
    return current_app.config["PUBLIC_BASE_URL"] + path + (f"?{query}" if query else "")


def signature_is_valid(req: Request, auth_token: str) -> bool:
    signature = req.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    params: Any = req.form if req.method == "POST" else {}
    validator = RequestValidator(auth_token)
    url = public_url(req)
    # The URL as configured is one of the two `validate` tries (with and without the port), so a
    # match here is a match there, at half the cost on the waitUrl; anything else gets the full check.
    if hmac.compare_digest(validator.compute_signature(url, params), signature):
        return True
    return bool(validator.validate(url, params, signature))


def twilio_signed(view: F) -> F:
    """Answer 403 unless the request carries a valid Twilio signature."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not signature_is_valid(request, current_app.config["TWILIO_AUTH_TOKEN"]):
            log.warning(
                "webhook signature rejected route=%s call_sid=%s url=%s",
                request.path,
                request.values.get("CallSid", "-"),
                public_url(request),
            )
            raise Forbidden("Invalid or missing X-Twilio-Signature")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
