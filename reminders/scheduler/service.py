"""The in-process scheduler: an APScheduler ``BackgroundScheduler`` on the notices' database.

Facts that shaped it (see the APScheduler notes in the project's references):
- a ``BackgroundScheduler`` runs the job store's blocking calls on its own thread, where an
  ``AsyncIOScheduler`` would freeze the API's event loop during a burst;
- the default misfire grace of 1 s silently drops jobs that fell due while the service was down
  or while the executor was busy, so it is disabled: whether a late notice is still useful is
  decided by the notice, not by the scheduler;
- the notices table is the truth and the job only a trigger, so ``reconcile`` repairs the job
  store from the table at start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reminders.db import utcnow
from reminders.models import JOBS_TABLE, Notice, NoticeStatus, apscheduler_jobs
from reminders.scheduler.jobs import fire_notice

log = logging.getLogger(__name__)
JOB_PREFIX = "notice:"


def job_id(notice_id: int) -> str:
    return f"{JOB_PREFIX}{notice_id}"


class NoticeScheduler:
    def __init__(self, engine: Engine, *, threads: int = 10) -> None:
        self.engine = engine
        self._scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)},
            executors={"default": ThreadPoolExecutor(threads)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        # Interrupted sends are settled before any job can fire, so that a notice this start
        # claims is never mistaken for one a crash left behind.
        self.settle_interrupted()
        self._scheduler.start()
        self.reconcile()

    def shutdown(self, *, wait: bool = True) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    def schedule(self, items: Iterable[tuple[int, datetime]]) -> None:
        """Create or replace the job of each (notice id, send time)."""
        for notice_id, send_at in items:
            self._scheduler.add_job(
                fire_notice,
                "date",
                run_date=send_at,
                args=[notice_id],
                id=job_id(notice_id),
                replace_existing=True,
            )

    def unschedule(self, notice_ids: Iterable[int]) -> None:
        for notice_id in notice_ids:
            try:
                self._scheduler.remove_job(job_id(notice_id))
            except JobLookupError:
                pass  # already fired or never scheduled: nothing left to remove

    def settle_interrupted(self) -> int:
        """Mark notices a crash left in ``sending`` as ``unknown``; return how many.

        Such a notice was handed to the sender, or nearly: resending it blindly could send it
        twice, so its outcome is recorded as unknown instead.
        """
        with Session(self.engine) as session:
            count = session.execute(
                update(Notice)
                .where(col(Notice.status) == NoticeStatus.sending)
                .values(
                    status=NoticeStatus.unknown,
                    status_reason="the service stopped while sending it; it was not resent",
                    updated_at=utcnow(),
                )
            ).rowcount
            session.commit()
        if count:
            log.warning("%d notice(s) were being sent when the service stopped: now unknown", count)
        return count

    def reconcile(self) -> dict[str, int]:
        """Make the job store agree with the notices table after a stop or a crash.

        A scheduled notice without a job gets one (it fires at once if due); a job whose notice
        is no longer scheduled is removed. A job that fires twice because of a race here is
        harmless: the second firing finds the notice already claimed.
        """
        # Jobs are read before notices: a notice created in between then looks "missing" (its job
        # is re-added, harmless) rather than its job looking orphaned (removed, a lost notice).
        with Session(self.engine) as session:
            job_ids = set(session.execute(select(apscheduler_jobs.c.id)).scalars())
        with Session(self.engine) as session:
            scheduled = session.execute(
                select(Notice.id, Notice.send_at).where(Notice.status == NoticeStatus.scheduled)
            ).all()
        live = {job_id(notice_id) for notice_id, _ in scheduled}
        missing = [(nid, at) for nid, at in scheduled if job_id(nid) not in job_ids]
        orphans = [j for j in job_ids if j.startswith(JOB_PREFIX) and j not in live]
        self.schedule(missing)
        for orphan in orphans:
            try:
                self._scheduler.remove_job(orphan)
            except JobLookupError:
                pass
        report = {"rescheduled": len(missing), "removed": len(orphans)}
        if any(report.values()):
            log.info("reconciled notices with the job store: %s", report)
        return report
