"""How the emulator reaches the app's webhooks: in-process through WSGI, or over HTTP.

Every request is signed as Twilio signs it (twilio.md §2): base64(HMAC-SHA1(auth token, URL +
the POST body fields sorted by name, each as name+value)). The URL's `#` fragment carries Twilio's
connection overrides (twilio.md §1); it is never sent and never signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

log = logging.getLogger("koe.emulator")

FormData = list[tuple[str, str]]

# twilio.md §1: the hard limit for the first response byte of call-processing requests.
READ_TIMEOUT_S = 15.0


class ConnectFailure(Exception):
    """The request never reached the app (connection refused, DNS, TLS): retried per `rp=ct`."""


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    content_type: str
    body: bytes
    elapsed_s: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Transport(Protocol):
    def request(self, method: str, url: str, form: FormData, headers: Mapping[str, str]) -> WebhookResponse:
        """Raise ConnectFailure when the server cannot be reached, TimeoutError past READ_TIMEOUT_S."""
        ...


def signature(auth_token: str, url: str, form: Iterable[tuple[str, str]] = ()) -> str:
    """X-Twilio-Signature for `url` and the POST body `form` (pass nothing for a GET)."""
    grouped: dict[str, set[str]] = {}
    for name, value in form:
        grouped.setdefault(name, set()).add(value)
    # Repeated keys: values sorted, exact duplicates dropped, as twilio-python's validator does.
    payload = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def split_overrides(url: str) -> tuple[str, dict[str, str]]:
    """`https://app/voice#rc=2&rp=all` -> (`https://app/voice`, {"rc": "2", "rp": "all"})."""
    base, _, fragment = url.partition("#")
    overrides: dict[str, str] = {}
    for part in fragment.split("&") if fragment else []:
        key, _, value = part.partition("=")
        overrides[key] = value
    return base, overrides


class WsgiTransport:
    """Calls a WSGI app in-process, for virtual time. The request is built for the full absolute URL,
    so the host, path and query the app sees are the ones that were signed.

    A response is "slower than 15 s" when the wall time measured with `timer` exceeds READ_TIMEOUT_S;
    tests pass a fake timer to provoke it without waiting.
    """

    def __init__(self, app: Any, timer: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self.timer = timer
        self.requests = 0
        self.last_exception: Exception | None = None

    def request(self, method: str, url: str, form: FormData, headers: Mapping[str, str]) -> WebhookResponse:
        from werkzeug.test import Client

        parts = urlsplit(url)
        base_url = f"{parts.scheme}://{parts.netloc}/"
        path = parts.path or "/"
        client = Client(self.app)
        self.requests += 1
        started = self.timer()
        kwargs: dict[str, Any] = {"base_url": base_url, "method": method, "query_string": parts.query}
        if method != "GET":
            kwargs["data"] = _multidict(form)
            kwargs["content_type"] = "application/x-www-form-urlencoded"
        try:
            response = client.open(path, headers=dict(headers), **kwargs)
        except Exception as exc:  # an app under test propagates its exceptions; Twilio would see a 500
            self.last_exception = exc
            log.exception("the app raised while answering %s %s", method, url)
            return WebhookResponse(500, "text/plain", repr(exc).encode(), self.timer() - started)
        body = response.get_data()
        elapsed = self.timer() - started
        response.close()
        if elapsed > READ_TIMEOUT_S:
            raise TimeoutError(f"no response within {READ_TIMEOUT_S:.0f} s ({elapsed:.1f} s)")
        return WebhookResponse(response.status_code, response.headers.get("Content-Type", ""), body, elapsed)


class HttpTransport:
    """Real HTTP with `requests`, for the live demo; 15 s read timeout as Twilio's."""

    def __init__(self, connect_timeout: float = 5.0, read_timeout: float = READ_TIMEOUT_S) -> None:
        self.session = requests.Session()
        self.timeouts = (connect_timeout, read_timeout)

    def request(self, method: str, url: str, form: FormData, headers: Mapping[str, str]) -> WebhookResponse:
        started = time.perf_counter()
        try:
            if method == "GET":
                response = self.session.get(url, headers=dict(headers), timeout=self.timeouts)
            else:
                response = self.session.request(
                    method, url, data=form, headers=dict(headers), timeout=self.timeouts
                )
        except requests.exceptions.ReadTimeout as exc:
            raise TimeoutError(str(exc)) from exc
        except requests.exceptions.ConnectionError as exc:
            raise ConnectFailure(str(exc)) from exc
        return WebhookResponse(
            response.status_code,
            response.headers.get("Content-Type", ""),
            response.content,
            time.perf_counter() - started,
        )


def _multidict(form: FormData) -> Any:
    from werkzeug.datastructures import MultiDict

    return MultiDict(form)
