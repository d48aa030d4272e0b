"""What waiting callers heard, written behind the waitUrl's answers, in batches.

A waitUrl fetch that announces something records what the caller heard (`Call.announcement_state`).
Written inline, that is a second round trip to the database on the request, costing about as much
CPU as the rest of the fetch (`bench/waiturl_cost.py`). Here the request hands the write over and
answers; one thread per process writes whatever has gathered, in one statement (on PostgreSQL,
`calls.write_heard`). Under load the batches grow by themselves: the writer is busy while
more requests hand over their writes.

Until a write is done, this process reads it over the row (`overlay`), so its next fetch of that
caller knows what was said. Another process may read the row before the write lands, a few
milliseconds at most; the worst that costs is an announcement heard twice, as a crash does with the
hot engine's asynchronous commit. A write carries the row's version as it was read: if the
dispatcher changed the call since, the write matches nothing and what the dispatcher wrote stays.
What the process holds at exit is written then (`atexit`); a write that fails is logged and dropped.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

log = logging.getLogger(__name__)
BATCH = 64  # writes that wake the writer at once
EVERY_SECONDS = 0.02  # otherwise it writes what has gathered this often

Write = dict[str, Any]  # the parameters of calls._WAIT_WRITE: id, version, state, estimate
WriteBatch = Callable[[Sequence[Write]], None]


class WaitWrites:
    def __init__(self, write_batch: WriteBatch, batch: int = BATCH, every: float = EVERY_SECONDS) -> None:
        self._write_batch = write_batch
        self._batch = batch
        self._every = every
        self._pending: dict[int, Write] = {}  # call id -> its newest write not yet done
        self._lock = threading.Lock()
        self._work = threading.Event()  # something is pending
        self._full = threading.Event()  # a batch's worth is pending: write now
        self._thread: threading.Thread | None = None
        self._pid = 0
        atexit.register(self.flush)

    def put(self, write: Write) -> None:
        """Hand a write over; a newer one for the same call replaces one still waiting."""
        with self._lock:
            self._pending[write["id"]] = write
            full = len(self._pending) >= self._batch
        self._ensure_thread()
        self._work.set()
        if full:
            self._full.set()

    def overlay(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """The waitUrl's row with this process's pending write over it, if it was made from the
        same version of the call (otherwise the write will match nothing: the row is what counts)."""
        with self._lock:
            write = self._pending.get(row["id"])
        if write is None or write["version"] != row["version"]:
            return row
        estimate = row["first_estimate_seconds"]
        return {
            **row,
            "announcement_state": write["state"],
            "first_estimate_seconds": estimate if estimate is not None else write["estimate"],
        }

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write everything pending now, in one batch; the number of writes sent.

        The batch is one statement, so it holds each row it updated until it ends. In the order
        of the calls' ids, two processes' batches lock rows they share in the same order: one
        waits for the other instead of both deadlocking (PostgreSQL would abort one after
        `deadlock_timeout` and its writes would be lost)."""
        with self._lock:
            batch = sorted(self._pending.values(), key=itemgetter("id"))
        if not batch:
            return 0
        try:
            self._write_batch(batch)
        except Exception:
            log.exception("announcement bookkeeping not written calls=%d", len(batch))
        with self._lock:
            for write in batch:
                if self._pending.get(write["id"]) is write:
                    del self._pending[write["id"]]
        return len(batch)

    def _ensure_thread(self) -> None:
        # Started on first use, in the process that serves (a forked worker has no threads).
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="koe-wait-writes", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        """Idle until something is pending, then gather for `every` seconds (or until a batch's
        worth is pending) and write it all: one round trip for many callers."""
        while True:
            self._work.wait()
            self._full.wait(self._every)
            # Cleared before the flush reads what is pending: a write handed over from here on
            # sets them again and is written in the next round.
            self._work.clear()
            self._full.clear()
            self.flush()
