"""Status callbacks as Twilio sends them: separate requests that may arrive late, out of order or twice.

twilio.md §4: events fire in order but as separate requests, so they may arrive out of order; the
app must sort by SequenceNumber and be idempotent on CallSid+SequenceNumber. The switches here make
that happen on purpose, with the scheduler's seeded random generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .clock import Scheduler
from .transport import FormData


@dataclass(frozen=True)
class SentCallback:
    """One status callback the emulator sent (a duplicate appears twice)."""

    at: datetime
    url: str
    form: FormData

    def get(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.form if key == name), default)


class CallbackDispatcher:
    def __init__(
        self,
        scheduler: Scheduler,
        send: Callable[[str, str, FormData, str | None], None],
        jitter: float = 0.0,
        reorder: bool = False,
        duplicate: bool = False,
    ) -> None:
        self.scheduler = scheduler
        self._send = send
        self.jitter = jitter
        self.reorder = reorder
        self.duplicate = duplicate
        self._held: dict[str, list[tuple[str, str, FormData]]] = {}

    def dispatch(
        self, key: str, url: str, method: str, form: FormData, final: bool, call_sid: str | None
    ) -> None:
        """Send one callback; with `reorder`, a call's callbacks are held until its final one and then
        sent in an order that is never their original order."""
        if not self.reorder:
            self._schedule(url, method, form, call_sid, 0.0)
            return
        held = self._held.setdefault(key, [])
        held.append((url, method, form))
        if not final:
            return
        del self._held[key]
        order = list(held)
        self.scheduler.rng.shuffle(order)
        if len(order) > 1 and order == held:
            order.reverse()
        for index, (u, m, f) in enumerate(order):
            self._schedule(u, m, f, call_sid, index * 0.01)

    def flush(self) -> None:
        """Send whatever is held (calls that never reached a final status)."""
        for key in list(self._held):
            held = self._held.pop(key)
            for index, (u, m, f) in enumerate(reversed(held)):
                self._schedule(u, m, f, None, index * 0.01)

    def _schedule(self, url: str, method: str, form: FormData, call_sid: str | None, delay: float) -> None:
        rng = self.scheduler.rng
        if self.jitter > 0:
            delay += rng.uniform(0, self.jitter)
        self.scheduler.call_later(delay, lambda: self._send(url, method, form, call_sid))
        if self.duplicate:
            again = delay + rng.uniform(0.05, max(self.jitter, 1.0))
            self.scheduler.call_later(again, lambda: self._send(url, method, form, call_sid))
