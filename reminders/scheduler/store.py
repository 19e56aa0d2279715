"""A job store that works in batches: APScheduler's SQLAlchemy store, minus its per-job costs.

The stock store commits one transaction per added job, loads every due job at once (100,000 due
jobs: 43 s and 137 MB on SQLite here) and deletes each fired job in its own transaction. This
subclass adds many jobs in one transaction, hands out due jobs ``batch_size`` at a time, and
deletes the fired ones in one statement per loop. Deferring those deletes is safe because the
notices table, not the job store, decides whether a notice is sent: a job that fires again after
a crash finds its notice already claimed. So when a delete fails (the database restarting, a
full disk), the ids are kept and deleted at the next call that reaches the database; and a
process that loses the scheduler lock forgets them (``forget_fired``): the next leader's
reconcile removes the jobs of notices that went, and fires those that did not.

Every method here runs under the scheduler's job-store lock (APScheduler takes it around store
calls; ``NoticeScheduler.schedule`` takes it around ``add_jobs``), so the sets need no lock.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from reminders.db import in_chunks


class BatchJobStore(SQLAlchemyJobStore):
    def __init__(
        self,
        *args: Any,
        batch_size: int = 1000,
        on_backlog: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.batch_size = batch_size
        # Told when a read of due jobs comes back full: more wait behind them (a burst).
        self.on_backlog = on_backlog
        self._handed_out: set[str] = set()
        self._fired: set[str] = set()
        # The error of the last get_due_jobs, which APScheduler catches and only logs: the
        # scheduler's loop reads it to know that its pass failed.
        self.due_error: Exception | None = None
        self._probe_id = f"probe:{uuid.uuid4().hex}"  # this process's own: probes never collide

    def add_job_states(self, states: Sequence[dict[str, Any]], *, replace: bool = True) -> None:
        """Insert or replace jobs, given as ``Job.__getstate__()`` dicts, in one transaction.

        Taking states rather than ``Job`` objects skips APScheduler's per-job validation, which
        costs more than the insert itself; ``NoticeScheduler.job_state`` builds them and a test
        holds them equal to what ``Job`` would produce.
        """
        if not states:
            return
        rows = [
            (
                state["id"],
                datetime_to_utc_timestamp(state["next_run_time"]),
                pickle.dumps(state, self.pickle_protocol),
            )
            for state in states
        ]
        ids = [row[0] for row in rows]
        if not replace:
            # New notices have new ids: skip the deletes, unless a stale row says otherwise.
            try:
                with self.engine.begin() as connection:
                    self._insert(connection, rows)
            except IntegrityError:
                replace = True
        if replace:
            with self.engine.begin() as connection:
                for chunk in in_chunks(ids):
                    connection.execute(self.jobs_t.delete().where(self.jobs_t.c.id.in_(chunk)))
                self._insert(connection, rows)
        self._fired.difference_update(ids)

    def _insert(self, connection: Connection, rows: list[tuple[str, float, bytes]]) -> None:
        # Straight to the driver's executemany: SQLAlchemy's per-row parameter processing cost
        # more than the insert itself.
        mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        connection.exec_driver_sql(
            f"INSERT INTO {self.jobs_t.name} (id, next_run_time, job_state) "
            f"VALUES ({mark}, {mark}, {mark})",
            rows,
        )

    def remove_jobs(self, job_ids: Sequence[str]) -> None:
        """Delete these jobs, wherever they are, in one transaction; unknown ids are ignored."""
        self._handed_out.difference_update(job_ids)
        self._fired.update(job_ids)
        self._flush_fired()

    def get_due_jobs(self, now: datetime) -> list[Job]:
        try:
            return self._due_jobs(now)
        except Exception as exc:
            self.due_error = exc
            raise

    def _due_jobs(self, now: datetime) -> list[Job]:
        self._flush_fired()
        timestamp = datetime_to_utc_timestamp(now)
        query = (
            select(self.jobs_t.c.id, self.jobs_t.c.job_state)
            .where(self.jobs_t.c.next_run_time <= timestamp)
            .order_by(self.jobs_t.c.next_run_time)
            .limit(self.batch_size)
        )
        jobs: list[Job] = []
        broken: list[str] = []
        with self.engine.begin() as connection:
            for row in connection.execute(query):
                try:
                    jobs.append(self._reconstitute_job(row.job_state))
                except Exception:
                    self._logger.exception("Unable to restore job %r; removing it", row.id)
                    broken.append(row.id)
            for chunk in in_chunks(broken):
                connection.execute(self.jobs_t.delete().where(self.jobs_t.c.id.in_(chunk)))
        self._handed_out = {job.id for job in jobs}
        if self.on_backlog is not None and len(jobs) + len(broken) >= self.batch_size:
            self.on_backlog()
        return jobs

    def remove_job(self, job_id: str) -> None:
        if job_id in self._handed_out:
            # The scheduler removes each date job right after submitting it: collect them and
            # delete the whole batch in one statement before the next read.
            self._handed_out.discard(job_id)
            self._fired.add(job_id)
            return
        self._flush_fired()
        super().remove_job(job_id)

    def get_next_run_time(self) -> datetime | None:
        self._flush_fired()
        result: datetime | None = super().get_next_run_time()
        return result

    def lookup_job(self, job_id: str) -> Job | None:
        self._flush_fired()
        job: Job | None = super().lookup_job(job_id)
        return job

    def get_all_jobs(self) -> list[Job]:
        self._flush_fired()
        jobs: list[Job] = super().get_all_jobs()
        return jobs

    def update_job(self, job: Job) -> None:
        self._flush_fired()
        super().update_job(job)

    def probe_write(self) -> None:
        """Write a row and take it back in one transaction; raise if the database refuses.

        This finds a full disk, where reads go on working. Nobody else sees the row, and with
        no run time it could never be due. It touches none of the store's own state, so it needs
        no lock (and waits for no write in progress while holding one).
        """
        with self.engine.begin() as connection:
            connection.execute(
                self.jobs_t.insert().values(id=self._probe_id, next_run_time=None, job_state=b"")
            )
            connection.execute(self.jobs_t.delete().where(self.jobs_t.c.id == self._probe_id))

    def forget_fired(self) -> int:
        """Drop the pending deletes; return how many. For a process that stopped firing: the
        next leader may already have given some of those notices new jobs, which a late delete
        would remove. The jobs left behind are harmless (see the module docstring)."""
        count = len(self._fired)
        self._fired.clear()
        self._handed_out.clear()
        return count

    def shutdown(self) -> None:
        try:
            self._flush_fired()
        except Exception as exc:
            self._logger.warning(
                "could not delete %d fired jobs at stop: %s", len(self._fired), exc
            )
        # The engine is the service's own, shared with the API: do not dispose of it here.

    def _flush_fired(self) -> None:
        if not self._fired:
            return
        fired = list(self._fired)
        with self.engine.begin() as connection:
            for chunk in in_chunks(fired):
                connection.execute(self.jobs_t.delete().where(self.jobs_t.c.id.in_(chunk)))
        # Only once committed: a failed delete is tried again at the next call, never lost.
        self._fired.difference_update(fired)
