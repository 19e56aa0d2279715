"""An APScheduler executor that runs notice jobs in batches.

APScheduler runs one job per executor call. A notice's job marks its notice due (``due.py``),
and a burst of 100,000 notices due in the same minute would cost 100,000 one-row transactions
behind SQLite's single writer. This executor collects the notice jobs the scheduler submits and
hands their ids to its handler a batch at a time, so each batch is one statement. Jobs stay one
per notice in the store, as before.

There is one such executor per lane (a job's ``executor`` names its lane, as stored jobs do).

A process that loses the scheduler lock ``halt``s its lanes: what is queued is dropped and the
batch in progress stops retrying. The dropped notices are still ``scheduled``; the next leader
marks them (its reconcile gives them jobs, its periodic check marks the overdue ones).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job

log = logging.getLogger(__name__)

# handler(notice ids, lane, stop, shutdown): act on them, giving up once ``stop`` is set.
Handler = Callable[[list[int], str, threading.Event, threading.Event], None]


class BatchingExecutor(BaseExecutor):  # type: ignore[misc]
    def __init__(
        self,
        handler: Handler,
        *,
        lane: str,
        threads: int = 2,
        max_batch: int = 1000,
    ) -> None:
        super().__init__()
        self._handler = handler
        self.lane = lane
        self._threads_wanted = threads
        self._max_batch = max_batch
        self._arrived: list[Job] = []
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        # Set to stop marking: by shutdown, or by halt until resume puts a fresh one in its place.
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
        """Stop marking until ``resume``: drop what is queued (and whatever the scheduler still
        submits meanwhile), and stop the batch in progress before its next claim. Returns how
        many notices were dropped."""
        with self._ready:
            self._halted.set()
            dropped, self._arrived = self._arrived, []
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
        """Wait for jobs and take a batch of them, in the order they came; None to stop."""
        while True:
            with self._ready:
                while not (self._arrived or self._stopping.is_set()):
                    self._ready.wait()
                if self._stopping.is_set():
                    return None
                batch = self._arrived[: self._max_batch]
                del self._arrived[: self._max_batch]
                if self._arrived:
                    self._ready.notify()  # another thread may take the next batch
                halted = self._halted
            if halted.is_set():  # submitted in a halt: not acted on here
                for job in batch:
                    self._drop(job)
                continue
            return batch, halted

    def _work(self) -> None:
        while True:
            taken = self._next_batch()
            if taken is None:
                return
            batch, halted = taken
            try:
                self._handler(
                    [int(job.args[0]) for job in batch], self.lane, halted, self._stopping
                )
            except Exception:
                # A bug, not the database (the handler waits that out): the notices stay
                # scheduled, and the active scheduler's periodic check marks them due.
                log.exception("a batch of %d notice job(s) failed", len(batch))
            finally:
                for job in batch:
                    self._run_job_success(job.id, [])
