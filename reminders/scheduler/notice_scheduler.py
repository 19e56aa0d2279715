"""The in-process scheduler: an APScheduler ``BackgroundScheduler`` on the notices' database.

APScheduler is the persistent clock: one job per notice, fired by the one active scheduler,
which only marks the notice ``due`` (``due.py``). Every process that runs a scheduler also
runs the sending lanes (``sending.py``), which claim due notices from the table and send them,
whichever process leads.

Facts that shaped it (see the APScheduler notes in the project's references):
- a ``BackgroundScheduler`` runs the job store's blocking calls on its own thread, where an
  ``AsyncIOScheduler`` would freeze the API's event loop during a burst;
- the default misfire grace of 1 s silently drops jobs that fell due while the service was down
  or while the executor was busy, so it is disabled: whether a late notice is still useful is
  decided by the notice, not by the scheduler;
- the notices table is the truth and the job only a trigger, so ``reconcile`` repairs the job
  store from the table at a takeover, and the active scheduler marks due, every
  ``reconcile_every``, any scheduled notice whose time has passed (its job was lost: a marking
  the database refused, a crash between a notice's commit and its job's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING, STATE_STOPPED
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import or_, select, true, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from reminders.db import in_chunks, utcnow
from reminders.models import JOBS_TABLE, Notice, NoticeStatus, Priority, apscheduler_jobs
from reminders.pending_jobs import JobItem
from reminders.runtime import Runtime
from reminders.scheduler.due import DueSignal
from reminders.scheduler.executor import BatchingExecutor
from reminders.scheduler.health import LoopHealth
from reminders.scheduler.jobs import bind_worker, mark_notices
from reminders.scheduler.leader import Leadership
from reminders.scheduler.loop import PollingScheduler, Watchdog
from reminders.scheduler.retrying import reason
from reminders.scheduler.sending import DeadProcesses, SendingLanes, Suspicions
from reminders.scheduler.store import BatchJobStore
from reminders.webhooks.workers import WebhookWorkers

log = logging.getLogger(__name__)

# At most this often (seconds) a burst sweeps its notices due: see ``_sweep_soon``.
SWEEP_EVERY = 1.0
JOB_PREFIX = "notice:"


FIRE_NOTICE_REF = "reminders.scheduler.jobs:fire_notice"
NOTICE_EXECUTOR = "notices"  # the bulk lane; the name predates lanes and is in stored jobs
TRANSACTIONAL_EXECUTOR = "transactional"
LANE_EXECUTORS: dict[str, str] = {
    Priority.bulk: NOTICE_EXECUTOR,
    Priority.transactional: TRANSACTIONAL_EXECUTOR,
}
SOURCE_PREFIX = "source:"
SYNC_SOURCE_REF = "reminders.sources.jobs:sync_if_due"
RECONCILE_EVERY = timedelta(seconds=30)
RECONCILE_CHUNK = 20_000  # notices, then jobs, compared a chunk at a time at a takeover


def job_id(notice_id: int) -> str:
    return f"{JOB_PREFIX}{notice_id}"


def job_state(notice_id: int, send_at: datetime, priority: str = Priority.bulk) -> dict[str, Any]:
    """What ``Job.__getstate__()`` returns for a notice's one-off job, built without a ``Job``.

    The executor is the notice's lane: each lane has its own queue and threads.
    """
    run_at = send_at.astimezone(UTC)
    trigger = DateTrigger.__new__(DateTrigger)
    trigger.run_date = run_at
    return {
        "version": 1,
        "id": job_id(notice_id),
        "func": FIRE_NOTICE_REF,
        "trigger": trigger,
        "executor": LANE_EXECUTORS.get(priority, NOTICE_EXECUTOR),
        "args": (notice_id,),
        "kwargs": {},
        "name": "fire_notice",
        "misfire_grace_time": None,
        "coalesce": True,
        "max_instances": 1,
        "next_run_time": run_at,
    }


class NoticeScheduler:
    """Writes notices' jobs; in the one active process also fires them (marks them due); in
    every process it is started in, sends the due notices.

    Every process that creates notices has one (``reminders web`` included: it only writes
    jobs and marks due what is due at once). ``start`` runs the APScheduler loop (at once in
    single-instance mode, or paused until a ``Leadership`` elects this process) and the
    sending lanes (at once, leader or not). What sending needs (the sender, the settings, the
    send rate) comes with ``runtime``; one made without it only writes jobs.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        runtime: Runtime | None = None,
        threads: int = 10,
        batch_size: int = 1000,
        stall_after: float = 30.0,
        reconcile_every: timedelta = RECONCILE_EVERY,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.runtime = runtime
        # What "already due" means to ``schedule`` (a test of planning at a pinned date sets it).
        self.clock = clock
        self.token = runtime.token if runtime is not None else ""
        self.leadership: Leadership | None = None
        self.health = LoopHealth(stall_after=stall_after)
        # Taking over and stepping down, one at a time (they run on different threads).
        self._term_lock = threading.Lock()
        self._store = BatchJobStore(
            engine=engine, tablename=JOBS_TABLE, batch_size=batch_size, on_backlog=self._sweep_soon
        )
        self._sweep_lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._sweeping = False
        self._next_sweep = 0.0
        settings = runtime.settings if runtime is not None else None
        self.signal = DueSignal(engine, poll=settings.due_poll if settings else 1.0)
        mark = partial(mark_notices, self)
        # The jobs' executors, one per lane as the stored jobs name them: they mark due.
        self.lanes = {
            lane: BatchingExecutor(mark, lane=lane, threads=1, max_batch=1000)
            for lane in (Priority.bulk, Priority.transactional)
        }
        self.sending = (
            SendingLanes(
                runtime,
                self.signal,
                scheduler=self,
                threads=settings.send_threads if settings else 2,
            )
            if runtime is not None
            else None
        )
        # Webhooks go out from every process that sends, beside the lanes.
        self.webhooks = (
            WebhookWorkers(
                runtime.engine, runtime.settings, token=runtime.token, metrics=runtime.metrics
            )
            if runtime is not None
            else None
        )
        self._dead: DeadProcesses | None = None
        self._scheduler = PollingScheduler(
            health=self.health,
            # "local" holds this process's own periodic work, which runs only while it is the
            # active scheduler and is never shared through the database.
            jobstores={"default": self._store, "local": MemoryJobStore()},
            executors={
                # Stored jobs (feed syncs) find this scheduler through their thread: jobs.py.
                "default": ThreadPoolExecutor(
                    threads, pool_kwargs={"initializer": bind_worker, "initargs": (self,)}
                ),
                **{LANE_EXECUTORS[lane]: executor for lane, executor in self.lanes.items()},
            },
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self._scheduler.add_job(
            self.check_due,
            IntervalTrigger(seconds=reconcile_every.total_seconds(), timezone=UTC),
            id="check-due",
            jobstore="local",
            executor="default",
        )
        self._watchdog = Watchdog(self._scheduler, self._store)

    def firing_runtime(self) -> Runtime:
        """The process's runtime, for the work this scheduler fires."""
        if self.runtime is None:
            raise RuntimeError("this NoticeScheduler was made without a runtime: it cannot fire")
        return self.runtime

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    @property
    def state(self) -> str:
        """``active`` (firing), ``standby`` (waiting for the lock) or ``stopped``."""
        if self._scheduler.state == STATE_RUNNING:
            return "active"
        if self._scheduler.state == STATE_PAUSED:
            return "standby"
        return "stopped"

    def problem(self) -> str | None:
        """Why this scheduler cannot run (for ``/readyz``), or None while it can."""
        return None if self.state == "stopped" else self.health.problem()

    def cannot_lead(self) -> str | None:
        """Why this process should not hold, or seek, the scheduler lock; None if it may.

        A leader keeps the lock through a short run of store failures (a database restart);
        a process with failures not yet cleared does not campaign: elected, it would fail to
        reconcile and only delay a healthy standby.
        """
        if self.state == "active":
            return self.health.problem()
        if self.health.failures or not self.health.thread_alive:
            return self.health.problem() or "the job store failed and has not answered since"
        return None

    def start(self, leadership: Leadership | None = None) -> None:
        if leadership is None:
            # Alone: whatever a previous run left in "sending" was interrupted. Settled before
            # any lane can claim, so that a notice this start claims is never mistaken for one.
            self.settle_interrupted(alive=None)
            # Reconciled before the loop runs: a job firing meanwhile would make its notice look
            # unfired-but-jobless, and it would be given a second (harmless, useless) job.
            self.reconcile()
            self._scheduler.start()
            self._watchdog.start()
            self._start_sending()
            return
        self.leadership = leadership
        for lane in self.lanes.values():
            lane.halt()  # until elected
        self._scheduler.start(paused=True)
        self._watchdog.start()
        self._dead = DeadProcesses(
            self.engine,
            leadership.live_tokens,
            own=self.token,
            grace=leadership.alive_ttl,
            suspicions=Suspicions(leadership.client, prefix=leadership.prefix),
        )
        self._dead.start()
        leadership.start()
        self._start_sending()

    def _start_sending(self) -> None:
        if self.sending is not None:
            self.signal.listen()
            self.sending.start()
        if self.webhooks is not None:
            self.webhooks.start()

    def activate(self) -> None:
        """Called when this process is elected: fire at once, and reconcile meanwhile.

        The jobs the store holds start firing as soon as the lock is won; the reconcile (tens
        of seconds with a million notices pending, compared a chunk at a time) gives the
        notices left without a job theirs as it goes. A notice fired while the reconcile reads
        may be given a useless second job: its claim finds it no longer scheduled.

        Notices that stopped processes left "sending" are settled one alive-key lifetime later:
        right after Redis restarts empty, a live process's alive key is missing until it next
        writes it, and its notices in flight would be taken for a dead one's.
        """
        leadership = self.leadership
        term = leadership.term if leadership is not None else 0
        with self._scheduler._jobstores_lock:
            # Deletes left from an earlier term: another leader may have re-created those jobs.
            self._store.forget_fired()
        # The takeover runs beside the leadership thread: if this process was deposed since it
        # was elected, it must not start firing (``deactivate`` holds the same lock).
        with self._term_lock:
            if leadership is not None and not leadership.holds(term):
                log.info("deposed while taking over; not firing")
                return
            for lane in self.lanes.values():
                lane.resume()
            self._scheduler.resume()
        try:
            self.reconcile()
        except Exception as exc:
            self.health.failed(exc)
            raise

    def deactivate(self) -> None:
        """Called when this process loses the lock or gives it up: stop claiming at once.

        The lanes drop their queues and the batches in progress stop before their next claim;
        what was handed to the gateway still finishes and is recorded. The dropped notices stay
        ``scheduled``; the next leader's reconcile gives them jobs again.
        """
        with self._term_lock:
            if self._scheduler.state == STATE_RUNNING:
                self._scheduler.pause()
            dropped = sum(lane.halt() for lane in self.lanes.values())
        # Under the lock, so a pass still running ends before; it submits to halted lanes.
        with self._scheduler._jobstores_lock:
            self._store.forget_fired()
        # Logged once it holds: from here on this process claims nothing (a claim already on
        # its way to the database is given back unsent).
        log.warning(
            "this scheduler is paused: %d queued notice(s) left for the next leader", dropped
        )

    def shutdown(self, *, wait: bool = True) -> None:
        self._watchdog.stop()
        if self._dead is not None:
            self._dead.stop()
        if self.leadership is not None:
            self.leadership.stop()
        if self.sending is not None:
            self.sending.stop(wait=wait)
        if self.webhooks is not None:
            self.webhooks.stop(wait=wait)
        self.signal.close()  # a sweep running stops at its next chunk
        if wait and self._sweeper is not None:
            self._sweeper.join(timeout=30)
        if self._scheduler.state != STATE_STOPPED:
            self._scheduler.shutdown(wait=wait)

    def schedule(self, items: Iterable[JobItem], *, new: bool = False) -> None:
        """Create or replace the job of each (notice id, send time[, priority]), all in one
        transaction.

        ``new``: the notices were just created, so no job can exist yet; saves the deletes.

        A notice whose time has already come gets no job: it is marked ``due`` at once (an
        alert, a retry due now, an event moved into the past), so that no leader, and no
        failover, stands between it and the lanes. If that marking fails, the notice is still
        ``scheduled`` and the active scheduler's periodic check marks it.
        """
        listed = list(items)
        now = self.clock()
        due_now = [item for item in listed if item[1] <= now]
        later = [item for item in listed if item[1] > now]
        if due_now:
            self._mark_now(due_now, new=new, now=now)
        states = [job_state(*item) for item in later]
        if not states:
            return
        # The store is otherwise only called by APScheduler itself, under this lock.
        with self._scheduler._jobstores_lock:
            self._store.add_job_states(states, replace=not new)
        if self.running:
            self._scheduler.wakeup()

    def _mark_now(self, items: list[JobItem], *, new: bool, now: datetime) -> None:
        ids = [item[0] for item in items]
        lanes = {item[2] if len(item) > 2 else Priority.bulk for item in items}  # type: ignore[misc]
        if not new:
            # A job written for a later time is no longer wanted (it would find nothing to do).
            self.unschedule(ids)
        try:
            self.signal.mark(ids, now=now, wake=lanes)
        except SQLAlchemyError as exc:
            log.warning(
                "could not mark %d notice(s) due (%s); the periodic check will",
                len(ids),
                reason(exc),
            )

    def schedule_source(self, source_id: int, every: timedelta) -> None:
        """The periodic job that syncs a feed: every ``every``, give or take a tenth."""
        seconds = max(int(every.total_seconds()), 60)
        trigger = IntervalTrigger(seconds=seconds, jitter=seconds // 10, timezone=UTC)
        first = datetime.now(UTC) + timedelta(seconds=5)
        state = {
            "version": 1,
            "id": f"{SOURCE_PREFIX}{source_id}",
            "func": SYNC_SOURCE_REF,
            "trigger": trigger,
            "executor": "default",
            "args": (source_id,),
            "kwargs": {},
            "name": "sync_source",
            "misfire_grace_time": None,
            "coalesce": True,
            "max_instances": 1,
            "next_run_time": first,
        }
        with self._scheduler._jobstores_lock:
            self._store.add_job_states([state])
        if self.running:
            self._scheduler.wakeup()

    def unschedule_source(self, source_id: int) -> None:
        with self._scheduler._jobstores_lock:
            self._store.remove_jobs([f"{SOURCE_PREFIX}{source_id}"])

    def unschedule(self, notice_ids: Iterable[int]) -> None:
        """Delete the jobs of these notices (already fired or never made: nothing to do)."""
        ids = [job_id(notice_id) for notice_id in notice_ids]
        if ids:
            # Straight to the store, started or not: APScheduler's remove_job only looks at its
            # in-memory pending list while the scheduler is stopped.
            with self._scheduler._jobstores_lock:
                self._store.remove_jobs(ids)

    def settle_interrupted(self, *, alive: set[str] | None) -> int:
        """Mark notices a dead process left in ``sending`` as ``unknown``; return how many.

        Such a notice was handed to the sender, or nearly: resending it blindly could send it
        twice, so its outcome is recorded as unknown instead. ``alive`` holds the tokens of the
        processes still running (None: no other process can be sending).
        """
        query = update(Notice).where(col(Notice.status) == NoticeStatus.sending)
        if alive is not None:
            query = query.where(
                or_(col(Notice.claimed_by).is_(None), col(Notice.claimed_by).not_in(alive))
            )
        with Session(self.engine) as session:
            count = session.execute(
                query.values(
                    status=NoticeStatus.unknown,
                    status_reason="the service stopped while sending it; it was not resent",
                    updated_at=utcnow(),
                )
            ).rowcount  # type: ignore[attr-defined]
            session.commit()  # the scheduler's own transaction, as the firing path's are
        if count:
            log.warning("%d notice(s) were being sent when a process stopped: now unknown", count)
        return count

    def reconcile(self) -> dict[str, int]:
        """Make the job store agree with the notices table after a stop or a crash.

        A scheduled notice without a job gets one (it fires at once if due); a job whose notice
        is no longer scheduled is removed. A job that fires twice because of a race here is
        harmless: marking a notice due twice changes nothing.
        """
        return self._reconcile_all()

    def _reconcile_all(self, chunk: int = RECONCILE_CHUNK) -> dict[str, int]:
        """Every scheduled notice and every notice job, compared in the database a chunk at a
        time (keyset by id): a takeover with a million notices pending holds a chunk in memory,
        not a million ids (it took 443 MB when both sides were read whole)."""
        rescheduled = removed = 0
        after = 0
        while True:
            found, last = self._without_job(after, chunk)
            if last is None:
                break
            after = last
            # The lanes fire while this reads (a takeover fires at once): a notice they took
            # since has no job and is not lost. Asked after each chunk's read, not once.
            held = (
                set().union(*(lane.holding() for lane in self.lanes.values())) if found else set()
            )
            missing = [row for row in found if job_id(row[0]) not in held]
            self.schedule(missing)
            rescheduled += len(missing)
        after_job = ""
        while True:
            orphans, last_job = self._orphan_jobs(after_job, chunk)
            if last_job is None:
                break
            after_job = last_job
            if orphans:
                with self._scheduler._jobstores_lock:
                    self._store.remove_jobs(orphans)
                removed += len(orphans)
        report = {"rescheduled": rescheduled, "removed": removed}
        if any(report.values()):
            log.info("reconciled notices with the job store: %s", report)
        return report

    def _without_job(self, after: int, limit: int) -> tuple[list[JobItem], int | None]:
        """(id, send time, priority) of scheduled notices past id ``after`` that have no job,
        ``limit`` notices looked at (by id) at a time; and the last id looked at (None: no
        more). A notice made meanwhile, its job not yet written, is given one twice: harmless.

        The jobs are looked up by primary key: joined on a computed id, PostgreSQL hashed the
        whole jobs table for every chunk (157 s for a million, against 5 s read whole)."""
        query = (
            select(col(Notice.id), col(Notice.send_at), col(Notice.priority))
            .where(col(Notice.status) == NoticeStatus.scheduled, col(Notice.id) > after)
            .order_by(col(Notice.id))
            .limit(limit)
        )
        with Session(self.engine) as session:
            rows: list[JobItem] = [(n, at, p) for n, at, p in session.execute(query)]
        if not rows:
            return [], None
        have = self._job_ids([job_id(row[0]) for row in rows])
        return [row for row in rows if job_id(row[0]) not in have], int(rows[-1][0])

    def _orphan_jobs(self, after: str, limit: int) -> tuple[list[str], str | None]:
        """Notice jobs past id ``after`` whose notice is no longer scheduled, ``limit`` jobs
        looked at (by id) at a time; and the last job id looked at (None: no more)."""
        jobs = apscheduler_jobs.c
        query = (
            select(jobs.id)
            .where(jobs.id.like(f"{JOB_PREFIX}%"), jobs.id > after)
            .order_by(jobs.id)
            .limit(limit)
        )
        with Session(self.engine) as session:
            ids = list(session.execute(query).scalars())
            if not ids:
                return [], None
            wanted = [int(j.removeprefix(JOB_PREFIX)) for j in ids]
            alive: set[int] = set()
            for chunk in in_chunks(wanted):
                alive.update(
                    session.execute(
                        # Behind IS TRUE, no index serves the status: the ids, by primary
                        # key, narrow it (else a million scheduled rows are walked each time).
                        select(col(Notice.id)).where(
                            col(Notice.id).in_(chunk),
                            (col(Notice.status) == NoticeStatus.scheduled).is_(true()),
                        )
                    ).scalars()
                )
        return [j for j, n in zip(ids, wanted, strict=True) if n not in alive], ids[-1]

    def _job_ids(self, among: list[str]) -> set[str]:
        """The ids of those ``among`` these jobs that are stored."""
        query = select(apscheduler_jobs.c.id)
        with Session(self.engine) as session:
            found: set[str] = set()
            for chunk in in_chunks(among):
                found.update(
                    session.execute(query.where(apscheduler_jobs.c.id.in_(chunk))).scalars()
                )
            return found

    def _sweep_soon(self) -> None:
        """A burst: the loop read a full batch of due jobs, and more wait behind it.

        The loop takes jobs a thousand at a time, each read back and run (some 20,000 a
        second): the notices of 200,000 jobs due together would be marked over ten seconds,
        and another account's reminders due a few seconds later only after all of them. So a
        full read also sweeps, on a thread of its own, at most once a second: one statement a
        chunk marks due every notice whose time has come; their jobs then find them due and do
        nothing. (The lanes then share what is due between the accounts.)"""
        now = time.monotonic()
        with self._sweep_lock:
            if self._sweeping or now < self._next_sweep:
                return
            self._sweeping, self._next_sweep = True, now + SWEEP_EVERY
        self._sweeper = threading.Thread(target=self._sweep, name="due-sweep", daemon=True)
        self._sweeper.start()

    def _sweep(self) -> None:
        try:
            lanes = self.signal.mark_overdue()
            if lanes:
                log.debug("a burst: swept %d notice(s) due", sum(lanes.values()))
        except SQLAlchemyError as exc:  # the jobs still mark them, a batch at a time
            log.warning("could not sweep a burst's notices due (%s)", reason(exc))
        finally:
            with self._sweep_lock:
                self._sweeping = False

    def check_due(self) -> None:
        """Mark due every scheduled notice whose time has passed, while this scheduler is
        active: those whose job was lost on the way (see the module's notes)."""
        try:
            lanes = self.signal.mark_overdue()
        except SQLAlchemyError as exc:
            log.warning("could not look for overdue notices (%s)", reason(exc))
            return
        if lanes:
            log.info("marked %d overdue notice(s) due", sum(lanes.values()))
