"""An APScheduler executor that fires notices in batches.

APScheduler runs one job per executor call. Firing a notice alone costs three write
transactions (claim, outbox, outcome); a burst of 100,000 notices due in the same minute would
queue for minutes behind SQLite's single writer. This executor collects the notice jobs the
scheduler submits and hands their ids to ``fire_many`` a batch at a time, so each step is one
statement per batch. Jobs stay one per notice in the store, as before.

There is one such executor per lane (a job's ``executor`` names its lane), each with its own
queue and threads: a transactional notice never queues behind a bulk backlog. Within the bulk
lane, accounts take turns by their ``rate_share`` (``shares.py``), so one account's backlog
does not hold back another's notices.

A process that loses the scheduler lock ``halt``s its lanes: what is queued is dropped and the
batch in progress stops before its next claim, so only what was already handed to the gateway
still goes out, and its outcome is recorded however long the database takes to answer (only
a shutdown gives that up). The dropped notices are still ``scheduled``; the next leader fires
them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job

from reminders.scheduler.shares import AccountShares, FairQueue

log = logging.getLogger(__name__)

# handler(notice ids, lane, stop, shutdown): fire them, claiming no more (leaving the rest
# scheduled) once ``stop`` is set; what was claimed is still recorded until ``shutdown`` is set.
Handler = Callable[[list[int], str, threading.Event, threading.Event], None]


class BatchingExecutor(BaseExecutor):  # type: ignore[misc]
    def __init__(
        self,
        handler: Handler,
        *,
        lane: str,
        threads: int = 2,
        max_batch: int = 200,
        shares: AccountShares | None = None,
    ) -> None:
        super().__init__()
        self._handler = handler
        self.lane = lane
        self._threads_wanted = threads
        self._max_batch = max_batch
        # Jobs submitted and not yet sorted into ``_waiting`` by account (which takes a query,
        # made outside the lock). Without ``shares`` every job waits under one key: in order.
        self._shares = shares
        self._arrived: list[Job] = []
        self._waiting: FairQueue[int | None, Job] = FairQueue()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        # Set to stop firing: by shutdown, or by halt until resume puts a fresh one in its place.
        # Each batch is handed the one current when it started, so a halt stops it for good.
        self._halted = threading.Event()

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._threads = [
            threading.Thread(target=self._work, name=f"{self.lane}-{i}", daemon=True)
            for i in range(self._threads_wanted)
        ]
        for thread in self._threads:
            thread.start()

    def shutdown(self, wait: bool = True) -> None:
        # What is still queued is dropped, not drained: at a send rate a bulk backlog could take
        # minutes. Those notices are still "scheduled" with their jobs gone, and the next start
        # (or the next elected instance) gives them jobs again when it reconciles.
        with self._ready:
            self._stopping.set()
            self._halted.set()
            self._ready.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()

    def halt(self) -> int:
        """Stop firing until ``resume``: drop what is queued (and whatever the scheduler still
        submits meanwhile), and stop the batch in progress before its next claim. Returns how
        many notices were dropped."""
        with self._ready:
            self._halted.set()
            dropped = self._arrived + self._waiting.drain()
            self._arrived = []
        # Outside the condition's lock: APScheduler's own lock is taken before it on submit.
        for job in dropped:
            self._drop(job)
        return len(dropped)

    def resume(self) -> None:
        if self._halted.is_set() and not self._stopping.is_set():
            self._halted = threading.Event()

    def _drop(self, job: Job) -> None:
        # Not fired: release its instance, or a later firing of the same job (the next leader's
        # reconcile gives it back, maybe to this process) would be refused as a second instance.
        self._run_job_success(job.id, [])

    def holding(self) -> set[str]:
        """Ids of the jobs this lane has taken and not finished: queued, or being fired.

        Their jobs are gone from the store (APScheduler removes a date job once submitted), and
        their notices still ``scheduled``: the periodic reconcile must not take them for lost.
        """
        if self._lock is None:  # not started
            return set()
        with self._lock:
            return {job_id for job_id, running in self._instances.items() if running}

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        # Queued even while halted: APScheduler counts the instance only after this returns,
        # so a worker lets go of it (``_next_batch`` drops what arrives in a halt).
        with self._ready:
            self._arrived.append(job)
            self._ready.notify()

    def _next_batch(self) -> tuple[list[Job], threading.Event] | None:
        """Wait for jobs and take a batch of them, the accounts taking turns; None to stop."""
        while True:
            with self._ready:
                while not (self._arrived or self._waiting or self._stopping.is_set()):
                    self._ready.wait()
                if self._stopping.is_set():
                    return None
                arrived, self._arrived = self._arrived, []
                halted = self._halted
            if halted.is_set():  # submitted in a halt: not fired here
                for job in arrived:
                    self._drop(job)
                continue
            keys = self._sort(arrived)
            weights = self._shares.weights() if self._shares is not None else {}
            with self._ready:
                if halted.is_set():  # halted while sorting: what was sorted is dropped
                    late = arrived
                    batch: list[Job] = []
                else:
                    late = []
                    for job in arrived:
                        self._waiting.put(keys.get(int(job.args[0])), job)
                    batch = self._waiting.take(self._max_batch, weights)
                    if self._waiting:
                        self._ready.notify()  # another thread may take the next batch
            for job in late:
                self._drop(job)
            if batch:
                return batch, halted

    def _sort(self, jobs: list[Job]) -> dict[int, int]:
        """Notice id -> account, for the accounts to take turns (empty: one queue for all)."""
        if self._shares is None or not jobs:
            return {}
        return self._shares.accounts_of(int(job.args[0]) for job in jobs)

    def _work(self) -> None:
        while True:
            taken = self._next_batch()
            if taken is None:
                return
            batch, halted = taken
            try:
                # A halt stops the claims; only shutdown may stop recording what was claimed.
                self._handler(
                    [int(job.args[0]) for job in batch], self.lane, halted, self._stopping
                )
            except Exception:
                # A bug, not the database (``fire_many`` waits that out): the notices it had not
                # claimed stay scheduled, and the periodic reconcile gives them jobs again.
                log.exception("firing a batch of %d notices failed", len(batch))
            finally:
                for job in batch:
                    self._run_job_success(job.id, [])
