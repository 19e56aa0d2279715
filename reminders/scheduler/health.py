"""What the scheduler knows about its own loop, so that a stalled one says so.

APScheduler 3 runs its loop on one thread and does not catch a job store's errors in every
place it calls the store: one database error used to end that thread for good while the
process went on answering "ready" and holding the scheduler lock. The loop now records each
pass here. A run of failures longer than ``stall_after`` (or a loop thread that ended) is a
*problem*: ``/readyz`` answers 503 with it, and a leader gives up the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

BACKOFF_FIRST = 0.5  # seconds before the first retry of a failed pass
BACKOFF_CAP = 5.0  # never longer, so the loop is back within seconds of the database


def describe(exc: BaseException) -> str:
    """An error as ``/readyz`` shows it: its type only (the route needs no key, and a driver's
    message names hosts and ports); the log has the rest."""
    return type(exc).__name__


class LoopHealth:
    """Failures in a row, the time of the last good pass, and the verdict drawn from them."""

    def __init__(
        self, *, stall_after: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_after = stall_after
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0  # consecutive failed passes (or probes)
        self._failing_since: float | None = None
        self.last_error: str | None = None
        self.last_ok_at: datetime | None = None
        self.thread_alive = True
        self.thread_restarts = 0

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self._failing_since = None
            self.last_error = None
            self.last_ok_at = datetime.now(UTC)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            if self._failing_since is None:
                self._failing_since = self._clock()
            self.last_error = describe(exc)

    def backoff(self) -> float:
        """Seconds to wait before the next try: doubling from half a second, at most five."""
        return min(BACKOFF_FIRST * 2 ** max(self.failures - 1, 0), BACKOFF_CAP)

    def failing_for(self) -> float:
        with self._lock:
            return 0.0 if self._failing_since is None else self._clock() - self._failing_since

    def problem(self) -> str | None:
        """Why the scheduler cannot run, or None while it can (a short run of failures can)."""
        if not self.thread_alive:
            return "the scheduler's thread has stopped"
        failing = self.failing_for()
        if self.failures and failing >= self.stall_after:
            return f"the job store has failed for {failing:.0f} s ({self.last_error})"
        return None

    def snapshot(self) -> dict[str, Any]:
        """For ``/readyz``: what an operator needs to tell a blip from an outage."""
        return {
            "last_loop_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
            "store_failures": self.failures,
            "failing_for": round(self.failing_for(), 1),
            "last_error": self.last_error,
            "thread_alive": self.thread_alive,
            "thread_restarts": self.thread_restarts,
        }
