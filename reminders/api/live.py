"""The live statistics stream's numbers, counted once for all its clients.

Each client of ``GET /api/v1/stats/stream`` used to count the last day's notices itself, in a
worker thread that then slept there until its next tick: 40 clients held 40 threads (all AnyIO
has) and as many connections, and the API froze. Now a stream waits on the event loop between
ticks, holding no thread and no connection, and takes its numbers from one count shared by every
client, made again once it is ``FRESH_FOR`` seconds old: at most two queries a second on one
connection, however many clients there are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy.engine import Engine

from reminders.accounts.scoping import scoped_session
from reminders.db import utcnow
from reminders.stats import Counts, notice_stats

FRESH_FOR = 0.5  # seconds: the shortest tick a client may ask for
WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    totals: Counts


class LiveTotals:
    """The totals of each account's notices due in the day up to now, shared by the stream's
    clients of that account."""

    def __init__(
        self,
        engine: Engine,
        dlr_timeout: timedelta,
        window: Callable[[datetime], tuple[datetime, datetime]] | None = None,
    ) -> None:
        self.engine = engine
        self.dlr_timeout = dlr_timeout
        # now -> the span counted: the day up to now, unless told otherwise (the control panel
        # counts the day on the account's clock).
        self.window = window or (lambda now: (now - WINDOW, now))
        # Per account: the count being made or last made, and when it was started.
        self._counting: dict[int, asyncio.Future[Snapshot]] = {}
        self._started: dict[int, float] = {}

    async def latest(self, account_id: int) -> Snapshot:
        """A count at most ``FRESH_FOR`` seconds old; a client that comes while one is being
        made waits for that one."""
        counting = self._counting.get(account_id)
        stale = time.monotonic() - self._started.get(account_id, 0.0) >= FRESH_FOR
        if counting is None or (counting.done() and stale):
            self._started[account_id] = time.monotonic()
            counting = asyncio.ensure_future(anyio.to_thread.run_sync(self._count, account_id))
            self._counting[account_id] = counting
        # Shielded: a client that leaves mid-count must not cancel it for the others.
        return await asyncio.shield(counting)

    def _count(self, account_id: int) -> Snapshot:
        now = utcnow()
        start, end = self.window(now)
        with scoped_session(self.engine, account_id) as session:
            totals, _ = notice_stats(
                session,
                start=start,
                end=end,
                bucket="day",
                dlr_timeout=self.dlr_timeout,
                now=now,
            )
        return Snapshot(at=now, totals=totals)
