"""Every ``serve`` and ``worker`` process sends: its lanes claim ``due`` notices and send them.

Each lane (transactional, bulk) runs a few threads; each thread claims a batch, sends it,
records it, and claims the next, and when none is due waits to be woken (``due.DueSignal``).
A process holds at most its threads' batches: nothing queues in memory, however long the
backlog in the table.

Whichever process notices that another has died (its alive key in Redis gone, at two looks an
alive-key lifetime apart) settles that process's ``sending`` notices as ``unknown``: handed
to the gateway or nearly, they are not sent again. Two looks, because Redis restarting empty
drops every key at once and a live process writes its own again only at its next step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import distinct, select, update
from sqlalchemy.engine import Engine

from reminders.db import in_chunks, utcnow
from reminders.models import Notice, NoticeStatus, Priority
from reminders.pending_jobs import JobScheduler
from reminders.runtime import Runtime
from reminders.scheduler.claims import LanePicker
from reminders.scheduler.due import DueSignal
from reminders.scheduler.firing import fire_next
from reminders.scheduler.retrying import reason
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
                log.exception("the %s lane failed to send a batch (%s)", lane, reason(exc))
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


class DeadProcesses:
    """Looks now and then for ``sending`` notices of processes that are gone, and settles them.

    ``live_tokens`` reads the alive keys; a token missing at two looks in a row (``every``
    apart, at least an alive key's lifetime) is a dead process's.
    """

    def __init__(
        self,
        engine: Engine,
        live_tokens: Callable[[], set[str]],
        *,
        own: str,
        every: float,
    ) -> None:
        self.engine = engine
        self.live_tokens = live_tokens
        self.own = own
        self.every = every
        self._suspects: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dead-processes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def look(self) -> int:
        """One look: settle the tokens missing now and at the last look; return how many
        notices were settled."""
        with self.engine.connect() as conn:
            claimed = {
                str(token)
                for token in conn.execute(
                    select(distinct(_N.claimed_by)).where(
                        _N.status == NoticeStatus.sending, _N.claimed_by.is_not(None)
                    )
                ).scalars()
            }
        if not claimed:
            self._suspects = set()
            return 0
        # Read after the claims: a process that claimed since has written its key before.
        missing = claimed - self.live_tokens() - {self.own}
        dead = missing & self._suspects
        self._suspects = missing - dead
        return settle(self.engine, dead) if dead else 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.look()
            except Exception as exc:
                # Redis or the database away: look again later; a suspect stays one.
                log.warning("could not look for stopped processes' notices (%s)", reason(exc))
