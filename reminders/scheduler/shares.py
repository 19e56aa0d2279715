"""Accounts share a lane by weight: each account's ``rate_share``.

A provider's bulk lane carries every account's backlog. Served first come, first served, a
utility's 100,000 bill notices due at 09:00 would hold back a clinic's 200 reminders due a
second later until the last bill went. Instead the lane keeps one queue per account and takes
from them in turn, each account as often as its weight says: with weights 3 and 1, three of
the first account's notices go for each of the second's while both wait, and an account alone
gets the whole lane. Within an account the order stays first come, first served.

The turn is the smooth weighted round robin: at each pick every waiting account earns its
weight, the richest goes and pays the sum of the weights. It interleaves rather than sending
an account's share in one run, and needs no clock: only the order of picks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.db import in_chunks
from reminders.models import Account, Notice
from reminders.scheduler.retrying import reason

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

# How long the accounts' weights are kept before they are read again: an edited ``rate_share``
# applies within this time, and a busy lane reads the small accounts table rarely.
WEIGHTS_FOR = 10.0


class FairQueue(Generic[K, T]):
    """Items queued per key, taken in turn by the keys' weights (at least 1 each).

    Not thread-safe: its owner holds a lock around it.
    """

    def __init__(self) -> None:
        self._queues: dict[K, deque[T]] = {}
        self._credit: dict[K, int] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def __bool__(self) -> bool:
        return bool(self._queues)

    def put(self, key: K, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._credit[key] = 0  # a key that comes back starts even, owed nothing
        queue.append(item)

    def take(self, count: int, weights: Mapping[K, int] | None = None) -> list[T]:
        """Up to ``count`` items, the keys taking turns by ``weights`` (1 for a key not in it)."""
        taken: list[T] = []
        if len(self._queues) == 1:  # one key: its own order, and no turns to count
            ((key, queue),) = self._queues.items()
            while queue and len(taken) < count:
                taken.append(queue.popleft())
            if not queue:
                self._forget(key)
            return taken
        weight = {key: max(1, (weights or {}).get(key, 1)) for key in self._queues}
        while self._queues and len(taken) < count:
            total = 0
            for key in self._queues:
                self._credit[key] += weight[key]
                total += weight[key]
            # max keeps the first of equals: among equal credits, the key that came first.
            key = max(self._queues, key=self._credit.__getitem__)
            self._credit[key] -= total
            queue = self._queues[key]
            taken.append(queue.popleft())
            if not queue:
                self._forget(key)
        return taken

    def drain(self) -> list[T]:
        """Every item, the queues emptied."""
        items = [item for queue in self._queues.values() for item in queue]
        self._queues.clear()
        self._credit.clear()
        return items

    def _forget(self, key: K) -> None:
        del self._queues[key]
        del self._credit[key]


class AccountShares:
    """Which account each notice is in, and the accounts' weights, read from the database.

    If the database does not answer, the lane still fires: notices of unknown account share
    one queue, and the weights last read stay in force.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        keep_for: float = WEIGHTS_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._keep_for = keep_for
        self._clock = clock
        self._lock = threading.Lock()
        self._weights: dict[int | None, int] = {}
        self._read_at: float | None = None

    def accounts_of(self, notice_ids: Iterable[int]) -> dict[int, int]:
        """Notice id -> its account id; empty if the database is away."""
        found: dict[int, int] = {}
        try:
            with Session(self._engine) as session:
                for chunk in in_chunks(list(notice_ids)):
                    rows = session.execute(
                        select(col(Notice.id), col(Notice.account_id)).where(
                            col(Notice.id).in_(chunk)
                        )
                    )
                    found.update((int(i), int(a)) for i, a in rows)
        except Exception as exc:
            log.warning(
                "could not read the accounts of notices to share the lane (%s)", reason(exc)
            )
            return {}
        return found

    def weights(self) -> Mapping[int | None, int]:
        """Account id -> its ``rate_share``, read again once ``keep_for`` has passed (a new
        dict each time, never changed once returned)."""
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._keep_for:
                self._read_at = now  # a failed read is not tried again at every batch
                self._read()
            return self._weights

    def _read(self) -> None:
        try:
            with Session(self._engine) as session:
                rows = session.execute(select(col(Account.id), col(Account.rate_share)))
                self._weights = {int(i): int(share) for i, share in rows}  # a new dict
        except Exception as exc:
            log.warning("could not read the accounts' rate shares (%s)", reason(exc))
