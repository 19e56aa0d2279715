"""Waiting out a database that went away: which errors pass, and how long to wait between tries.

A PostgreSQL restart, a dropped connection or a full SQLite disk raise ``OperationalError`` (or
``InterfaceError``, or an error that invalidated its connection); trying again a little later
may succeed. Anything else (a constraint, a bug) fails the same way however often it is tried.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error that trying again later may get past."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def reason(exc: BaseException) -> str:
    """The first line of the driver's message: enough for a log line, no statement or data."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def log_failure(logger: logging.Logger, what: str, exc: BaseException, *args: object) -> None:
    """Log that ``what`` (a %-format of ``args``) failed with ``exc``: one line when the
    database went away, an expected fault that the caller waits out, and the traceback for
    anything else, which is a bug."""
    if is_transient(exc):
        logger.warning(f"{what} failed (%s)", *args, reason(exc))
    else:
        logger.exception(f"{what} failed (%s)", *args, reason(exc))


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter, from ``first`` to at most ``cap`` seconds a wait.

    ``give_up_after`` bounds the tries that may be abandoned (a batch not claimed yet is left
    scheduled for the periodic check); a write that must not be lost ignores it.
    """

    first: float = 0.25
    cap: float = 4.0
    give_up_after: float = 30.0

    def delay(self, tries: int) -> float:
        """Seconds to wait after the ``tries``-th failure (1, 2, ...)."""
        return min(self.first * 2 ** max(tries - 1, 0), self.cap) * random.uniform(0.8, 1.2)

    def pause(self, tries: int, stop: threading.Event | None) -> bool:
        """Wait after the ``tries``-th failure; True if ``stop`` was set before or meanwhile."""
        if stop is None:
            time.sleep(self.delay(tries))
            return False
        return stop.wait(self.delay(tries))


def until_written(
    write: Callable[[], T], backoff: Backoff, stop: threading.Event | None, *, what: str
) -> tuple[bool, T | None]:
    """Run ``write`` until it succeeds, waiting out transient database errors.

    It gives up only on an error that is not transient (logged with its traceback), or when
    ``stop`` is set and one more try after it failed too; returns (done, what ``write`` gave).
    """
    tries = 0
    while True:
        try:
            return True, write()
        except Exception as exc:
            if not is_transient(exc):
                log.exception("%s failed", what)
                return False, None
            tries += 1
            if tries == 1 or tries % 10 == 0:
                log.warning(
                    "%s failed (%s); trying again until the database answers", what, reason(exc)
                )
            if stop is not None and stop.is_set():
                log.error("%s failed (%s) as the service stopped; giving up", what, reason(exc))
                return False, None
            backoff.pause(tries, stop)
