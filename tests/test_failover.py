"""Several processes, one PostgreSQL, one Redis: exactly one fires; a kill -9 loses nothing.

Real processes (`reminders serve` and `reminders worker`), real PostgreSQL, real Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.db import make_engine
from reminders.migrate import upgrade
from reminders.sender.outbox import OutboxSender
from reminders.sender.rate import SLICE, TRANSACTIONAL_LEAD
from tests.conftest import create_pg_database, make_key, wait_for
from tests.test_e2e import REMINDERS, cli_env, free_port

pytestmark = pytest.mark.slow  # real processes and clocks: not in the fast tier

REDIS_URL = "redis://127.0.0.1:6379/0"


class Cluster:
    def __init__(self, database_url: str, workdir: Path) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.extra_env: dict[str, str] = {}
        self.prefix = f"reminders-test-{uuid.uuid4().hex[:8]}:"
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: dict[int, Path] = {}

    def env(self) -> dict[str, str]:
        env = cli_env(self.database_url)
        env["REMINDERS_REDIS_URL"] = REDIS_URL
        env["REMINDERS_REDIS_PREFIX"] = self.prefix
        return {**env, **self.extra_env}

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{args[0]}-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(REMINDERS), *args], cwd=self.workdir, env=self.env(), stdout=out, stderr=out
            )
        self.procs[proc.pid] = proc
        self.logs[proc.pid] = log
        return proc

    def wait_until_up(self, base: str) -> None:
        last: list[str] = ["no answer"]

        def up() -> bool:
            try:
                answer = httpx.get(f"{base}/readyz", timeout=1)
            except httpx.TransportError as exc:
                last[0] = repr(exc)
                return False
            last[0] = f"{answer.status_code} {answer.text}"
            return answer.status_code == 200

        try:
            wait_for(up, timeout=30, what="serve to answer")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its last answer: {last[0]}") from None

    def leader_pid(self) -> int | None:
        token = self.redis.get(f"{self.prefix}scheduler:leader")
        return int(token.decode().split(":")[1]) if token else None

    def wait_for_campaigns(self, standbys: int) -> None:
        """Wait until ``standbys`` processes besides the leader have each campaigned since now.

        Each leadership step writes the process's alive key (its TTL jumps back up), then
        stands for the lock: a second jump means the step begun at the first has ended."""
        leader = self.leader_pid()
        last: dict[str, int] = {}
        jumps: dict[str, int] = {}

        def campaigned() -> bool:
            for raw in self.redis.scan_iter(match=f"{self.prefix}alive:*"):
                key = raw.decode() if isinstance(raw, bytes) else str(raw)
                if int(key.split(":")[-2]) == leader:
                    continue
                ttl = self.redis.pttl(key)
                if key in last and ttl > last[key]:
                    jumps[key] = jumps.get(key, 0) + 1
                last[key] = ttl
            return len([n for n in jumps.values() if n >= 2]) >= standbys

        wait_for(campaigned, timeout=30, what=f"{standbys} standbys to campaign")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for key in self.redis.scan_iter(match=f"{self.prefix}*"):
            self.redis.delete(key)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, Engine]]:
    url, drop = create_pg_database()
    engine = make_engine(url)
    upgrade(engine)
    group = Cluster(url, tmp_path)
    try:
        yield group, engine
    finally:
        group.stop_all()
        engine.dispose()
        drop()


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM notices GROUP BY status")).all()
    return {status: n for status, n in rows}


def test_one_leader_and_a_kill_9_loses_nothing(cluster: tuple[Cluster, Engine]) -> None:
    group, engine = cluster
    key = make_key(engine, "write")
    port = free_port()
    group.start("serve", "--port", str(port))
    group.start("worker")
    group.start("worker")
    base = f"http://127.0.0.1:{port}"
    group.wait_until_up(base)
    first_leader = wait_for(group.leader_pid, timeout=20, what="a leader")
    assert first_leader in group.procs
    group.wait_for_campaigns(standbys=2)
    assert group.leader_pid() == first_leader  # the lock did not move

    # A stream of due notices: 40 messages of 10 recipients, one every 0.5 s from now on.
    start = datetime.now(UTC) + timedelta(seconds=2)
    total = 0
    with httpx.Client(base_url=base, headers=key, timeout=10) as client:
        for m in range(40):
            phones = [f"+3598881{m:02d}{r:03d}" for r in range(10)]
            send_at = (start + timedelta(seconds=0.5 * m)).isoformat()
            response = client.post(
                "/api/v1/messages",
                json={"to": {"phones": phones}, "text": f"m{m}", "send_at": send_at},
            )
            assert response.status_code == 201, response.text
            total += 10
    # Mid-stream, the active scheduler dies without a chance to clean up.
    wait_for(lambda: counts(engine).get("sent", 0) >= 60, timeout=30, what="the stream to start")
    os.kill(first_leader, signal.SIGKILL)
    group.procs[first_leader].wait(timeout=10)

    new_leader = wait_for(  # once the dead one's lock expires: 10 s, and a poll
        lambda: (pid := group.leader_pid()) and pid != first_leader and pid,
        timeout=40,
        what="another process to take over",
    )
    assert group.procs[new_leader].poll() is None

    def settled() -> bool:
        state = counts(engine)
        return not {"scheduled", "due", "sending"} & {k for k, n in state.items() if n}

    wait_for(settled, timeout=60, what="every notice to reach a final state")
    final = counts(engine)
    assert set(final) <= {"sent", "unknown"}, final
    assert sum(final.values()) == total
    # Only what the dead process was handing to the sender at that instant may be unknown.
    assert final.get("unknown", 0) <= 2 * OutboxSender.batch_size

    with engine.connect() as conn:
        per_notice = conn.execute(
            text(
                "SELECT n.status, count(o.id) FROM notices n "
                "LEFT JOIN outbox o ON o.notice_id = n.id GROUP BY n.id, n.status"
            )
        ).all()
    assert all(sent <= 1 for _, sent in per_notice), "a notice was handed to the sender twice"
    assert all(sent == 1 for status, sent in per_notice if status == "sent")
    for pid, proc in group.procs.items():
        if pid != first_leader:
            assert proc.poll() is None, group.logs[pid].read_text()
            assert "Traceback" not in group.logs[pid].read_text()


def test_the_send_rate_holds_across_instances_and_a_takeover(
    cluster: tuple[Cluster, Engine],
) -> None:
    """With REMINDERS_SEND_RATE in a cluster, the rate holds before, during and after a kill -9
    of the sending instance. (That two live instances draw on one budget
    is proved with real Redis in test_rate.)"""
    group, engine = cluster
    rate, total = 100, 800
    key = make_key(engine, "write")
    port = free_port()
    group.extra_env["REMINDERS_SEND_RATE"] = str(rate)
    group.start("serve", "--port", str(port))
    group.start("worker")
    base = f"http://127.0.0.1:{port}"
    group.wait_until_up(base)
    leader = wait_for(group.leader_pid, timeout=20, what="a leader")
    posted_at = time.monotonic()
    response = httpx.post(
        f"{base}/api/v1/messages",
        json={"to": {"phones": [f"+35988820{i:04d}" for i in range(total)]}, "text": "r"},
        headers=key,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    wait_for(lambda: counts(engine).get("sent", 0) >= 150, timeout=30, what="the drain to start")
    killed_at = time.monotonic()
    os.kill(leader, signal.SIGKILL)
    group.procs[leader].wait(timeout=10)
    sent_before_kill = counts(engine).get("sent", 0)
    wait_for(  # once the dead one's lock expires: 10 s, and a poll
        lambda: (pid := group.leader_pid()) and pid != leader and pid,
        timeout=40,
        what="another process to take over",
    )
    elected_at = time.monotonic()
    sent_before_takeover = counts(engine).get("sent", 0)

    def settled() -> bool:
        state = counts(engine)
        return not {"scheduled", "due", "sending"} & {k for k, n in state.items() if n}

    wait_for(settled, timeout=60, what="every notice to reach a final state")
    settled_at = time.monotonic()
    final = counts(engine)
    assert set(final) <= {"sent", "unknown"} and sum(final.values()) == total, final
    # The budget granted in any stretch of time is at most the rate times its length, plus a
    # lead's worth borrowed and what the lane threads held when it began. Each stretch here is
    # timed from outside: it starts before and ends after the sends it counts, so a slow
    # machine only makes it longer. Without the rate, the 650-odd left at the takeover would
    # go out within a second or two.
    slack = rate * TRANSACTIONAL_LEAD + 3 * rate * SLICE
    assert sent_before_kill <= rate * (killed_at - posted_at) + slack
    after = final["sent"] - sent_before_takeover
    assert after <= rate * (settled_at - elected_at) + slack, after


def test_an_alert_sent_while_the_leader_dies_goes_out_at_once(
    cluster: tuple[Cluster, Engine],
) -> None:
    """A transactional message is written ``due`` and claimed by any process's lanes: it does
    not wait for the ~11 s it takes to elect a new leader. Three times, each right after the
    active scheduler was killed with SIGKILL."""
    group, engine = cluster
    key = make_key(engine, "write")
    ports = [free_port(), free_port()]
    roles: dict[int, tuple[str, ...]] = {}
    for port in ports:
        proc = group.start("serve", "--port", str(port))
        roles[proc.pid] = ("serve", "--port", str(port))
    proc = group.start("worker")
    roles[proc.pid] = ("worker",)
    for port in ports:
        group.wait_until_up(f"http://127.0.0.1:{port}")
    for round_ in range(3):
        leader = wait_for(  # a live one: a killed leader's key outlives it by its TTL
            lambda: (pid := group.leader_pid()) and group.procs[pid].poll() is None and pid,
            timeout=40,
            what="a live leader",
        )
        os.kill(leader, signal.SIGKILL)
        group.procs[leader].wait(timeout=10)
        assert group.leader_pid() == leader  # its lock has not expired: no leader now
        port = next(p for p in ports if roles[leader] != ("serve", "--port", str(p)))
        posted_at = datetime.now(UTC)
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/messages",
            json={
                "to": {"phones": [f"+35988830{round_:04d}"]},
                "text": "Card payment 84.20 BGN",
                "priority": "transactional",
            },
            headers=key,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        [notice] = response.json()["notices"]

        def handed_over(notice_id: int = notice["id"]) -> datetime | None:
            with engine.connect() as conn:
                return conn.execute(
                    text("SELECT created_at FROM outbox WHERE notice_id = :n"), {"n": notice_id}
                ).scalar()

        at = wait_for(handed_over, timeout=10, what="the alert to reach the gateway")
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        assert (at - posted_at).total_seconds() < 2.0
        assert group.leader_pid() in (leader, None)  # still no new leader when it went
        proc = group.start(*roles[leader])
        roles[proc.pid] = roles[leader]
        if roles[leader][0] == "serve":
            group.wait_until_up(f"http://127.0.0.1:{roles[leader][2]}")
