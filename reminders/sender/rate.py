"""The global send rate, spent on the transactional lane first.

One rate (``REMINDERS_SEND_RATE`` messages per second) is shared by every process that sends,
through Redis when one is configured. It is a GCRA (generic cell rate algorithm): the state is
a single instant, the "theoretical arrival time" (TAT) at which the budget is spent up to. Each
message pushes it ``1/rate`` further.

- A bulk batch may go only when the TAT is not in the future, so bulk never runs ahead of the
  rate and never holds a reserve others must wait behind.
- A transactional batch may go while the TAT is at most ``TRANSACTIONAL_LEAD`` ahead: it jumps
  whatever bulk backlog there is, and the bulk lane pays for it by waiting longer. If
  transactional traffic alone fills the rate, bulk waits until it stops.

Over any long stretch no more than ``rate`` messages a second go out, plus at most one lead's
worth of transactional messages once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Final

import redis

from reminders.models import Priority

log = logging.getLogger(__name__)

TRANSACTIONAL_LEAD: Final = 1.0  # seconds of budget a transactional message may borrow
# A batch is at most this much of a second's budget, so bulk goes out smoothly rather than in
# one burst a second, and a transactional message finds the budget at most this far spent (it
# may borrow a whole TRANSACTIONAL_LEAD). Not less: a batch costs about ten statements whatever
# its size, and with a tenth of a second the bulk lane's two threads fell 15 % short of a rate
# of 200 while a burst of 200,000 was being marked due on the same database (bench/fair_share).
SLICE: Final = 0.2
_MAX_NAP: Final = 0.25  # a waiting sender looks at the stop signal at least this often


class SendRate:
    """No limit: what runs when ``REMINDERS_SEND_RATE`` is not set."""

    rate: float | None = None  # messages per second; None: no limit

    def slice_size(self, batch_size: int) -> int:
        """How many messages to ask for at a time."""
        return batch_size

    def acquire(self, lane: str, count: int, stop: threading.Event | None = None) -> bool:
        """Wait until ``count`` messages of ``lane`` may go; False if ``stop`` was set first."""
        while True:
            wait = self._try(lane, count)
            if wait <= 0:
                return True
            nap = min(wait, _MAX_NAP)
            if stop is not None:
                if stop.wait(nap):
                    return False
            else:
                time.sleep(nap)

    def _try(self, lane: str, count: int) -> float:
        """Take the budget for ``count`` messages and return 0, or return seconds to wait."""
        return 0.0

    def give_back(self, lane: str, count: int) -> None:
        """Return the budget of ``count`` messages taken and not sent (a batch that found fewer
        due than it asked for), so that the rate is spent on messages, not on asking."""


class LocalRate(SendRate):
    """The rate within one process: enough when one process sends (the embedded default)."""

    def __init__(
        self,
        rate: float,
        *,
        lead: float = TRANSACTIONAL_LEAD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("a send rate must be positive")
        self.rate: float = rate
        self.lead = lead
        self._interval = 1.0 / rate
        self._clock = clock
        self._tat = 0.0
        self._lock = threading.Lock()

    def _allowed(self, lane: str) -> float:
        """How far ahead of now the budget may already be spent for ``lane`` to go."""
        return self.lead if lane == Priority.transactional else 0.0

    def slice_size(self, batch_size: int) -> int:
        return max(1, min(batch_size, math.floor(self.rate * SLICE)))

    def _try(self, lane: str, count: int) -> float:
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            allowed = self._allowed(lane)
            ahead = tat - now
            if ahead > allowed:
                return ahead - allowed
            self._tat = tat + count * self._interval
            return 0.0

    def give_back(self, lane: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self._tat = max(self._clock(), self._tat - count * self._interval)


# KEYS[1]: the TAT in microseconds of Redis's own clock, so every instance reads one clock.
# ARGV: microseconds per message, messages, microseconds the lane may run ahead.
# Returns 0 (taken) or the microseconds to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ahead = tat - now
local allowed = tonumber(ARGV[3])
if ahead > allowed then return math.ceil(ahead - allowed) end
local new = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 0
"""


# KEYS[1]: the TAT; ARGV: microseconds per message, messages given back. Never before now.
_GIVE_BACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tat - tonumber(ARGV[1]) * tonumber(ARGV[2])
if new <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 0
"""


class RedisRate(LocalRate):
    """The rate shared by every instance through one Redis key.

    If Redis cannot be reached the process keeps to the rate on its own (logged once), rather
    than stop sending: only the elected instance fires notices, so the rate still holds.
    """

    def __init__(
        self, rate: float, client: redis.Redis, *, key: str, lead: float = TRANSACTIONAL_LEAD
    ) -> None:
        super().__init__(rate, lead=lead)
        self._client = client
        self._key = key
        self._script = client.register_script(_GCRA)
        self._give_back = client.register_script(_GIVE_BACK)
        self._degraded = False

    def _try(self, lane: str, count: int) -> float:
        allowed = self._allowed(lane)
        try:
            micros = self._script(
                keys=[self._key],
                args=[round(1_000_000 * self._interval), count, round(1_000_000 * allowed)],
            )
        except redis.RedisError as exc:
            if not self._degraded:
                log.warning("send rate: Redis unreachable (%s); keeping to it locally", exc)
                self._degraded = True
            return super()._try(lane, count)
        if self._degraded:
            log.info("send rate: shared through Redis again")
            self._degraded = False
        return int(micros) / 1_000_000

    def give_back(self, lane: str, count: int) -> None:
        if count <= 0:
            return
        if self._degraded:
            super().give_back(lane, count)
            return
        try:
            self._give_back(keys=[self._key], args=[round(1_000_000 * self._interval), count])
        except redis.RedisError:
            pass  # the budget is spent a little early: the rate is kept, only less of it used


def make_rate(rate: float | None, client: redis.Redis | None, *, prefix: str) -> SendRate:
    if not rate:
        return SendRate()
    if client is None:
        return LocalRate(rate)
    return RedisRate(rate, client, key=f"{prefix}send-rate")
