"""What keeps one gateway link busy but not overrun: its threads, and whether it is down.

``LinkPool`` is a fixed number of threads, the link's concurrency, taking work transactional
first: a plain ``ThreadPoolExecutor`` would queue a card alert behind a bulk batch already
waiting for the same link. ``LinkHealth`` counts consecutive transient failures; after
``down_after`` of them the link is down for ``cool_off`` seconds, then one message tries it
again (and a failure puts it straight back down).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final, TypeVar

from reminders.models import Priority

log = logging.getLogger(__name__)

DOWN_AFTER: Final = 3  # consecutive transient failures
COOL_OFF: Final = 30.0  # seconds a link is left alone once down

T = TypeVar("T")
_Work = tuple[int, int, Callable[[], Any] | None, Future[Any] | None]


class LinkPool:
    """``size`` threads running what is submitted, the transactional lane's first."""

    def __init__(self, name: str, size: int) -> None:
        self._queue: queue.PriorityQueue[_Work] = queue.PriorityQueue()
        self._order = itertools.count()  # first come, first served within a lane
        self._busy_lock = threading.Lock()
        self._busy = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"link-{name}-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, lane: str, work: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        rank = 0 if lane == Priority.transactional else 1
        self._queue.put((rank, next(self._order), work, future))
        return future

    def _run(self) -> None:
        while True:
            _, _, work, future = self._queue.get()
            if work is None or future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            with self._busy_lock:
                self._busy += 1
            try:
                future.set_result(work())
            except BaseException as exc:
                future.set_exception(exc)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    @property
    def in_flight(self) -> int:
        """How many of its threads are at work now."""
        with self._busy_lock:
            return self._busy

    def close(self) -> None:
        """Stop the threads once the work already submitted is done."""
        for _ in self._threads:
            self._queue.put((2, next(self._order), None, None))
        for thread in self._threads:
            thread.join(timeout=30)


class LinkHealth:
    """Whether a link is down: ``down_after`` transient failures in a row, for ``cool_off``."""

    def __init__(
        self,
        name: str,
        *,
        down_after: int = DOWN_AFTER,
        cool_off: float = COOL_OFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.down_after = down_after
        self.cool_off = cool_off
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._down_until: float | None = None

    def is_down(self) -> bool:
        with self._lock:
            return self._down_until is not None and self._clock() < self._down_until

    def answered(self) -> None:
        """The gateway answered (took the message, or refused it for good): the link is up."""
        with self._lock:
            if self._down_until is not None:
                log.warning("link %s is up again", self.name)
            self._failures = 0
            self._down_until = None

    def failed(self) -> None:
        """A try that never reached the gateway, or got no answer from it."""
        with self._lock:
            self._failures += 1
            if self._failures < self.down_after:
                return
            was_down = self._down_until is not None and self._clock() < self._down_until
            self._down_until = self._clock() + self.cool_off
            if not was_down:
                log.warning(
                    "link %s is down after %d failures in a row; its messages take the next "
                    "link of their route for %g s",
                    self.name,
                    self._failures,
                    self.cool_off,
                )
