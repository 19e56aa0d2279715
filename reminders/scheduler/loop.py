"""APScheduler's loop, made to survive its job store and watched while it runs.

APScheduler 3 calls the job store from its loop thread and catches the errors of only one of
those calls (``get_due_jobs``); an error in ``get_next_run_time``, ``update_job`` or
``remove_job`` ends the thread, and nothing fires again until a restart. ``PollingScheduler``
catches them all, waits (doubling from half a second, at most five) and tries again; the store
keeps its pending deletes meanwhile. Each pass is recorded in a ``LoopHealth``.

The ``Watchdog`` covers the rest: it starts the thread again if it ended anyway (a bug, an
error we did not foresee), and every few seconds (every second while anything fails) it probes
the store with a read and a write. The write finds a full disk, which a loop with nothing new to
fire never would; and while a scheduler is paused after failures (a leader that gave up the
lock, a standby whose takeover failed) the probe is how it learns that it can run again.
"""

from __future__ import annotations

import logging
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_STOPPED

from reminders.scheduler.health import LOOP, PROBE, LoopHealth
from reminders.scheduler.store import BatchJobStore

log = logging.getLogger(__name__)


class PollingScheduler(BackgroundScheduler):
    """Wakes at least every ``max_sleep`` seconds, and outlives its store's errors.

    ``wakeup()`` is an in-process event, so jobs that another process (``reminders web``) adds to
    the shared store would otherwise wait until the next job this process knows about.
    """

    max_sleep = 1.0

    def __init__(self, *, health: LoopHealth, **options: object) -> None:
        super().__init__(**options)
        self.health = health

    def _stores(self) -> list[BatchJobStore]:
        return [s for s in self._jobstores.values() if isinstance(s, BatchJobStore)]

    def _process_jobs(self) -> float:
        if self.state == STATE_PAUSED:
            return self.max_sleep  # a paused loop reaches no store: nothing to judge
        stores = self._stores()
        for store in stores:
            store.due_error = None
        error: Exception | None = None
        try:
            wait: float | None = super()._process_jobs()
        except Exception as exc:
            error = exc
        else:
            error = next((s.due_error for s in stores if s.due_error is not None), None)
        if error is not None:
            self.health.failed(error)
            delay = self.health.backoff()
            log.warning(
                "the job store failed (%s, %d in a row); trying again in %.1f s",
                error,
                self.health.failures_of(LOOP),
                delay,
            )
            return delay
        if self.health.failures_of(LOOP):
            failures = self.health.failures_of(LOOP)
            log.warning("the job store answers again after %d failures", failures)
        self.health.succeeded(LOOP)
        return self.max_sleep if wait is None else min(wait, self.max_sleep)

    def _main_loop(self) -> None:
        try:
            super()._main_loop()
        except BaseException as exc:  # noqa: BLE001 - the watchdog starts the loop again
            self.health.thread_alive = False
            self.health.failed(exc)
            log.exception("the scheduler's thread ended unexpectedly")

    def loop_alive(self) -> bool:
        thread: threading.Thread | None = getattr(self, "_thread", None)
        return thread is not None and thread.is_alive()

    def revive(self) -> None:
        """Run the loop on a new thread, after the last one ended while the scheduler ran."""
        self._thread = threading.Thread(
            target=self._main_loop, name="APScheduler", daemon=self._daemon
        )
        self.health.thread_alive = True
        self.health.thread_restarts += 1
        self._thread.start()
        self.wakeup()  # a new loop first sleeps until woken


class Watchdog:
    """Checks the scheduler every ``every`` seconds; ``check`` is one look."""

    def __init__(
        self,
        scheduler: PollingScheduler,
        store: BatchJobStore,
        *,
        every: float = 1.0,
        probe_every: float = 5.0,
    ) -> None:
        self.scheduler = scheduler
        self.store = store
        self.health = scheduler.health
        self.every = every
        self.probe_every = probe_every
        self._next_probe = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.check()
            except Exception:
                log.exception("the scheduler's watchdog failed")

    def check(self) -> None:
        state = self.scheduler.state
        if state == STATE_STOPPED:
            return
        if not self.scheduler.loop_alive():
            self.health.thread_alive = False
            log.error("the scheduler's thread is gone; starting it again")
            self.scheduler.revive()
            return
        now = time.monotonic()
        if not self.health.failures and now < self._next_probe:
            return
        self._next_probe = now + self.probe_every
        try:
            if state == STATE_PAUSED:
                # What the loop would do (deleting what is pending); a running loop does it.
                with self.scheduler._jobstores_lock:
                    self.store.get_next_run_time()
            self.store.probe_write()
        except Exception as exc:
            if not self.health.failures:
                log.warning("the job store failed a probe: %s", exc)
            self.health.failed(exc, PROBE)
            return
        if state == STATE_PAUSED:
            # A paused loop makes no passes: the probe answers for it too.
            if self.health.failures:
                log.warning("the job store answers again; this scheduler may run")
            self.health.succeeded(LOOP, PROBE)
        else:
            self.health.succeeded(PROBE)
