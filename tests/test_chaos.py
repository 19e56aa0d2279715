"""Every process sends, and any of them may die: a drain through a real Kannel under SIGKILLs.

``serve`` and three ``worker``s share one PostgreSQL and one Redis and send through Kannel with
delivery reports requested (to the ``serve``'s callback), as in production. Every 3 s one of
them, picked at random, is killed with SIGKILL and started again. The operator's side (Kannel's
fake SMSC) must receive each number at most once, and every notice must end in a final state.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.sender.kannel import KannelSender
from tests import kannel as harness
from tests.conftest import make_key, wait_for
from tests.served import free_port
from tests.test_failover import Cluster, cluster, counts  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow  # real processes, Kannel and a minute of kills

TOTAL = 10_000
KILL_EVERY = 3.0
FINAL = {"sent", "delivered", "unknown"}
TERMINAL = FINAL | {"failed", "expired", "cancelled", "suppressed"}


@pytest.fixture
def kannel(tmp_path: Path) -> Iterator[harness.Kannel]:
    workdir = tmp_path / "kannel"
    workdir.mkdir()
    with harness.running(workdir) as running:
        yield running


@pytest.mark.timeout(420)
def test_a_drain_through_kannel_survives_a_kill_9_every_three_seconds(
    cluster: tuple[Cluster, Engine],  # noqa: F811
    kannel: harness.Kannel,
) -> None:
    group, engine = cluster
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    group.extra_env.update(
        {
            "REMINDERS_SENDER": "kannel",
            "REMINDERS_KANNEL_URL": kannel.sendsms_url,
            "REMINDERS_KANNEL_USERNAME": harness.USERNAME,
            "REMINDERS_KANNEL_PASSWORD": harness.PASSWORD,
            "REMINDERS_SENDER_ID": "MyShop",
            "REMINDERS_SEND_CONCURRENCY": "8",
            # Delivery reports come back to the serve process, as in production.
            "REMINDERS_PUBLIC_URL": base,
            "REMINDERS_WEBHOOK_SECRET": "chaos-test-webhook-secret-0123456789",
        }
    )
    roles: dict[int, tuple[str, ...]] = {}

    def start(*args: str) -> None:
        proc = group.start(*args)
        roles[proc.pid] = args

    start("serve", "--port", str(port))
    for _ in range(3):
        start("worker")
    group.wait_until_up(base)
    key = make_key(engine, "write")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with httpx.Client(base_url=base, headers=key, timeout=60) as client:
        for batch in range(TOTAL // 1000):
            phones = [f"+3598887{batch:02d}{i:03d}" for i in range(1000)]
            posted = client.post(
                "/api/v1/messages", json={"to": {"phones": phones}, "text": "c", "send_at": later}
            )
            assert posted.status_code == 201, posted.text
    # All due at once, as the leader's jobs would mark them, and every process told.
    with engine.begin() as conn:
        conn.execute(text("UPDATE notices SET status = 'due', send_at = now()"))
        conn.execute(text("DELETE FROM apscheduler_jobs"))
        conn.execute(text("SELECT pg_notify('reminders_due', 'bulk')"))

    def pending() -> int:
        state = counts(engine)
        return sum(n for status, n in state.items() if status not in TERMINAL)

    chance = random.Random(20261202)
    kills: list[str] = []
    deadline = time.monotonic() + 180
    while pending() and time.monotonic() < deadline:
        time.sleep(KILL_EVERY)
        alive = [pid for pid, proc in group.procs.items() if proc.poll() is None]
        victim = chance.choice(alive)
        os.kill(victim, signal.SIGKILL)
        group.procs[victim].wait(timeout=10)
        kills.append(roles[victim][0])
        start(*roles[victim])
        print(f"killed {roles[victim][0]} {victim}: {counts(engine)}", flush=True)
    # The last kill's notices are settled by a survivor at its second look (2 × 10 s).
    wait_for(lambda: pending() == 0, timeout=60, what="every notice to reach a final state")

    final = counts(engine)
    assert set(final) <= FINAL, final
    assert sum(final.values()) == TOTAL
    assert len(kills) >= 5, kills
    # Only what a killed process had handed to Kannel, or was handing, may be unknown: its
    # bulk lane's threads' batches.
    assert final.get("unknown", 0) <= len(kills) * 2 * KannelSender.batch_size, (final, kills)

    # The operator received each number at most once, and every notice sent exactly once.
    received = Counter(sms.receiver for sms in kannel.received())
    assert received and max(received.values()) == 1, received.most_common(3)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT phone, status FROM notices")).all()
    for phone, status in rows:
        if status in ("sent", "delivered"):
            assert received[phone] == 1, (phone, status)
    for pid, proc in group.procs.items():
        if proc.poll() is None:
            assert "Traceback" not in group.logs[pid].read_text(), group.logs[pid].read_text()
