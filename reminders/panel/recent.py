"""Answers kept for a short while: a month's usage report is read again from a cache for a
minute rather than counted again on every view.

A report of a busy month counts tens of thousands of notices and their attempts (about 400 ms
on PostgreSQL with a million notices in the account); people open it, change the language,
go back to it. A minute-old report is as good as a new one, and a past month no longer changes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    """Values by key, each kept for ``keep_for`` seconds; the oldest go past ``most`` keys."""

    def __init__(
        self, keep_for: float, most: int = 256, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keep_for = keep_for
        self._most = most
        self._clock = clock
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The value kept for ``key``, or ``make()``'s, kept from now on. Two callers at once
        may both make it; the one made last is kept (making it twice costs only time)."""
        now = self._clock()
        with self._lock:
            found = self._values.get(key)
            if found is not None and now - found[0] < self._keep_for:
                return found[1]
        value = make()
        with self._lock:
            self._values[key] = (now, value)
            self._values.move_to_end(key)
            while len(self._values) > self._most:
                self._values.popitem(last=False)
        return value
