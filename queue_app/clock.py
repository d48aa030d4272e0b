"""The injectable clock: `SystemClock` in production, `ManualClock` in tests and virtual time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; always timezone-aware UTC."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        with self._lock:
            self._now = at.astimezone(UTC)

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, **kwargs)
            return self._now


def utc(text: str) -> datetime:
    """`utc("2026-03-30 05:59")` -> an aware UTC datetime; for tests and fixtures."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
