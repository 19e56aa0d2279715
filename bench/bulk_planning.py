"""Bulk planning: notices, with their persistent jobs, created through plan_for.

One anchor with N/2 recipients and the two-step "appointment" policy gives N notices and N jobs
in one planning pass. Baseline, in the same run: APScheduler's add_job loop on a started
scheduler, on the same kind of database (it is slow, so it adds fewer; rates compare).

    .venv/bin/python -m bench.bulk_planning [--n 100000] [--baseline-n 2000] \
        [--db sqlite|postgresql]
Prints one JSON line: notices per second (higher is better); ratio = value/baseline.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, text
from sqlmodel import Session

from bench.bulk_jobs import stock
from bench.common import database, report
from reminders.models import Anchor, AnchorRecipient, Notice, apscheduler_jobs
from reminders.scheduler.anchors import plan_for
from reminders.scheduler.service import NoticeScheduler
from reminders.settings import load_settings


def ours(kind: str, n: int) -> float:
    with database(kind) as engine:
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                insert(Anchor),
                [
                    {
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
        scheduler = NoticeScheduler(engine)
        scheduler.start()
        started = time.perf_counter()
        with Session(engine) as session:
            result = plan_for(session, scheduler, anchor_id, settings=settings, now=now)
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
    baseline = stock(args.db, args.baseline_n)
    value = ours(args.db, args.n)
    report(f"bulk_planning_{args.db}", value, "notices/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
