"""`EmulatorHttpClient`: the official twilio-python client talking to the emulator with no sockets.

A `twilio.http.HttpClient` (the documented extension point, twilio.md §5) whose `request()` hands the
request to the same `RestApi` handlers the `/emulator` blueprint serves. Install it as
`app.extensions["twilio_http_client"]` and `queue_app.telephony.rest.TwilioRest` works unchanged.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from twilio.http import HttpClient
from twilio.http.request import Request as TwilioRequest
from twilio.http.response import Response

from .rest import RestApi

if TYPE_CHECKING:
    from .emulator import Emulator


def form_pairs(data: Any) -> list[tuple[str, str]]:
    """twilio-python sends dicts whose list values repeat the key, as `requests` would encode them."""
    pairs: list[tuple[str, str]] = []
    for key, value in (data or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((str(key), _text(v)) for v in values if v is not None)
    return pairs


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class EmulatorHttpClient(HttpClient):
    def __init__(self, emulator: Emulator) -> None:
        super().__init__(logging.getLogger("koe.emulator.http"), is_async=False)
        self.api = RestApi(emulator)
        self.last_response: Response | None = None

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        parts = urlsplit(uri)
        path = parts.path
        start = path.find("/2010-04-01/")
        path = path[start:] if start >= 0 else path
        query = parse_qsl(parts.query) + form_pairs(params)
        authorization = (headers or {}).get("Authorization")
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            authorization = f"Basic {token}"
        self._test_only_last_request = TwilioRequest(method, uri, params=params, data=data, headers=headers)
        result = self.api.handle(method, path, form_pairs(data), authorization, query)
        response = Response(
            result.status, result.text, {"Content-Type": result.content_type, **result.headers}
        )
        self._test_only_last_response = response
        self.last_response = response
        return response
