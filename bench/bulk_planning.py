"""Bulk planning: notices, with their persistent jobs, created through plan_for.

One anchor with N/2 recipients and the two-step "appointment" policy gives N notices and N jobs
in one planning pass. Baseline, in the same run and on the same kind of database: the same
planning pass writing its jobs with APScheduler's add_job loop on a started stock scheduler
(it is slow, so it plans fewer; rates compare).

    .venv/bin/python -m bench.bulk_planning [--n 100000] [--baseline-n 2000] \
        [--db sqlite|postgresql]
Prints one JSON line: notices per second (higher is better); ratio = value/baseline.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, insert, select, text
from sqlmodel import Session

from bench.common import database, report
from reminders.models import Anchor, AnchorRecipient, Notice, apscheduler_jobs
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.anchors import plan_for
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.settings import load_settings


class AddJobLoop:
    """The baseline's job writer: one stock ``add_job`` call per notice."""

    def __init__(self, engine: object) -> None:
        store = SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")
        self.scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)

    def schedule(self, items: list[tuple[Any, ...]], *, new: bool = False) -> None:
        for notice_id, send_at, *_ in items:  # the priority, when given, picks a lane: none here
            self.scheduler.add_job(
                "reminders.scheduler.jobs:fire_notice",
                "date",
                run_date=send_at,
                args=[notice_id],
                id=f"notice:{notice_id}",
                replace_existing=True,
                misfire_grace_time=None,
            )

    def unschedule(self, notice_ids: list[int]) -> None:
        for notice_id in notice_ids:
            self.scheduler.remove_job(f"notice:{notice_id}")

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        self.scheduler.shutdown()


def run(kind: str, n: int, *, stock: bool) -> float:
    with database(kind) as engine:
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                insert(Anchor),
                [
                    {
                        "account_id": 1,
                        "key": "bench",
                        "kind": "event",
                        "title": "Vaccination day",
                        "policy": "appointment",
                        "at": now + timedelta(days=10),
                        "all_day": False,
                        "cancelled": False,
                        "data": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
            anchor_id = conn.execute(text("SELECT id FROM anchors")).scalar()
            conn.execute(
                insert(AnchorRecipient),
                [
                    {"anchor_id": anchor_id, "phone": f"+35988{i:07d}", "contact_id": None}
                    for i in range(n // 2)
                ],
            )
        settings = load_settings(database_url=str(engine.url))
        scheduler = AddJobLoop(engine) if stock else NoticeScheduler(engine)
        scheduler.start()
        started = time.perf_counter()
        with Session(engine) as session:
            result = plan_for(session, scheduler, anchor_id, settings=settings, now=now)  # type: ignore[arg-type]
            commit_and_schedule(session)
        elapsed = time.perf_counter() - started
        scheduler.shutdown()
        with engine.connect() as conn:
            notices = conn.execute(select(func.count()).select_from(Notice)).scalar()
            jobs = conn.execute(select(func.count()).select_from(apscheduler_jobs)).scalar()
        assert len(result.created) == notices == jobs == n, (len(result.created), notices, jobs)
        return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=2_000)
    args = parser.parse_args()
    baseline = run(args.db, args.baseline_n, stock=True)
    value = run(args.db, args.n, stock=False)
    report(f"bulk_planning_{args.db}", value, "notices/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
