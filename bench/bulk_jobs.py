"""Bulk scheduling: persistent jobs per second through our batch path vs APScheduler's add_job.

Both sides run a started scheduler on the same kind of database, with send times far in the
future so nothing fires. The baseline adds fewer jobs (it is ~50 times slower); rates compare.

    .venv/bin/python -m bench.bulk_jobs [--db sqlite|postgresql] [--n 100000] [--baseline-n 2000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select

from bench.common import database, report
from reminders.models import apscheduler_jobs
from reminders.scheduler.notice_scheduler import NoticeScheduler


def noop(notice_id: int) -> None:
    """The baseline's job function."""


def ours(kind: str, n: int) -> float:
    with database(kind) as engine:
        scheduler = NoticeScheduler(engine)
        scheduler.start()
        when = datetime.now(UTC) + timedelta(days=30)
        items = [(i, when + timedelta(seconds=i % 3600)) for i in range(1, n + 1)]
        started = time.perf_counter()
        for offset in range(0, n, 10_000):  # the size a planning pass commits at once
            scheduler.schedule(items[offset : offset + 10_000])
        elapsed = time.perf_counter() - started
        scheduler.shutdown()
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(apscheduler_jobs)).scalar()
        assert stored == n, f"{stored} jobs stored, {n} expected"
        return n / elapsed


def stock(kind: str, n: int) -> float:
    with database(kind) as engine:
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
            timezone=UTC,
        )
        scheduler.start()
        when = datetime.now(UTC) + timedelta(days=30)
        started = time.perf_counter()
        for i in range(1, n + 1):
            scheduler.add_job(noop, "date", run_date=when, args=[i], id=f"notice:{i}")
        elapsed = time.perf_counter() - started
        scheduler.shutdown()
        return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=2_000)
    args = parser.parse_args()
    baseline = stock(args.db, args.baseline_n)
    value = ours(args.db, args.n)
    report(f"bulk_jobs_{args.db}", value, "jobs/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
