"""Scale-out: 20,000 bulk notices due at once, drained by 1, 2 and 4 ``reminders worker``
processes through a real Kannel with delivery reports requested.

Every worker runs the lanes (every process sends); each has the same per-link concurrency
(``REMINDERS_SEND_CONCURRENCY``), so adding workers adds requests in flight. Each run has a
fresh PostgreSQL database and Redis prefix; the workers start first, and the notices are written
due 15 s ahead, so the measured time runs from their send time (the leader's jobs mark them due)
to the last one recorded sent. fakesmsc must have received every one of them exactly once.

    .venv/bin/python -m bench.scale_out [--n 20000] [--concurrency 4] [--workers 1,2,4]

Prints one JSON line: msg/s with the most workers, with one worker as the baseline, their ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.common import cluster_env, database, report, unfinished, wait_until_alive
from bench.link_throughput import REPORTS
from reminders.accounts.scoping import scoped_session
from reminders.messages import create_message
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.schemas.messages import MessageCreate
from tests import kannel as harness

ROOT = Path(__file__).resolve().parent.parent
REMINDERS = ROOT / ".venv" / "bin" / "reminders"
REDIS_URL = "redis://127.0.0.1:6379/0"
LEAD = 15.0  # seconds between writing the notices and their send time


def through_kannel(kannel: harness.Kannel, reports: str) -> dict[str, str]:
    """The settings of a bench cluster that sends through the harness's Kannel, asking for
    delivery reports at ``reports``."""
    return {
        "quiet_hours": "off",
        "sender": "kannel",
        "kannel_url": kannel.sendsms_url,
        "kannel_username": harness.USERNAME,
        "kannel_password": harness.PASSWORD,
        "sender_id": "MyShop",
        "public_url": reports,
        "webhook_secret": "bench-cluster-secret",
    }


def seed(engine: Engine, prefix: str, n: int, send_at: datetime) -> None:
    """``n`` bulk notices to numbers starting with ``prefix``, all due at ``send_at``."""
    scheduler = NoticeScheduler(engine)  # writes the jobs; the workers' leader fires them
    for start in range(0, n, 10_000):
        phones = [f"{prefix}{i:06d}" for i in range(start, min(n, start + 10_000))]
        data = MessageCreate.model_validate(
            {
                "to": {"phones": phones},
                "text": "Bill 84.20 BGN due 15 Dec",
                "send_at": send_at.isoformat(),
            }
        )
        with scoped_session(engine, 1, expire_on_commit=False) as session:
            create_message(session, scheduler, data, region="BG")
            commit_and_schedule(session)


def drain(
    workers: int, n: int, concurrency: int, kannel: harness.Kannel, reports: str, workdir: Path
) -> float:
    """Messages per second that ``workers`` worker processes drain, from the notices' send time
    to the last one recorded."""
    prefix = f"+35988{workers}"  # one number range per run: fakesmsc's log is shared
    with database("postgresql") as engine:
        redis_prefix = f"bench-scale-{uuid.uuid4().hex[:8]}:"
        env = cluster_env(
            engine,
            REDIS_URL,
            redis_prefix,
            **through_kannel(kannel, reports),
            send_concurrency=str(concurrency),
        )
        procs = []
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for i in range(workers):
                log = (workdir / f"worker-{workers}-{i}.log").open("wb")
                procs.append(
                    subprocess.Popen([str(REMINDERS), "worker"], env=env, stdout=log, stderr=log)
                )
            wait_until_alive(client, redis_prefix, workers)
            send_at = datetime.now(UTC) + timedelta(seconds=LEAD)
            seed(engine, prefix, n, send_at)
            wait = (send_at - datetime.now(UTC)).total_seconds()
            if wait < 1:
                raise SystemExit("seeding outlasted the lead: raise LEAD")
            time.sleep(wait)
            started = time.perf_counter()
            deadline = time.monotonic() + 600
            while unfinished(engine):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{workers} workers: {unfinished(engine)} left after 600 s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
            for key in client.scan_iter(match=f"{redis_prefix}*"):
                client.delete(key)
        with engine.connect() as conn:
            states = dict(
                conn.execute(text("SELECT status, count(*) FROM notices GROUP BY status")).all()
            )
    if states != {"sent": n}:
        raise SystemExit(f"{workers} workers: notices ended {states}")
    got = Counter(sms.receiver for sms in kannel.received() if sms.receiver.startswith(prefix))
    if len(got) != n or max(got.values()) != 1:
        raise SystemExit(f"{workers} workers: fakesmsc got {sum(got.values())} for {len(got)}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    rates: dict[int, float] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        harness.running(Path(tmp)) as kannel,
        harness.serving(REPORTS) as reports,
    ):
        for workers in counts:
            rates[workers] = drain(workers, args.n, args.concurrency, kannel, reports, Path(tmp))
            print(
                f"{workers} worker(s), {args.concurrency} in flight each: "
                f"{rates[workers]:.0f} msg/s",
                file=sys.stderr,
                flush=True,
            )
    most, one = rates[counts[-1]], rates[counts[0]]
    report("scale_out", most, "msg/s", one, most / one)


if __name__ == "__main__":
    main()
