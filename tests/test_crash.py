"""A kill -9 in the middle of a burst: after a restart every notice ends exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from reminders.db import make_engine
from reminders.migrate import upgrade
from reminders.sender.outbox import OutboxSender
from reminders.sender.rate import LocalRate
from tests.conftest import make_key, wait_for
from tests.test_e2e import REMINDERS, cli_env, free_port

pytestmark = pytest.mark.slow  # real processes and clocks: not in the fast tier

BURST = 3000


def start(
    database_url: str, port: int, workdir: Path, name: str, rate: int | None = None
) -> subprocess.Popen[bytes]:
    env = cli_env(database_url)
    if rate is not None:
        env["REMINDERS_SEND_RATE"] = str(rate)
    with (workdir / f"{name}.log").open("wb") as out:
        return subprocess.Popen(
            [str(REMINDERS), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=out,
        )


# Without a rate the outbox takes batches of 200; at 500 a second a batch is a slice of 100,
# claimed only once its budget is there.
@pytest.mark.parametrize("rate", [None, 500], ids=["no-rate", "rate-500"])
def test_sigkill_mid_burst_then_restart(
    database_url: str, tmp_path: Path, rate: int | None
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    key = make_key(engine, "write")
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def count(status: str) -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM notices WHERE status = :s"), {"s": status}
                ).scalar()
                or 0
            )

    first = start(database_url, port, tmp_path, "first", rate)
    second = None
    try:
        wait_for(up, timeout=30, what="serve to answer")
        phones = [f"+35988{n:07d}" for n in range(BURST)]
        send_at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        response = httpx.post(
            f"{base}/api/v1/messages",
            json={"to": {"phones": phones}, "text": "burst", "send_at": send_at},
            headers=key,
            timeout=60,
        )
        assert response.status_code == 201, response.text
        wait_for(lambda: count("sent") >= 100, timeout=30, what="the burst to start")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        interrupted_sent = count("sent")
        assert interrupted_sent < BURST, "the burst ended before the kill; make it larger"

        second = start(database_url, port, tmp_path, "second", rate)
        wait_for(up, timeout=30, what="the restarted serve to answer")
        wait_for(
            lambda: count("scheduled") == 0 and count("due") == 0 and count("sending") == 0,
            timeout=120,
            what="every notice to end",
        )
        with engine.connect() as conn:
            final = dict(
                conn.execute(text("SELECT status, count(*) FROM notices GROUP BY status")).all()
            )
            handed = conn.execute(
                text(
                    "SELECT n.status, count(o.id) FROM notices n "
                    "LEFT JOIN outbox o ON o.notice_id = n.id GROUP BY n.id, n.status"
                )
            ).all()
        assert set(final) <= {"sent", "unknown"}, final
        assert sum(final.values()) == BURST
        # Only the batches being sent at the kill may be unknown: one per executor thread.
        batch = OutboxSender.batch_size if rate is None else LocalRate(rate).slice_size(200)
        assert final.get("unknown", 0) <= 2 * batch
        assert all(n <= 1 for _, n in handed), "a notice was handed to the sender twice"
        assert all(n == 1 for status, n in handed if status == "sent")
        assert "Traceback" not in (tmp_path / "second.log").read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        engine.dispose()
