"""Every ``serve`` and ``worker`` process sends: its lanes claim ``due`` notices and send them.

Each lane (transactional, bulk) runs a few threads; each thread claims a batch, sends it,
records it, and claims the next, and when none is due waits to be woken (``due.DueSignal``).
A process holds at most its threads' batches: nothing queues in memory, however long the
backlog in the table.

Whichever process notices that another has died (its alive key in Redis gone for at least an
alive key's lifetime) settles that process's ``sending`` notices as ``unknown``: handed to the
gateway or nearly, they are not sent again. Not at the first miss, because Redis restarting
empty drops every key at once and a live process writes its own again only at its next step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from reminders.db import in_chunks, utcnow
from reminders.models import Notice, NoticeStatus, Priority
from reminders.pending_jobs import JobScheduler
from reminders.runtime import Runtime
from reminders.scheduler.claims import LanePicker
from reminders.scheduler.due import DueSignal
from reminders.scheduler.firing import fire_next
from reminders.scheduler.retrying import log_failure, reason
from reminders.scheduler.shares import AccountShares

log = logging.getLogger(__name__)

_NOTICES = Notice.__table__  # type: ignore[attr-defined]
_N = _NOTICES.c
INTERRUPTED = "the service stopped while sending it; it was not resent"


class SendingLanes:
    """The lanes' threads of one process."""

    def __init__(
        self,
        runtime: Runtime,
        signal: DueSignal,
        *,
        scheduler: JobScheduler | None = None,
        threads: int = 2,
    ) -> None:
        self.runtime = runtime
        self.signal = signal
        self.scheduler = scheduler
        self._threads_per_lane = threads
        self._shares = AccountShares(runtime.engine)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.busy = 0  # batches being sent now, for the metrics

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def start(self) -> None:
        if self._threads:
            return
        for lane in (Priority.transactional, Priority.bulk):
            for i in range(self._threads_per_lane):
                thread = threading.Thread(
                    target=self._work, args=(lane,), name=f"send-{lane}-{i}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def dead_threads(self) -> list[str]:
        """Names of lane threads that ended while the lanes should run (a bug: reported by
        ``/readyz``)."""
        if self._stop.is_set():
            return []
        return [t.name for t in self._threads if not t.is_alive()]

    def stop(self, *, wait: bool = True) -> None:
        """Claim no more; what was handed to the gateway is still recorded, unless the
        database stays away (then those notices stay ``sending``: unknown, never resent)."""
        self._stop.set()
        self.signal.wake(lane.value for lane in Priority)
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self, lane: str) -> None:
        rt = self.runtime
        picker = LanePicker(lane, self._shares if lane == Priority.bulk else None)
        while not self._stop.is_set():
            try:
                picked = fire_next(
                    rt.engine,
                    rt.sender,
                    picker,
                    settings=rt.settings,
                    lane=lane,
                    token=rt.token,
                    scheduler=self.scheduler,
                    rate=rt.rate,
                    stop=self._stop,
                    shutdown=self._stop,
                    metrics=rt.metrics,
                )
            except Exception as exc:
                # A bug or a database fault ``fire_next`` could not wait out: the notices it had
                # not claimed stay due; look again after a pause rather than spin.
                log_failure(log, "the %s lane's batch", exc, lane)
                self._stop.wait(1.0)
                continue
            if not picked:
                self.signal.wait(lane, self._stop)


def settle(engine: Engine, tokens: set[str] | None) -> int:
    """Mark ``sending`` notices of the processes ``tokens`` (None: of any process) ``unknown``."""
    count = 0
    now = utcnow()
    with engine.begin() as conn:
        base = update(_NOTICES).where(_N.status == NoticeStatus.sending)
        values = {"status": NoticeStatus.unknown, "status_reason": INTERRUPTED, "updated_at": now}
        if tokens is None:
            count = int(conn.execute(base.values(**values)).rowcount or 0)
        else:
            for chunk in in_chunks(sorted(tokens)):
                result = conn.execute(base.where(_N.claimed_by.in_(chunk)).values(**values))
                count += int(result.rowcount or 0)
    if count:
        log.warning("%d notice(s) were being sent when a process stopped: now unknown", count)
    return count


class Suspicions:
    """When each missing process was first seen missing, shared by every process through Redis
    (a hash, on Redis's clock), so that one that looks once judges by another's earlier look:
    processes that come and go (restarted, rescheduled by an orchestrator) still settle a dead
    one's notices. Without Redis there is one process, and it keeps them itself."""

    def __init__(self, client: redis.Redis | None = None, *, prefix: str = "") -> None:
        self._client = client
        self._key = f"{prefix}suspects"
        self._local: dict[str, float] = {}

    def now(self) -> float:
        if self._client is None:
            return time.monotonic()
        seconds, micros = self._client.time()
        return float(seconds) + micros / 1e6

    def first_missed(self, missing: set[str], now: float) -> dict[str, float]:
        """Record ``missing`` as missing since ``now`` unless already recorded; return when
        each was first seen missing."""
        tokens = sorted(missing)
        if self._client is None:
            for token in tokens:
                self._local.setdefault(token, now)
            return {token: self._local[token] for token in tokens}
        if not tokens:
            return {}
        pipe = self._client.pipeline()
        for token in tokens:
            pipe.hsetnx(self._key, token, repr(now))
        pipe.hmget(self._key, tokens)
        values = pipe.execute()[-1]
        return {t: float(v) for t, v in zip(tokens, values, strict=True) if v is not None}

    def forget(self, tokens: set[str]) -> None:
        """These are alive again, or settled."""
        if not tokens:
            return
        if self._client is None:
            for token in tokens:
                self._local.pop(token, None)
            return
        self._client.hdel(self._key, *sorted(tokens))


class DeadProcesses:
    """Looks now and then for ``sending`` notices of processes that are gone, and settles them.

    ``live_tokens`` reads the alive keys; a token missing for at least ``grace`` (an alive key's
    lifetime: a live process rewrites its key within it, after a Redis that restarted empty) is
    a dead process's. When it was first missed is shared (``Suspicions``), so any process's
    look counts.
    """

    def __init__(
        self,
        engine: Engine,
        live_tokens: Callable[[], set[str]],
        *,
        own: str,
        grace: float,
        suspicions: Suspicions | None = None,
        every: float | None = None,
    ) -> None:
        self.engine = engine
        self.live_tokens = live_tokens
        self.own = own
        self.grace = grace
        self.every = every if every is not None else grace / 2
        self.suspicions = suspicions or Suspicions()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dead-processes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def look(self) -> int:
        """One look: settle the tokens missing for at least ``grace``; return how many notices
        were settled."""
        with self.engine.connect() as conn:
            claimed = {
                str(token)
                for token in conn.execute(
                    select(_N.claimed_by)
                    .distinct()
                    .where(_N.status == NoticeStatus.sending, _N.claimed_by.is_not(None))
                ).scalars()
            }
        if not claimed:
            return 0
        # Read after the claims: a process that claimed since has written its key before.
        live = self.live_tokens()
        missing = claimed - live - {self.own}
        self.suspicions.forget((claimed & live) - {self.own})
        now = self.suspicions.now()
        since = self.suspicions.first_missed(missing, now)
        dead = {token for token, first in since.items() if now - first >= self.grace}
        if not dead:
            return 0
        count = settle(self.engine, dead)
        self.suspicions.forget(dead)
        return count

    def _run(self) -> None:
        while True:
            try:
                self.look()
            except Exception as exc:
                # Redis or the database away: look again later; a suspect stays one.
                log.warning("could not look for stopped processes' notices (%s)", reason(exc))
            if self._stop.wait(self.every):
                return
