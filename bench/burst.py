"""Burst: N notices due at once, each claimed, rendered and handed to the outbox sender.

Baseline, in the same run: stock APScheduler (its own SQLAlchemy job store and thread pool, no
misfire grace so it drops nothing) firing N no-op jobs that are all due, on the same kind of
database. Each side runs in its own process, so peak memory is its own.

    .venv/bin/python -m bench.burst [--n 100000] [--db sqlite|postgresql] [--helpers 1]

``--helpers`` (PostgreSQL): that many more processes run sending lanes beside the one whose
scheduler marks the notices due, and claim from the same queue, as ``reminders worker``s do.
Prints one JSON line; value and baseline are seconds (lower is better), ratio = value/baseline.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from bench.common import database, in_own_process, report

TEMPLATE = "Здравейте, {{ first_name }}: {{ title }} утре в {{ time }} ч., {{ location }}."
_counter = 0


def noop(notice_id: int) -> None:
    global _counter
    _counter += 1  # one attribute increment: a job that does nothing measurable


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def helper(url: str, n: int, index: int) -> None:
    """Another sending process: lanes only (no scheduler), until ``n`` are in the outbox."""
    from reminders.db import make_engine
    from reminders.runtime import Runtime
    from reminders.scheduler.due import DueSignal
    from reminders.scheduler.sending import SendingLanes
    from reminders.sender.outbox import OutboxSender
    from reminders.settings import load_settings

    engine = make_engine(url)
    settings = load_settings(database_url=url, quiet_hours="off")
    rt = Runtime(settings, engine, OutboxSender(settings, engine), token=f"helper-{index}")
    signal = DueSignal(engine, poll=0.2)
    signal.listen()
    lanes = SendingLanes(rt, signal, threads=2)
    lanes.start()
    try:
        while True:
            with engine.connect() as conn:
                if (conn.execute(text("SELECT count(*) FROM outbox")).scalar() or 0) >= n:
                    return
            time.sleep(0.2)
    finally:
        lanes.stop()
        signal.close()
        engine.dispose()


def run_ours(kind: str, n: int, helpers: int = 0) -> dict[str, Any]:
    from reminders.models import Anchor, Contact, Notice
    from reminders.runtime import Runtime
    from reminders.scheduler.notice_scheduler import NoticeScheduler
    from reminders.sender.outbox import OutboxSender
    from reminders.settings import load_settings

    with database(kind) as engine:
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                insert(Contact),
                [
                    {
                        "account_id": 1,
                        "name": f"Иван {i}",
                        "name_folded": f"иван {i}",
                        "phone": f"+35988{i:07d}",
                        "language": "bg",
                        "opted_out": False,
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(1000)
                ],
            )
            conn.execute(
                insert(Anchor),
                [
                    {
                        "account_id": 1,
                        "key": "bench",
                        "kind": "event",
                        "title": "Д-р Петрова",
                        "policy": "appointment",
                        "at": now + timedelta(hours=3),
                        "all_day": False,
                        "cancelled": False,
                        "data": {"location": "кабинет 5"},
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
            anchor_id = conn.execute(text("SELECT id FROM anchors")).scalar()
            due = now + timedelta(seconds=1)
            for start in range(0, n, 10_000):
                conn.execute(
                    insert(Notice),
                    [
                        {
                            "account_id": 1,
                            "key": f"bench:{i}",
                            "kind": "event_reminder",
                            "status": "scheduled",
                            "anchor_id": anchor_id,
                            "contact_id": i % 1000 + 1,
                            "step": 1,
                            "phone": f"+35989{i:07d}",
                            "text": TEMPLATE,
                            "is_template": True,
                            "send_at": due,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in range(start, min(n, start + 10_000))
                    ],
                )
        settings = load_settings(database_url=str(engine.url), quiet_hours="off")
        rt = Runtime(settings, engine, OutboxSender(settings, engine), token="bench")
        scheduler = NoticeScheduler(engine, runtime=rt)
        with engine.connect() as conn:
            ids = [row[0] for row in conn.execute(text("SELECT id FROM notices"))]
        scheduler.schedule([(i, due) for i in ids])
        url = engine.url.render_as_string(hide_password=False)
        others = [
            multiprocessing.get_context("spawn").Process(target=helper, args=(url, n, i))
            for i in range(helpers)
        ]
        for process in others:
            process.start()
        scheduler.start()
        started = time.perf_counter()
        while True:
            with engine.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM outbox")).scalar()
            if done >= n:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        scheduler.shutdown()
        for process in others:
            process.join(timeout=30)
        with engine.connect() as conn:
            statuses = dict(
                conn.execute(text("SELECT status, count(*) FROM notices GROUP BY status")).all()
            )
            twice = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT notice_id FROM outbox "
                    "GROUP BY notice_id HAVING count(*) > 1) x"
                )
            ).scalar()
            sample = conn.execute(text("SELECT text FROM outbox LIMIT 1")).scalar()
        return {
            "seconds": elapsed,
            "peak_mb": _peak_mb(),
            "statuses": statuses,
            "twice": twice,
            "sample": sample,
        }


def run_stock(kind: str, n: int) -> dict[str, Any]:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from reminders.scheduler.notice_scheduler import job_state
    from reminders.scheduler.store import BatchJobStore

    with database(kind) as engine:
        due = datetime.now(UTC) + timedelta(seconds=1)
        states = []
        for i in range(1, n + 1):
            state = job_state(i, due)
            state.update(func="bench.burst:noop", executor="default")
            states.append(state)
        BatchJobStore(engine=engine, tablename="apscheduler_jobs").add_job_states(states)
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
            job_defaults={"misfire_grace_time": None},
            timezone=UTC,
        )
        # The job reference imports bench.burst, which under `python -m` is not this __main__.
        import bench.burst as jobs_module

        scheduler.start()
        started = time.perf_counter()
        while jobs_module._counter < n:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        scheduler.shutdown()
        return {"seconds": elapsed, "peak_mb": _peak_mb(), "ran": jobs_module._counter}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--helpers", type=int, default=0)
    args = parser.parse_args()
    if args.helpers and args.db != "postgresql":
        parser.error("--helpers needs --db postgresql: SQLite is one process's database")
    stock = in_own_process(run_stock, args.db, args.n)
    # A pool's process may not start processes of its own: with helpers, ours runs here (its
    # peak memory is still its own: this process has only parsed the arguments).
    ours = (
        run_ours(args.db, args.n, args.helpers)
        if args.helpers
        else in_own_process(run_ours, args.db, args.n)
    )
    print(f"ours: {ours}\nstock: {stock}", file=sys.stderr)
    assert ours["statuses"] == {"sent": args.n}, ours["statuses"]
    assert ours["twice"] == 0
    assert stock["ran"] == args.n
    report(
        f"burst_{args.db}" + (f"_{args.helpers + 1}_processes" if args.helpers else ""),
        ours["seconds"],
        "s",
        stock["seconds"],
        ours["seconds"] / stock["seconds"],
    )
    print(
        f"peak memory: ours {ours['peak_mb']:.0f} MB, stock {stock['peak_mb']:.0f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
