"""PostgreSQL restarted again and again while 3,000 notices drain to a real gateway at 200/s.

A `reminders worker` sends through the `http` sender to the in-house gateway of
tests/http_gateway.py, which records what it receives, while the test restarts its own
PostgreSQL (tests/throwaway.py) six times. Every notice must end within a minute of the
database's return, reach the gateway at most once, and be `unknown` only if the gateway got it.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from reminders.db import make_engine
from reminders.messages import create_message
from reminders.migrate import upgrade
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.schemas.messages import MessageCreate
from tests.conftest import account_session, wait_for
from tests.http_gateway import SECRET, Gateway
from tests.test_e2e import REMINDERS, cli_env

pytestmark = pytest.mark.slow  # real processes, a real gateway, a database restarted

COUNT = 3000
RATE = 200
RESTARTS = 6
TERMINAL = {"sent", "delivered", "undelivered", "failed", "cancelled", "expired", "suppressed"}


def test_notices_survive_postgresql_restarts_during_a_drain(
    pg_cluster: Any, gateway: Gateway, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    engine = make_engine(url)
    upgrade(engine)
    data = MessageCreate.model_validate(
        {"to": {"phones": [f"+35988{n:07d}" for n in range(COUNT)]}, "text": "restart"}
    )
    with account_session(engine, expire_on_commit=False) as session:
        _, notices = create_message(session, NoticeScheduler(engine), data, region="BG")
        commit_and_schedule(session)
    ids = {n.id for n in notices if n.id is not None}
    assert len(ids) == COUNT

    def received() -> Counter[int]:
        return Counter(int(str(body["id"]).removeprefix("notice-")) for body in gateway.received)

    def unfinished() -> int:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM notices WHERE status IN ('scheduled', 'due', 'sending')"
            return int(conn.execute(text(query)).scalar() or 0)

    env = cli_env(url) | {
        "REMINDERS_SENDER": "http",
        "REMINDERS_HTTP_SENDER_URL": gateway.url,
        "REMINDERS_HTTP_SENDER_SECRET": SECRET,
        "REMINDERS_SEND_RATE": str(RATE),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(REMINDERS), "worker"], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    try:
        wait_for(lambda: len(gateway.received) >= 300, timeout=30, what="the drain to start")
        for _ in range(RESTARTS):
            pg_cluster.restart()
            before = len(gateway.received)
            # Spread the restarts over the drain: each one only once sending has resumed.
            wait_for(
                lambda before=before: len(gateway.received) >= before + 150,  # type: ignore[misc]
                timeout=30,
                what="sending to resume after a restart",
            )
        assert len(gateway.received) < COUNT, "the drain ended before the restarts did"
        wait_for(lambda: unfinished() == 0, timeout=60, what="every notice to end")
        assert worker.poll() is None, "the worker died"

        got = received()
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, status, status_reason FROM notices")).all()
        status = {row.id: row.status for row in rows}
        assert set(got) <= ids and max(got.values()) == 1, "the gateway got a notice twice"
        unknown = {i for i, s in status.items() if s == "unknown"}
        assert unknown <= set(got), "unknown, though the gateway never got it"
        for row in rows:
            if row.status == "sent":
                assert row.id in got, f"notice {row.id} is sent but the gateway never got it"
            elif row.id not in got:
                assert row.status in TERMINAL and row.status_reason, (row.id, row.status)
        # Nothing here was in flight at the gateway when the database went away (it answers
        # at once), so every notice was sent, once.
        assert Counter(status.values()) == {"sent": COUNT}, Counter(status.values())
        assert set(got) == ids
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
        engine.dispose()
