"""Punctuality: with N notices pending for later, how late do 200 due notices reach the sender?

200 notices are spread over 20 s while N others wait for next month. Lateness is the time from
a notice's send_at to the outbox sender writing it. Baseline, in the same run: stock APScheduler
with the same N jobs pending, firing 200 no-op jobs that record when they ran.

    .venv/bin/python -m bench.punctuality [--pending 100000] [--db sqlite|postgresql]
Prints one JSON line: p99 lateness in ms, ours and stock (lower is better); ratio = value/baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text
from sqlmodel import col

from bench.common import database, in_own_process, report

DUE = 200
SPREAD = 20.0
ran_at: dict[int, float] = {}


def record(job_number: int) -> None:
    ran_at[job_number] = time.time()


def _percentiles(lateness_ms: list[float]) -> dict[str, float]:
    ordered = sorted(lateness_ms)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


def run_ours(kind: str, pending: int) -> dict[str, Any]:
    from reminders.models import Notice, OutboxMessage
    from reminders.runtime import Runtime
    from reminders.scheduler.notice_scheduler import NoticeScheduler
    from reminders.sender.outbox import OutboxSender
    from reminders.settings import load_settings

    with database(kind) as engine:
        now = datetime.now(UTC)
        later = now + timedelta(days=30)
        # Far enough ahead that writing the notices and their jobs ends before the first falls
        # due (checked below): else its lateness would count the set-up.
        first = now + timedelta(seconds=5 + pending / 4_000)
        due_times = [first + timedelta(seconds=SPREAD * i / DUE) for i in range(DUE)]
        with engine.begin() as conn:
            for start in range(0, pending, 10_000):
                conn.execute(
                    insert(Notice),
                    [
                        {
                            "account_id": 1,
                            "key": f"pending:{i}",
                            "kind": "message",
                            "status": "scheduled",
                            "phone": f"+35988{i:07d}",
                            "text": "later",
                            "is_template": False,
                            "send_at": later + timedelta(seconds=i),
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in range(start, min(pending, start + 10_000))
                    ],
                )
            conn.execute(
                insert(Notice),
                [
                    {
                        "account_id": 1,
                        "key": f"due:{i}",
                        "kind": "message",
                        "status": "scheduled",
                        "phone": f"+35989{i:07d}",
                        "text": "now",
                        "is_template": False,
                        "send_at": at,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, at in enumerate(due_times)
                ],
            )
        settings = load_settings(database_url=str(engine.url))
        rt = Runtime(settings, engine, OutboxSender(settings, engine), token="bench")
        scheduler = NoticeScheduler(engine, runtime=rt)
        with engine.connect() as conn:
            rows = conn.execute(select(Notice.id, Notice.send_at)).all()
        scheduler.schedule([(i, at) for i, at in rows], new=True)
        if datetime.now(UTC) >= first:
            raise RuntimeError("writing the notices and their jobs outlasted the lead")
        scheduler.start()
        deadline = time.time() + (first - datetime.now(UTC)).total_seconds() + SPREAD + 30
        while time.time() < deadline:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM outbox")).scalar() >= DUE:
                    break
            time.sleep(0.5)
        scheduler.shutdown()
        with engine.connect() as conn:
            pairs = conn.execute(
                select(Notice.send_at, OutboxMessage.created_at).join(
                    Notice, col(Notice.id) == col(OutboxMessage.notice_id)
                )
            ).all()
        lateness = [(handed - due).total_seconds() * 1000 for due, handed in pairs]
        assert len(lateness) == DUE, f"{len(lateness)} of {DUE} sent"
        return _percentiles(lateness)


def run_stock(kind: str, pending: int) -> dict[str, Any]:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    import bench.punctuality as jobs_module
    from reminders.scheduler.notice_scheduler import job_state
    from reminders.scheduler.store import BatchJobStore

    with database(kind) as engine:
        now = datetime.now(UTC)
        later = now + timedelta(days=30)
        first = now + timedelta(seconds=5)
        due_times = {i: first + timedelta(seconds=SPREAD * i / DUE) for i in range(DUE)}
        states = []
        for i in range(pending):
            states.append(job_state(1_000_000 + i, later + timedelta(seconds=i)))
        for i, at in due_times.items():
            states.append(job_state(i, at))
        for state in states:
            state.update(func="bench.punctuality:record", executor="default")
        BatchJobStore(engine=engine, tablename="apscheduler_jobs").add_job_states(states)
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
            job_defaults={"misfire_grace_time": None},
            timezone=UTC,
        )
        scheduler.start()
        deadline = time.time() + 5 + SPREAD + 30
        while len(jobs_module.ran_at) < DUE and time.time() < deadline:
            time.sleep(0.2)
        scheduler.shutdown()
        lateness = [(jobs_module.ran_at[i] - at.timestamp()) * 1000 for i, at in due_times.items()]
        return _percentiles(lateness)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    stock = in_own_process(run_stock, args.db, args.pending)
    ours = in_own_process(run_ours, args.db, args.pending)
    print(f"ours (ms): {ours}\nstock (ms): {stock}", file=sys.stderr)
    report(
        f"punctuality_p99_{args.db}", ours["p99"], "ms", stock["p99"], ours["p99"] / stock["p99"]
    )


if __name__ == "__main__":
    main()
