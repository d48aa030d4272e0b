"""Checking `X-Twilio-Signature` on every webhook, with the official `RequestValidator`.

The signature covers the URL Twilio requested, so the check is made against the configured public
origin (`PUBLIC_BASE_URL`), never the internal one a TLS-terminating proxy hands to Flask.
In emulator mode the emulator's own auth token is used: the check is never off.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from flask import Request, current_app, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import Forbidden

log = logging.getLogger("koe.webhooks")
F = TypeVar("F", bound=Callable[..., Any])


def public_url(req: Request) -> str:
    """The URL as Twilio requested it: public origin + the raw path and query, byte-exact."""
    return public_url_of(req.environ, current_app.config["PUBLIC_BASE_URL"])


def public_url_of(environ: Mapping[str, Any], base_url: str) -> str:
    """`public_url` from a WSGI environ. The path comes from the server's raw request line where it
    keeps one (gunicorn's RAW_URI, REQUEST_URI), the query always from QUERY_STRING: not every
    server puts the query in the former."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        path = raw.split("?", 1)[0]
    else:
        script_path = environ.get("SCRIPT_NAME", "").rstrip("/") + (environ.get("PATH_INFO") or "/")
        path = quote(script_path.encode("latin-1").decode("utf-8", "replace"), safe="/%:@!$&'()*+,;=-._~")
    query = environ.get("QUERY_STRING", "")
    return base_url + path + (f"?{query}" if query else "")


def signature_is_valid(req: Request, auth_token: str) -> bool:
    params: Any = req.form if req.method == "POST" else {}
    return signature_matches(public_url(req), params, req.headers.get("X-Twilio-Signature", ""), auth_token)


def signature_matches(url: str, params: Mapping[str, str], signature: str, auth_token: str) -> bool:
    """Whether `signature` is Twilio's for this URL and these POST parameters (empty for a GET)."""
    if not signature:
        return False
    validator = RequestValidator(auth_token)
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
