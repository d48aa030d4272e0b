"""One structured log line per Twilio webhook, on the logger "koe.webhooks".

    webhook route=/twilio/voice call_sid=CA… outcome=enqueued status=200 ms=3.4

The same fields ride on the record as `record.webhook` (a dict) for JSON log handlers. A view names
its outcome with `outcome("enqueued")`; the line is written when the response is ready, so 403s from
the signature check and answers of the error handler are logged too. A webhook that changed nothing
and will come again (a waitUrl fetch that only plays music) may log at DEBUG: 1,000 waiting callers
make 40 such lines a second, and the line cost a fifth of such a fetch's CPU (issue #5, item 11).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Response, g, request

log = logging.getLogger("koe.webhooks")


def begin() -> None:
    g.webhook_started = time.perf_counter()
    g.webhook_outcome = None


def outcome(name: str) -> None:
    """Name how this webhook ended ("enqueued", "unknown_number", "duplicate" …)."""
    g.webhook_outcome = name


def finish(response: Response) -> Response:
    started = g.pop("webhook_started", None)
    if started is None:
        return response
    name = g.pop("webhook_outcome", None) or ("forbidden" if response.status_code == 403 else "answered")
    write(request.path, request.values.get("CallSid") or "-", name, response.status_code, started)
    return response


def write(
    route: str, call_sid: str, outcome_name: str, status: int, started: float, level: int = logging.INFO
) -> None:
    """The line itself; `started` is the request's `time.perf_counter()` at its start."""
    if not log.isEnabledFor(level):
        return
    ms = round((time.perf_counter() - started) * 1000, 1)
    fields: dict[str, Any] = {
        "route": route,
        "call_sid": call_sid,
        "outcome": outcome_name,
        "status": status,
        "ms": ms,
    }
    line = f"route={route} call_sid={call_sid} outcome={outcome_name} status={status} ms={ms}"
    # makeRecord and handle, not log.log: the fields say where the line comes from, and log.log's
    # walk up the stack for the caller's file and line was a quarter of the line's instructions
    # (bench/waiturl_instructions.py: 916,000 -> 891,000 per announcing fetch).
    record = log.makeRecord(
        log.name, level, __file__, 0, "webhook %s", (line,), None, "write", {"webhook": fields}
    )
    log.handle(record)
