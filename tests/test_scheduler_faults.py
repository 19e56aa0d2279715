"""Real processes whose database, disk or Redis goes away while notices drain.

Each test runs servers of its own (tests/throwaway.py): a PostgreSQL cluster it restarts, a
redis-server it stops, a tmpfs it fills; the machine's own servers are never touched. Every
SMS goes to the in-house gateway of tests/http_gateway.py, which counts what it was handed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.db import make_engine
from reminders.migrate import upgrade
from tests.conftest import create_pg_database, make_key, wait_for
from tests.http_gateway import SECRET, Gateway
from tests.test_e2e import free_port
from tests.test_failover import Cluster, counts
from tests.throwaway import SmallDisk, TcpProxy

pytestmark = pytest.mark.slow  # real processes, servers stopped and started

TERMINAL = {"sent", "delivered", "failed", "unknown", "expired", "cancelled", "suppressed"}


class Fleet(Cluster):
    """``serve`` and ``worker`` processes sending to ``gateway``, on a Redis of the test's own
    (or none: ``redis_url=""``, single-instance mode)."""

    def __init__(self, database_url: str, workdir: Path, redis_url: str, gateway: Gateway) -> None:
        super().__init__(database_url, workdir)
        self.redis_url = redis_url
        self.redis = redis.Redis.from_url(redis_url or "redis://unused", socket_timeout=2)
        self.extra_env.update(
            {
                "REMINDERS_SENDER": "http",
                "REMINDERS_HTTP_SENDER_URL": gateway.url,
                "REMINDERS_HTTP_SENDER_SECRET": SECRET,
                "REMINDERS_SCHEDULER_STALL": "PT3S",
            }
        )

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.redis_url:
            env["REMINDERS_REDIS_URL"] = self.redis_url
        else:
            del env["REMINDERS_REDIS_URL"], env["REMINDERS_REDIS_PREFIX"]
        return env

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        # The Redis is the test's own and goes with it.

    def wait_alive(self, count: int) -> None:
        """Until ``count`` processes have connected and say they are alive in Redis."""
        wait_for(
            lambda: len(list(self.redis.scan_iter(match=f"{self.prefix}alive:*"))) >= count,
            timeout=30,
            what=f"{count} processes to be up",
        )

    def log(self, pid: int) -> str:
        return self.logs[pid].read_text()


def ready(base: str) -> tuple[int, dict[str, Any]]:
    try:
        response = httpx.get(f"{base}/readyz", timeout=5)
    except httpx.TransportError:
        return 0, {}
    return response.status_code, response.json()


def post_message(base: str, key: dict[str, str], phones: list[str], body: str) -> None:
    response = httpx.post(
        f"{base}/api/v1/messages",
        json={"to": {"phones": phones}, "text": body},
        headers=key,
        timeout=60,
    )
    assert response.status_code == 201, response.text


def phones(count: int, base: int) -> list[str]:
    return [f"+359888{base + n:06d}" for n in range(count)]


def settled(engine: Engine) -> bool:
    return set(counts(engine)) <= TERMINAL


def sent_once(gateway: Gateway) -> Counter[str]:
    """How many times the gateway was handed each notice; fails if any was handed twice."""
    handed = Counter(str(sms["id"]) for sms in list(gateway.received))
    twice = {notice: n for notice, n in handed.items() if n > 1}
    assert not twice, f"handed to the gateway more than once: {twice}"
    return handed


@pytest.fixture
def pg(pg_cluster: Any) -> Iterator[tuple[str, Engine]]:
    url = pg_cluster.create_database()
    engine = make_engine(url)
    upgrade(engine)
    yield url, engine
    engine.dispose()


def test_the_leader_survives_postgresql_restarts_during_a_drain(
    pg_cluster: Any, pg: tuple[str, Engine], own_redis: Any, gateway: Gateway, tmp_path: Path
) -> None:
    """The leader's loop lives through three restarts and stays the leader; the notices a firing
    was handling when PostgreSQL went away are fired again (REMINDERS_RECONCILE_EVERY), once."""
    url, engine = pg
    fleet = Fleet(url, tmp_path, own_redis.url, gateway)
    fleet.extra_env.update({"REMINDERS_SEND_RATE": "100", "REMINDERS_RECONCILE_EVERY": "PT2S"})
    key = make_key(engine, "write")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        leader = fleet.start("serve", "--port", str(port))
        fleet.wait_until_up(base)
        wait_for(lambda: fleet.leader_pid() == leader.pid, timeout=20, what="serve to lead")
        standby = fleet.start("worker")
        fleet.wait_alive(2)  # connected before PostgreSQL restarts: a start refuses a dead one

        total = 1000  # ten seconds at 100 a second
        post_message(base, key, phones(total, 0), "drain")
        wait_for(lambda: len(gateway.received) >= 100, timeout=30, what="the drain to start")
        for n in range(3):
            if n == 0:
                # One outage long enough that the leader is sure to meet it (its loop or its
                # five-second probe); a quick restart may fall between two passes.
                pg_cluster.stop()  # "fast": every connection is ended
                wait_for(
                    lambda: "the job store failed" in fleet.log(leader.pid),
                    timeout=30,
                    what="the leader to notice PostgreSQL is gone",
                )
                pg_cluster.start()
            else:
                pg_cluster.restart()
            before = len(gateway.received)
            # Spread the restarts over the drain: each one only once sending has resumed.
            wait_for(
                lambda before=before: len(gateway.received) >= before + 50,  # type: ignore[misc]
                timeout=30,
                what="sending to resume after a restart",
            )
        assert len(gateway.received) < total, "the drain ended before the restarts"

        # The scheduler lived through it: still the leader, still firing, and saying so.
        assert fleet.leader_pid() == leader.pid
        post_message(base, key, phones(1, 900_000), "after")
        wait_for(
            lambda: any(sms["text"] == "after" for sms in list(gateway.received)),
            timeout=30,
            what="a message created after the restarts",
        )
        code, body = wait_for(lambda: (r := ready(base))[0] == 200 and r, what="/readyz 200")
        assert body["scheduler_role"] == "active" and body["scheduler"]["thread_restarts"] == 0
        for proc in (leader, standby):
            assert proc.poll() is None
            assert "Exception in thread" not in fleet.log(proc.pid)

        try:
            wait_for(lambda: settled(engine), timeout=40, what="every notice to end")
        except AssertionError:
            raise AssertionError(f"not every notice ended: {counts(engine)}") from None
        handed = sent_once(gateway)
        final = counts(engine)
        assert set(final) <= {"sent", "unknown"} and sum(final.values()) == total + 1, final
        assert final["sent"] <= len(handed)
    finally:
        fleet.stop_all()


def test_a_leader_cut_off_from_its_database_hands_over_and_comes_back(
    pg_cluster: Any, pg: tuple[str, Engine], own_redis: Any, gateway: Gateway, tmp_path: Path
) -> None:
    """Only the leader loses PostgreSQL (its link is cut): after REMINDERS_SCHEDULER_STALL it
    says 503, frees the lock, the standby sends; mended, it is a healthy standby again."""
    url, engine = pg
    proxy = TcpProxy(pg_cluster.port)
    fleet = Fleet(url, tmp_path, own_redis.url, gateway)
    key = make_key(engine, "write")
    ports = free_port(), free_port()
    cut_off, healthy = (f"http://127.0.0.1:{p}" for p in ports)
    try:
        fleet.database_url = url.replace(f":{pg_cluster.port}/", f":{proxy.port}/")
        leader = fleet.start("serve", "--port", str(ports[0]))
        fleet.wait_until_up(cut_off)
        wait_for(lambda: fleet.leader_pid() == leader.pid, timeout=20, what="the first to lead")
        fleet.database_url = url
        standby = fleet.start("serve", "--port", str(ports[1]))
        fleet.wait_until_up(healthy)
        assert ready(healthy)[1]["scheduler_role"] == "standby"

        cut_at = time.monotonic()
        proxy.cut()
        wait_for(
            lambda: fleet.leader_pid() == standby.pid, timeout=20, what="the standby to take over"
        )
        took_over = time.monotonic() - cut_at
        assert took_over >= 3  # not before the stall: a database restart is no reason to move
        code, body = ready(cut_off)
        assert code == 503, body
        # Whichever meets the cut first, the idle loop or the probe's write, is the reason.
        assert body["checks"]["scheduler"].startswith(
            ("error: the job store has failed for", "error: the database has refused a write for")
        )
        assert body["scheduler_role"] == "standby"
        assert "giving up the scheduler lock" in fleet.log(leader.pid)

        post_message(healthy, key, phones(20, 100), "while cut off")
        wait_for(lambda: len(gateway.received) == 20, timeout=20, what="the standby to send")

        proxy.mend()
        wait_for(lambda: ready(cut_off)[0] == 200, timeout=20, what="the cut-off one to recover")
        code, body = ready(cut_off)
        assert body["scheduler_role"] == "standby" and body["checks"]["scheduler"] == "ok"
        assert fleet.leader_pid() == standby.pid
        post_message(healthy, key, phones(5, 200), "after")
        wait_for(lambda: len(gateway.received) == 25, timeout=20, what="the next message")
        sent_once(gateway)
        # The gateway's answer is recorded just after it arrives.
        wait_for(lambda: counts(engine) == {"sent": 25}, what="the outcomes to be recorded")
    finally:
        fleet.stop_all()
        proxy.close()


@pytest.fixture
def disk() -> Iterator[SmallDisk]:
    """A tmpfs to fill. 64 MB rather than conftest's 4: SQLite's WAL grows between checkpoints
    (to 4 MB, and past 16 MB on a loaded machine where readers keep a checkpoint from
    finishing), and a disk the drain fills by itself leaves ``free`` nothing to give back."""
    tmpfs = SmallDisk(64 * 1024 * 1024)
    yield tmpfs
    tmpfs.destroy()


def test_a_full_disk_is_reported_and_sending_resumes_once_there_is_room(
    disk: SmallDisk, gateway: Gateway, tmp_path: Path
) -> None:
    """SQLite, one process: while the disk is full /readyz answers 503 and says why; once
    space is back the scheduler runs again by itself and a new message goes out."""
    url = f"sqlite:///{disk.path / 'reminders.db'}"
    engine = make_engine(url)
    upgrade(engine)
    fleet = Fleet(url, tmp_path, "", gateway)
    fleet.extra_env["REMINDERS_SEND_RATE"] = "50"
    key = make_key(engine, "write")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        serve = fleet.start("serve", "--port", str(port))
        fleet.wait_until_up(base)
        total = 600  # twelve seconds at 50 a second
        post_message(base, key, phones(total, 300), "disk")
        wait_for(lambda: len(gateway.received) >= 50, timeout=30, what="the drain to start")
        disk.fill()
        code, body = wait_for(
            lambda: (r := ready(base))[0] == 503 and r, timeout=30, what="/readyz to say 503"
        )
        assert body["checks"]["scheduler"].startswith("error: the database has refused a write")
        assert body["checks"]["database"] == "ok"  # it still reads: only the scheduler is stuck

        disk.free()
        wait_for(lambda: ready(base)[0] == 200, timeout=30, what="the scheduler to recover")
        before = len(gateway.received)
        post_message(base, key, phones(1, 900_000), "after")
        wait_for(
            lambda: any(sms["text"] == "after" for sms in list(gateway.received)),
            timeout=40,  # behind what is left of the drain
            what="a new message after the disk had room again",
        )
        assert len(gateway.received) > before
        sent_once(gateway)
        assert "Exception in thread" not in fleet.log(serve.pid)
    finally:
        fleet.stop_all()
        engine.dispose()


def test_losing_redis_pauses_the_clock_but_not_the_sending(
    own_redis: Any, gateway: Gateway, tmp_path: Path
) -> None:
    """Redis stops mid-drain: the leader pauses its scheduler within one renewal, so nothing new
    falls due, but what is due already goes on out through every process's lanes (the send rate
    falls back to each process's own). Once Redis is back a leader is elected and the notice
    that came due meanwhile goes; nothing twice, and no notice of a live process is taken for a
    dead one's (none ends "unknown")."""
    url, drop = create_pg_database()
    engine = make_engine(url)
    upgrade(engine)
    fleet = Fleet(url, tmp_path, own_redis.url, gateway)
    fleet.extra_env["REMINDERS_SEND_RATE"] = "100"
    key = make_key(engine, "write")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        first = fleet.start("serve", "--port", str(port))
        fleet.wait_until_up(base)
        wait_for(lambda: fleet.leader_pid() == first.pid, timeout=20, what="serve to lead")
        other = fleet.start("worker")
        fleet.wait_alive(2)
        total = 1500
        post_message(base, key, phones(total, 500), "redis")
        later_at = datetime.now(UTC) + timedelta(seconds=6)
        response = httpx.post(
            f"{base}/api/v1/messages",
            json={
                "to": {"phones": phones(1, 3000)},
                "text": "later",
                "send_at": later_at.isoformat(),
            },
            headers=key,
            timeout=60,
        )
        assert response.status_code == 201, response.text
        [later] = response.json()["notices"]
        wait_for(lambda: len(gateway.received) >= 200, timeout=30, what="the drain to start")

        own_redis.stop()
        # It notices at its next renewal (every 3 s).
        wait_for(lambda: "scheduler is paused" in fleet.log(first.pid), what="the pause")
        # The backlog due before goes on out meanwhile.
        wait_for(lambda: len(gateway.received) >= total, timeout=60, what="the backlog to go")
        # The later one's time comes with no leader to mark it due: it waits.
        time.sleep(max(0.0, (later_at - datetime.now(UTC)).total_seconds()) + 3)
        assert len(gateway.received) == total
        with engine.connect() as conn:
            status = conn.execute(
                text("SELECT status FROM notices WHERE id = :i"), {"i": later["id"]}
            ).scalar()
        assert status == "scheduled"
        own_redis.start()

        wait_for(fleet.leader_pid, timeout=20, what="a leader once Redis is back")
        wait_for(lambda: settled(engine), timeout=60, what="every notice to end")
        handed = sent_once(gateway)
        assert len(handed) == total + 1
        # Every notice ended "sent": none in flight of a live process was taken for a dead
        # one's ("unknown"), the mistake a settle before its alive key was back would make.
        assert counts(engine) == {"sent": total + 1}
        assert "pausing this scheduler" in fleet.log(first.pid)
        for proc in (first, other):
            assert proc.poll() is None
    finally:
        fleet.stop_all()
        engine.dispose()
        drop()
