"""What the scheduler knows about its own health, so that a stalled one says so.

APScheduler 3 runs its loop on one thread and does not catch a job store's errors in every
place it calls the store: one database error used to end that thread for good while the
process went on answering "ready" and holding the scheduler lock. Two things are now watched:

- ``loop``: each pass of the scheduler's loop over the job store;
- ``probe``: the watchdog's regular check that the database still takes a write. The loop
  alone would miss a full disk: with nothing new to fire it only reads, and reads still work.

A run of failures of either longer than ``stall_after``, or a loop thread that ended, is a
*problem*: ``/readyz`` answers 503 with it, and a leader gives up the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BACKOFF_FIRST = 0.5  # seconds before the first retry of a failed pass
BACKOFF_CAP = 5.0  # never longer, so the loop is back within seconds of the database

LOOP = "loop"
PROBE = "probe"
_WHAT = {LOOP: "the job store has failed", PROBE: "the database has refused a write"}


def describe(exc: BaseException) -> str:
    """An error as ``/readyz`` shows it: its type only (the route needs no key, and a driver's
    message names hosts and ports); the log has the rest."""
    return type(exc).__name__


@dataclass
class _Streak:
    failures: int = 0
    since: float | None = None
    error: str | None = None


class LoopHealth:
    """Failures in a row of each part, the last good pass, and the verdict drawn from them."""

    def __init__(
        self, *, stall_after: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_after = stall_after
        self._clock = clock
        self._lock = threading.Lock()
        self._streaks = {LOOP: _Streak(), PROBE: _Streak()}
        self.last_ok_at: datetime | None = None  # of the loop
        self.thread_alive = True
        self.thread_restarts = 0

    def succeeded(self, *parts: str) -> None:
        """The loop passed (the default), or the named parts did."""
        with self._lock:
            for part in parts or (LOOP,):
                self._streaks[part] = _Streak()
                if part == LOOP:
                    self.last_ok_at = datetime.now(UTC)

    def failed(self, exc: BaseException, part: str = LOOP) -> None:
        with self._lock:
            streak = self._streaks[part]
            streak.failures += 1
            if streak.since is None:
                streak.since = self._clock()
            streak.error = describe(exc)

    @property
    def failures(self) -> int:
        """Failures not yet followed by a success, of every part."""
        return sum(streak.failures for streak in self._streaks.values())

    def failures_of(self, part: str) -> int:
        return self._streaks[part].failures

    def backoff(self) -> float:
        """Seconds before the loop tries again: doubling from half a second, at most five."""
        failures = self._streaks[LOOP].failures
        return min(BACKOFF_FIRST * 2 ** max(failures - 1, 0), BACKOFF_CAP)

    def problem(self) -> str | None:
        """Why the scheduler cannot run, or None while it can (a short run of failures can)."""
        if not self.thread_alive:
            return "the scheduler's thread has stopped"
        now = self._clock()
        with self._lock:
            for part, streak in self._streaks.items():
                if streak.since is not None and now - streak.since >= self.stall_after:
                    return f"{_WHAT[part]} for {now - streak.since:.0f} s ({streak.error})"
        return None

    def snapshot(self) -> dict[str, Any]:
        """For ``/readyz``: what an operator needs to tell a blip from an outage."""
        now = self._clock()
        with self._lock:
            failing = [s.since for s in self._streaks.values() if s.since is not None]
            errors = [s.error for s in self._streaks.values() if s.error]
        return {
            "last_loop_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
            "store_failures": self.failures,
            "failing_for": round(now - min(failing), 1) if failing else 0.0,
            "last_error": errors[0] if errors else None,
            "thread_alive": self.thread_alive,
            "thread_restarts": self.thread_restarts,
        }
