"""Failed sign-ins slow down whoever guesses passwords: after ``FREE`` failures for one email,
each further try must wait, twice as long after every failure (1 s, 2 s, 4 s ... up to
``LONGEST``). A success clears the count; an hour without failures forgets it.

The count is per email, not per address: a guesser spreads over addresses more easily than over
one person's account. It refuses early rather than sleeping, so a flood of tries holds no
worker. With Redis every process shares the count; without it each keeps its own.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

import redis

log = logging.getLogger(__name__)

FREE: Final = 5
LONGEST: Final = 15 * 60.0
FORGET_AFTER: Final = 3600.0


def delay_after(failures: int) -> float:
    """Seconds to wait after ``failures`` failed tries in a row."""
    if failures < FREE:
        return 0.0
    return min(LONGEST, 2.0 ** (failures - FREE))


def _key(email: str) -> str:
    # Hashed: the throttle's keys in Redis should not list who tried to sign in.
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:32]


class LoginThrottle:
    """In this process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # email key -> (failures, last failure at, may try again at)
        self._failures: dict[str, tuple[int, float, float]] = {}

    def wait_left(self, email: str) -> float:
        """Seconds before ``email`` may try again (0: now)."""
        with self._lock:
            found = self._failures.get(_key(email))
            if found is None:
                return 0.0
            return max(0.0, found[2] - self._clock())

    def failed(self, email: str) -> float:
        """Count a failure; returns the seconds before the next try."""
        key = _key(email)
        now = self._clock()
        with self._lock:
            count, last, _ = self._failures.get(key, (0, now, now))
            if now - last > FORGET_AFTER:
                count = 0
            count += 1
            wait = delay_after(count)
            self._failures[key] = (count, now, now + wait)
            if len(self._failures) > 100_000:  # a flood of made-up emails: drop the oldest
                for old in sorted(self._failures, key=lambda k: self._failures[k][1])[:50_000]:
                    del self._failures[old]
            return wait

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop(_key(email), None)


class RedisLoginThrottle(LoginThrottle):
    """Shared by every process through Redis; in this process alone while Redis is away."""

    def __init__(self, client: redis.Redis, prefix: str = "reminders:login:") -> None:
        super().__init__()
        self._redis = client
        self._prefix = prefix

    def wait_left(self, email: str) -> float:
        try:
            ms = self._redis.pttl(self._prefix + "until:" + _key(email))
        except redis.RedisError:
            return super().wait_left(email)
        return max(0.0, int(ms) / 1000) if int(ms) > 0 else 0.0

    def failed(self, email: str) -> float:
        key = _key(email)
        try:
            pipe = self._redis.pipeline()
            pipe.incr(self._prefix + "count:" + key)
            pipe.expire(self._prefix + "count:" + key, int(FORGET_AFTER))
            count = int(pipe.execute()[0])
            wait = delay_after(count)
            if wait > 0:
                self._redis.set(self._prefix + "until:" + key, "1", px=int(wait * 1000))
            return wait
        except redis.RedisError as exc:
            log.warning("sign-in failures counted in this process alone: Redis: %s", exc)
            return super().failed(email)

    def succeeded(self, email: str) -> None:
        key = _key(email)
        try:
            self._redis.delete(self._prefix + "count:" + key, self._prefix + "until:" + key)
        except redis.RedisError:
            pass
        super().succeeded(email)
