"""Requests to the app as Twilio makes them: signed, with Twilio's retries, failures logged by code.

Retries follow the URL's `#rc=…&rp=…` overrides (twilio.md §1); by default one retry, on a failed
connect only (`rp=ct`, unconfirmed upstream, so the default policy is an emulator option).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from .transport import ConnectFailure, FormData, Transport, WebhookResponse, signature, split_overrides

log = logging.getLogger("koe.emulator")


@dataclass(frozen=True)
class Outcome:
    """A webhook's result: `response` on a 2xx, else the Twilio error `code` and a message."""

    url: str
    response: WebhookResponse | None
    code: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.response is not None and self.code is None


class Webhooks:
    def __init__(
        self,
        transport: Transport,
        auth_token: str,
        on_error: Callable[[int, str, str | None, str], None],
        default_retries: int = 1,
        default_retry_policy: str = "ct",
    ) -> None:
        self.transport = transport
        self.auth_token = auth_token
        self.on_error = on_error
        self.default_retries = default_retries
        self.default_retry_policy = default_retry_policy
        self.sent = 0

    def request(
        self, url: str, method: str, form: FormData, call_sid: str | None = None, log_errors: bool = True
    ) -> Outcome:
        target, overrides = split_overrides(url)
        method = (method or "POST").upper()
        if method == "GET" and form:
            target = target + ("&" if "?" in target else "?") + urlencode(form)
            body: FormData = []
        else:
            body = form
        headers = {
            "X-Twilio-Signature": signature(self.auth_token, target, body),
            "User-Agent": "TwilioProxy/1.1 (koe-emulator)",
            "I-Twilio-Idempotency-Token": f"{call_sid or '-'}-{self.sent}",
        }
        retries = _int(overrides.get("rc"), self.default_retries)
        policy = set((overrides.get("rp") or self.default_retry_policy).split(","))
        attempt = 0
        while True:
            attempt += 1
            self.sent += 1
            outcome = self._once(target, method, body, headers)
            retry = outcome.code is not None and attempt <= retries and _retryable(outcome, policy)
            if not retry:
                break
            log.info("emulator retries %s %s after error %s", method, target, outcome.code)
        if outcome.code is not None and log_errors:
            self.on_error(outcome.code, target, call_sid, outcome.message)
        return outcome

    def _once(self, url: str, method: str, body: FormData, headers: dict[str, str]) -> Outcome:
        try:
            response = self.transport.request(method, url, body, headers)
        except ConnectFailure as exc:
            return Outcome(url, None, 11205, f"HTTP connection failure: {exc}")
        except TimeoutError as exc:
            return Outcome(url, None, 11200, f"HTTP retrieval failure: timeout: {exc}")
        if not 200 <= response.status < 300:
            return Outcome(url, response, 11200, f"HTTP retrieval failure: status {response.status}")
        return Outcome(url, response)


def _retryable(outcome: Outcome, policy: set[str]) -> bool:
    if "all" in policy:
        return True
    if outcome.code == 11205:
        return "ct" in policy
    if outcome.response is None:
        return "rt" in policy
    status = outcome.response.status
    return (400 <= status < 500 and "4xx" in policy) or (status >= 500 and "5xx" in policy)


def _int(value: str | None, default: int) -> int:
    try:
        return max(0, min(5, int(value))) if value is not None else default
    except ValueError:
        return default
