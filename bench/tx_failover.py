"""Transactional latency while the active scheduler is killed: alerts must not wait for a leader.

Three real processes (two ``reminders serve``, one ``reminders worker``) on PostgreSQL and Redis
send through a real Kannel with delivery reports requested, ``REMINDERS_SEND_RATE=200`` shared
through Redis. First 50 transactional messages are posted through the API one every 0.5 s with
nothing else going on (the baseline); then 20,000 bulk notices fall due, and the same 50 are
posted again while the active scheduler is killed with SIGKILL three times (before the 6th, the
21st and the 36th alert) and restarted 1 s later. A new leader takes about 11 s to be elected
(the lock's TTL), so several alerts of each round are posted while there is none. Each alert is
posted to a serve process that is alive; its latency runs from the API call to the gateway's
acceptance (the attempt's ``submitted_at``).

    .venv/bin/python -m bench.tx_failover [--bulk 20000] [--rate 200]
Prints the p50s, then one JSON line: p99 in ms with the kills, p99 idle; ratio = value/baseline.
The goal is a p99 under 2 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis
from sqlmodel import Session

from bench.common import cluster_env, database, report
from bench.link_throughput import REPORTS
from bench.scale_out import LEAD, REDIS_URL, REMINDERS, seed, through_kannel
from bench.tx_latency import ALERTS, SPACING, _latencies, _percentile
from reminders import apikeys
from reminders.models import Scope
from tests import kannel as harness

KILL_BEFORE = (5, 20, 35)  # alert indices
RESTART_AFTER = 1.0  # seconds


class Cluster:
    """The processes, by pid, each with the command line that restarts it."""

    def __init__(self, env: dict[str, str], workdir: Path, redis_prefix: str) -> None:
        self.env, self.workdir = env, workdir
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.prefix = redis_prefix
        self.procs: dict[int, tuple[subprocess.Popen[bytes], tuple[str, ...]]] = {}
        self.started = 0

    def start(self, *args: str) -> None:
        self.started += 1
        log = (self.workdir / f"{args[0]}-{self.started}.log").open("wb")
        proc = subprocess.Popen([str(REMINDERS), *args], env=self.env, stdout=log, stderr=log)
        self.procs[proc.pid] = (proc, args)

    def ports(self) -> list[int]:
        """The API ports of the serve processes alive now."""
        return [
            int(args[2])
            for proc, args in self.procs.values()
            if args[0] == "serve" and proc.poll() is None
        ]

    def live_leader(self) -> int | None:
        token = self.redis.get(f"{self.prefix}scheduler:leader")
        if not token:
            return None
        pid = int(token.decode().split(":")[1])
        entry = self.procs.get(pid)
        return pid if entry and entry[0].poll() is None else None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.live_leader() is not None and all(_ready(p) for p in self.ports()):
                return
            time.sleep(0.2)
        raise SystemExit("the cluster did not come up: see the logs")

    def kill_leader(self, timeout: float = 30) -> tuple[str, ...]:
        """SIGKILL the active scheduler, once there is one again (an election after the last
        kill takes the lock's TTL, longer than the alerts between two kills)."""
        deadline = time.monotonic() + timeout
        while (pid := self.live_leader()) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"no live leader to kill after {timeout:g} s")
            time.sleep(0.2)
        proc, args = self.procs.pop(pid)
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return args

    def stop(self) -> None:
        for proc, _ in self.procs.values():
            proc.terminate()
        for proc, _ in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for key in self.redis.scan_iter(match=f"{self.prefix}*"):
            self.redis.delete(key)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def alerts(
    cluster: Cluster, headers: dict[str, str], base: int, kills: tuple[int, ...]
) -> tuple[dict[int, float], int]:
    """Post the alerts, killing the leader before those in ``kills``; each message id with the
    time of its API call, and how many alerts were posted while no live process led."""
    called: dict[int, float] = {}
    restart: list[tuple[float, tuple[str, ...]]] = []
    leaderless = 0
    with httpx.Client(timeout=10) as client:
        for i in range(ALERTS):
            for at, args in list(restart):
                if time.monotonic() >= at:
                    cluster.start(*args)
                    restart.remove((at, args))
            if i in kills:
                restart.append((time.monotonic() + RESTART_AFTER, cluster.kill_leader()))
            leaderless += cluster.live_leader() is None
            ports = [p for p in cluster.ports() if _ready(p)]  # a restarted one may be starting
            port = ports[i % len(ports)]
            started = time.time()
            response = client.post(
                f"http://127.0.0.1:{port}/api/v1/messages",
                headers=headers,
                json={
                    "to": {"phones": [f"+3598879{base + i:05d}"]},
                    "text": f"Card payment of 42.00 BGN declined ({i})",
                    "priority": "transactional",
                },
            )
            response.raise_for_status()
            called[int(response.json()["id"])] = started
            time.sleep(SPACING)
    for _, args in restart:
        cluster.start(*args)
    return called, leaderless


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        harness.running(Path(tmp)) as kannel,
        harness.serving(REPORTS) as reports,
        database("postgresql") as engine,
    ):
        redis_prefix = f"bench-txf-{uuid.uuid4().hex[:8]}:"
        env = cluster_env(
            engine,
            REDIS_URL,
            redis_prefix,
            **through_kannel(kannel, reports),
            send_rate=str(args.rate),
            send_concurrency="8",
        )
        with Session(engine) as session:
            secret = apikeys.create_key(
                session, name="bench", scope=Scope.write, account_id=1
            ).secret
            session.commit()
        headers = {"Authorization": f"Bearer {secret}"}
        cluster = Cluster(env, Path(tmp), redis_prefix)
        try:
            for port in (_free_port(), _free_port()):
                cluster.start("serve", "--port", str(port))
            cluster.start("worker")
            cluster.wait_ready()
            idle = _latencies(engine, alerts(cluster, headers, 0, ())[0])

            due = datetime.now(UTC) + timedelta(seconds=LEAD)
            seed(engine, "+359886", args.bulk, due)
            if datetime.now(UTC) > due:
                raise SystemExit("seeding outlasted the lead: raise LEAD")
            while datetime.now(UTC) < due + timedelta(seconds=2):
                time.sleep(0.1)
            called, leaderless = alerts(cluster, headers, ALERTS, KILL_BEFORE)
            killed = _latencies(engine, called)
            with engine.connect() as conn:
                left = conn.exec_driver_sql(
                    "SELECT count(*) FROM notices WHERE priority = 'bulk' "
                    "AND status IN ('scheduled', 'due')"
                ).scalar()
        finally:
            cluster.stop()
    if not left:
        sys.exit("the bulk backlog drained before the alerts were measured; raise --bulk")
    if not leaderless:
        sys.exit("no alert was posted while there was no leader: the kills did not bite")
    p99, idle_p99 = _percentile(killed, 0.99), _percentile(idle, 0.99)
    print(
        f"idle p50 {statistics.median(idle):.0f} ms; with {len(KILL_BEFORE)} leader kills and "
        f"{args.bulk} bulk behind: p50 {statistics.median(killed):.0f} ms, p99 {p99:.0f} ms, "
        f"max {max(killed):.0f} ms; {leaderless} of {ALERTS} alerts posted with no leader; "
        f"{left} bulk still waiting at the end",
        file=sys.stderr,
    )
    report("tx_failover", p99, "ms", idle_p99, p99 / idle_p99)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
