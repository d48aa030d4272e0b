"""The emulator's two clocks: a discrete-event scheduler in virtual time, and the same in real time.

Every event is `(time, seq, callback)` on a heap, so two events at the same instant run in the order
they were scheduled, and a run with the same seed is the same run. In virtual time the scheduler sets
the app's `ManualClock` to each event's time before running it, so the app and the emulator agree on
"now". In real time (the live demo over HTTP) a background thread runs each event when the wall clock
reaches it.
"""

from __future__ import annotations

import heapq
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..clock import ManualClock


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    callback: Callable[[], None] = field(compare=False)
    background: bool = field(default=False, compare=False)
    canceled: bool = field(default=False, compare=False)
    owner: Scheduler | None = field(default=None, compare=False, repr=False)

    def cancel(self) -> None:
        if not self.canceled:
            self.canceled = True
            if self.owner is not None and not self.background:
                self.owner._foreground -= 1


class Scheduler:
    """Virtual time: nothing happens until `advance`, `run_until` or `run_until_idle` is called."""

    def __init__(self, clock: ManualClock | None = None, seed: int = 0) -> None:
        self.clock = clock or ManualClock()
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self._heap: list[Event] = []
        self._seq = 0
        self._foreground = 0
        self._now = self.clock.now()
        self.after_event: Callable[[], None] | None = None
        self.events_run = 0

    def now(self) -> datetime:
        # The clock is shared with the app: when a test (or anyone) moves it forward between events,
        # virtual time follows rather than setting it back.
        shared = self.clock.now()
        if shared > self._now:
            self._now = shared
        return self._now

    def call_at(self, at: datetime, callback: Callable[[], None], background: bool = False) -> Event:
        """Schedule `callback`; `background` events (periodic ticks) do not keep the run busy."""
        with self.lock:
            self._seq += 1
            event = Event(max(at, self.now()), self._seq, callback, background, owner=self)
            if not background:
                self._foreground += 1
            heapq.heappush(self._heap, event)
            self._wake()
            return event

    def call_later(self, seconds: float, callback: Callable[[], None], background: bool = False) -> Event:
        return self.call_at(self.now() + timedelta(seconds=max(0.0, seconds)), callback, background)

    def pending(self) -> int:
        """Scheduled events that are not background ticks and not canceled."""
        return self._foreground

    def next_time(self) -> datetime | None:
        with self.lock:
            self._drop_canceled()
            return self._heap[0].at if self._heap else None

    def run_until(self, at: datetime) -> None:
        while True:
            with self.lock:
                self._drop_canceled()
                if not self._heap or self._heap[0].at > at:
                    break
                self._run(self._pop())
        with self.lock:
            if at > self._now:
                self._set_now(at)

    def advance(self, seconds: float) -> datetime:
        self.run_until(self._now + timedelta(seconds=seconds))
        return self._now

    def run_until_idle(self, max_seconds: float = 24 * 3600) -> datetime:
        """Run until only background events remain, or `max_seconds` of virtual time have passed."""
        limit = self._now + timedelta(seconds=max_seconds)
        while True:
            with self.lock:
                self._drop_canceled()
                if not self._heap or self._foreground <= 0 or self._heap[0].at > limit:
                    break
                self._run(self._pop())
        return self._now

    def _run(self, event: Event) -> None:
        if event.at > self._now:
            self._set_now(event.at)
        self.events_run += 1
        event.callback()
        if self.after_event is not None:
            self.after_event()

    def _pop(self) -> Event:
        event = heapq.heappop(self._heap)
        if not event.background:
            self._foreground -= 1
        event.canceled = True  # a late cancel() of an event that already ran changes nothing
        return event

    def _set_now(self, at: datetime) -> None:
        self._now = at
        self.clock.set(at)

    def _drop_canceled(self) -> None:
        while self._heap and self._heap[0].canceled:
            heapq.heappop(self._heap)

    def _wake(self) -> None:
        """Real time overrides this to wake its thread."""


class RealTimeScheduler(Scheduler):
    """The same scheduler, with events run by a daemon thread when the wall clock reaches them."""

    def __init__(self, clock: ManualClock | None = None, seed: int = 0) -> None:
        super().__init__(clock or ManualClock(datetime.now(UTC)), seed)
        self._cond = threading.Condition(self.lock)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._set_now(datetime.now(UTC))

    def now(self) -> datetime:
        return max(self._now, datetime.now(UTC))

    def call_later(self, seconds: float, callback: Callable[[], None], background: bool = False) -> Event:
        return self.call_at(self.now() + timedelta(seconds=max(0.0, seconds)), callback, background)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="koe-emulator", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _wake(self) -> None:
        self._cond.notify_all()

    def _loop(self) -> None:
        with self._cond:
            while not self._stopping:
                self._drop_canceled()
                wall = datetime.now(UTC)
                if self._heap and self._heap[0].at <= wall:
                    event = self._pop()
                    self._set_now(wall)
                    try:
                        self._run(event)
                    except Exception:  # one bad event must not stop the demo's telephone network
                        import logging

                        logging.getLogger("koe.emulator").exception("emulator event failed")
                    continue
                timeout = (self._heap[0].at - wall).total_seconds() if self._heap else 1.0
                self._cond.wait(timeout=min(max(timeout, 0.0), 1.0))
