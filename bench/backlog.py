"""Backlog: millions of notices pending, ``serve`` and two ``worker``s on one PostgreSQL.

``--n`` scheduled notices (a month ahead), each with its persistent job, written in bulk as the
batch store writes them. Then ``reminders serve`` and two ``reminders worker`` processes start
(Redis for the lock). For ``--observe`` seconds the scheduler lock must not change hands (the
first leader reconciles the whole backlog meanwhile, off the lock's thread); then the active
one is killed with SIGKILL and another must hold the lock within 15 s. Each process's peak
resident memory (VmHWM) is read before the kill.

    .venv/bin/python -m bench.backlog [--n 5000000] [--observe 600]

Prints one JSON line: seconds from the kill to a new leader, against the lock's TTL (10 s: no
takeover can be quicker than the dead leader's lock expiring), ratio = takeover / TTL.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import text

from bench.common import cluster_env, database, report
from bench.scale_out import REDIS_URL, REMINDERS
from reminders.scheduler.notice_scheduler import job_state
from reminders.scheduler.store import BatchJobStore

LOCK_TTL = 10.0  # the scheduler lock's TTL (Leadership's default)


def seed(engine, n: int) -> None:  # type: ignore[no-untyped-def]
    later = datetime.now(UTC) + timedelta(days=30)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notices (account_id, key, kind, status, phone, text, is_template,"
                " priority, transliterate, send_at, created_at, updated_at)"
                " SELECT 1, 'bench:' || g, 'message', 'scheduled', '+359888000000', 'x', false,"
                " 'bulk', false, :at, :now, :now FROM generate_series(1, :n) AS g"
            ),
            {"at": later, "now": datetime.now(UTC), "n": n},
        )
    store = BatchJobStore(engine=engine, tablename="apscheduler_jobs")
    with engine.connect() as conn:
        last = 0
        while True:
            ids = list(
                conn.execute(
                    text("SELECT id FROM notices WHERE id > :last ORDER BY id LIMIT 50000"),
                    {"last": last},
                ).scalars()
            )
            if not ids:
                break
            store.add_job_states([job_state(i, later) for i in ids], replace=False)
            last = ids[-1]
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print(f"{n:,} notices and jobs written in {time.perf_counter() - started:.0f} s", flush=True)


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmHWM for {pid}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5_000_000)
    parser.add_argument("--observe", type=float, default=600)
    args = parser.parse_args()
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"bench-backlog-{uuid.uuid4().hex[:8]}:"
    with database("postgresql") as engine, tempfile.TemporaryDirectory() as tmp:
        seed(engine, args.n)
        env = cluster_env(
            engine,
            REDIS_URL,
            prefix,
        )
        commands = [["serve", "--port", "18731"], ["worker"], ["worker"]]
        procs: dict[int, subprocess.Popen[bytes]] = {}
        for command in commands:
            log = (Path(tmp) / f"{command[0]}-{len(procs)}.log").open("wb")
            proc = subprocess.Popen([str(REMINDERS), *command], env=env, stdout=log, stderr=log)
            procs[proc.pid] = proc
        lock = f"{prefix}scheduler:leader"

        def leader() -> int | None:
            token = client.get(lock)
            return int(token.decode().split(":")[1]) if token else None

        try:
            changes: list[tuple[float, int | None]] = []
            started = time.monotonic()
            while time.monotonic() - started < args.observe:
                now = leader()
                if not changes or changes[-1][1] != now:
                    changes.append((time.monotonic() - started, now))
                dead = [pid for pid, p in procs.items() if p.poll() is not None]
                if dead:
                    raise SystemExit(f"process {dead} ended: see its log in {tmp}")
                time.sleep(0.25)
            held = [pid for _, pid in changes if pid is not None]
            print(f"leaders seen in {args.observe:.0f} s: {changes}", file=sys.stderr)
            if len(set(held)) != 1 or changes[-1][1] is None:
                raise SystemExit(f"the lock changed hands or lapsed: {changes}")
            memory = {f"{procs[pid].args[1]}-{pid}": round(peak_mb(pid)) for pid in procs}
            print(f"peak RSS (MB): {memory}", file=sys.stderr)
            active = held[0]
            os.kill(active, signal.SIGKILL)
            killed = time.monotonic()
            while (now := leader()) in (None, active):
                if time.monotonic() - killed > 60:
                    raise SystemExit("no process took over within 60 s")
                time.sleep(0.05)
            takeover = time.monotonic() - killed
            print(f"new leader {now} after {takeover:.1f} s", file=sys.stderr)
            with engine.connect() as conn:
                states = dict(
                    conn.execute(text("SELECT status, count(*) FROM notices GROUP BY status")).all()
                )
            print(f"notices: {states}", file=sys.stderr)
            if max(memory.values()) >= 400:
                raise SystemExit(f"a process went past 400 MB: {memory}")
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=30)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
    report("backlog_takeover", takeover, "s", LOCK_TTL, takeover / LOCK_TTL)


if __name__ == "__main__":
    main()
