"""Accounts share a lane by weight: each account's ``rate_share``.

A provider's bulk lane carries every account's backlog. Served oldest first, a utility's
100,000 bill notices due at 09:00 would hold back a clinic's 200 reminders due a second later
until the last bill went. Instead each claim of the bulk lane (``claims.py``) shares its batch
among the accounts that have notices due, each as often as its weight says: with weights 3 and
1, three of the first account's notices go for each of the second's while both wait, and an
account alone gets the whole lane. Within an account the order stays oldest first.

The turn is the smooth weighted round robin: at each slot every waiting account earns its
weight, the richest takes the slot and pays the sum of the weights. It interleaves rather than
giving an account its share in one run, needs no clock, and its credits carry from one batch
to the next, so small batches share as fairly as large ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.models import Account
from reminders.scheduler.retrying import reason

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# How long the accounts' weights are kept before they are read again: an edited ``rate_share``
# applies within this time, and a busy lane reads the small accounts table rarely.
WEIGHTS_FOR = 10.0


class Turns(Generic[K]):
    """The accounts' credits in the round robin, kept between batches.

    Not thread-safe: its owner holds a lock around it.
    """

    def __init__(self) -> None:
        self._credit: dict[K, int] = {}

    def allot(
        self, count: int, waiting: Iterable[K], weights: Mapping[K, int] | None = None
    ) -> dict[K, int]:
        """Share ``count`` slots among the ``waiting`` keys by ``weights`` (1 for a key not in
        it); a key that stopped waiting is forgotten, and starts even when it comes back."""
        keys = list(dict.fromkeys(waiting))
        for gone in set(self._credit) - set(keys):
            del self._credit[gone]
        if len(keys) <= 1:
            return {keys[0]: count} if keys and count > 0 else {}
        weight = {key: max(1, (weights or {}).get(key, 1)) for key in keys}
        total = sum(weight.values())
        for key in keys:
            self._credit.setdefault(key, 0)
        slots: dict[K, int] = {}
        for _ in range(count):
            for key in keys:
                self._credit[key] += weight[key]
            # max keeps the first of equals: among equal credits, the key listed first.
            key = max(keys, key=self._credit.__getitem__)
            self._credit[key] -= total
            slots[key] = slots.get(key, 0) + 1
        return slots


class AccountShares:
    """The accounts' weights, read from the database now and then.

    If the database does not answer, the weights last read stay in force.
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
        self._weights: dict[int, int] = {}
        self._read_at: float | None = None

    def weights(self) -> Mapping[int, int]:
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
