"""Takeover: a newly elected scheduler reconciles ``--n`` pending notices with their jobs.

``--n`` scheduled notices, each with its persistent job, ``--missing`` of them without one (a
firing the database interrupted) and as many stale jobs of cancelled notices. The reconcile a
new leader runs (``NoticeScheduler.reconcile``: notices and jobs compared in the database, a
chunk at a time) is timed, with the peak memory it added.

Baseline, in the same run on the same database: the reconcile as it was before, every job id
and every scheduled notice read into memory and compared there. Each side runs in its own
process, so its peak memory is its own.

    .venv/bin/python -m bench.takeover [--n 1000000] [--missing 1000] [--db postgresql|sqlite]
Prints two JSON lines: seconds (ratio = ours / before) and added peak MB (the same).
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.common import database, in_own_process, report


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(url: str, ours: bool) -> dict[str, Any]:
    from reminders.db import make_engine
    from reminders.scheduler.notice_scheduler import JOB_PREFIX, NoticeScheduler, job_id

    engine = make_engine(url)
    scheduler = NoticeScheduler(engine)
    before = _peak_mb()
    started = time.perf_counter()
    if ours:
        result = scheduler.reconcile()
    else:
        # The reconcile before this session's change: both sides read whole, compared here.
        with engine.connect() as conn:
            job_ids = set(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
            scheduled = list(
                conn.execute(
                    text("SELECT id, send_at, priority FROM notices WHERE status = 'scheduled'")
                )
            )
        live = {job_id(n) for n, _, _ in scheduled}
        missing = [row for row in scheduled if job_id(row[0]) not in job_ids]
        orphans = [j for j in job_ids if j.startswith(JOB_PREFIX) and j not in live]
        result = {"rescheduled": len(missing), "removed": len(orphans)}
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "added_mb": _peak_mb() - before, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--missing", type=int, default=1000)
    parser.add_argument("--db", default="postgresql", choices=["sqlite", "postgresql"])
    args = parser.parse_args()

    from reminders.scheduler.notice_scheduler import job_state
    from reminders.scheduler.store import BatchJobStore

    with database(args.db) as engine:
        later = datetime.now(UTC) + timedelta(days=30)
        started = time.perf_counter()
        pg = engine.dialect.name == "postgresql"
        series = (
            f"SELECT g AS n FROM generate_series(1, {args.n}) AS g"
            if pg
            else "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s"
            f" WHERE n < {args.n}) SELECT n FROM s"
        )
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO notices (account_id, key, kind, status, phone, text, is_template,"
                    " priority, transliterate, send_at, created_at, updated_at)"
                    " SELECT 1, 'bench:' || n, 'message', CASE WHEN n <= :cancelled"
                    " THEN 'cancelled' ELSE 'scheduled' END, '+359888000000', 'x', :f, 'bulk',"
                    f" :f, :at, :at, :at FROM ({series}) AS s"
                ),
                {"cancelled": args.missing, "f": False, "at": later},
            )
            ids = list(conn.execute(text("SELECT id FROM notices ORDER BY id")).scalars())
        # Every notice its job, but the last ``missing`` (lost) and the first ``missing``
        # (cancelled, whose job stayed: stale).
        store = BatchJobStore(engine=engine, tablename="apscheduler_jobs")
        keep = ids[: len(ids) - args.missing]
        for start in range(0, len(keep), 20_000):
            store.add_job_states(
                [job_state(i, later) for i in keep[start : start + 20_000]], replace=False
            )
        print(f"{args.n:,} notices and their jobs made in {time.perf_counter() - started:.1f} s")
        url = engine.url.render_as_string(hide_password=False)
        before = in_own_process(run, url, False)
        print("before (read whole):", before)
        ours = in_own_process(run, url, True)
        print("ours (in the database, by chunks):", ours)
        expected = {"rescheduled": args.missing, "removed": args.missing}
        assert before["result"] == expected and ours["result"] == expected, (before, ours)
    report(
        f"takeover_seconds_{args.db}",
        ours["seconds"],
        "s",
        before["seconds"],
        ours["seconds"] / before["seconds"],
    )
    report(
        f"takeover_added_mb_{args.db}",
        ours["added_mb"],
        "MB",
        before["added_mb"],
        ours["added_mb"] / max(before["added_mb"], 1e-9),
    )


if __name__ == "__main__":
    main()
