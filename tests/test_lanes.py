"""Two lanes under one send rate: an alert never waits behind a bulk backlog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.models import Attempt, Notice
from reminders.process import Process
from reminders.runtime import Runtime
from reminders.scheduler.notice_scheduler import NoticeScheduler, job_state
from reminders.settings import Settings, load_settings
from tests.conftest import wait_for

pytestmark = pytest.mark.slow  # real processes and clocks: not in the fast tier

Headers = dict[str, str]
RATE = 20  # messages per second
BULK = 120  # six seconds of budget


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, send_rate=RATE, quiet_hours="off")


def phones(count: int, base: int = 0) -> list[str]:
    return [f"+35988860{base + i:04d}" for i in range(count)]


def counts(engine: Engine, priority: str) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(Notice.status, func.count())
            .where(Notice.priority == priority)
            .group_by(col(Notice.status))
        ).all()
    return {status: int(n) for status, n in rows}


def send(client: TestClient, headers: Headers, to: list[str], priority: str) -> int:
    response = client.post(
        "/api/v1/messages",
        headers=headers,
        json={"to": {"phones": to}, "text": f"{priority} test", "priority": priority},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_transactional_overtakes_a_bulk_backlog(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    send(client, writer, phones(BULK), "bulk")
    wait_for(lambda: counts(engine, "bulk").get("sent"), what="the bulk drain to start")
    send(client, writer, phones(1, base=BULK), "transactional")
    wait_for(lambda: counts(engine, "transactional").get("sent") == 1, what="the alert to be sent")

    wait_for(lambda: counts(engine, "bulk").get("sent") == BULK, what="the backlog to drain")
    with Session(engine) as session:
        first, last = session.exec(
            select(func.min(Attempt.submitted_at), func.max(Attempt.submitted_at))
        ).one()
        alert_at = session.exec(
            select(Attempt.submitted_at)
            .join(Notice, col(Notice.id) == col(Attempt.notice_id))
            .where(Notice.priority == "transactional")
        ).one()
        after_alert = session.exec(
            select(func.count()).select_from(Attempt).where(col(Attempt.submitted_at) > alert_at)
        ).one()
    # At 20 a second the backlog takes six seconds; the alert went out while most of it waited
    # (its own send times, not when this test looked).
    assert after_alert >= BULK // 3, after_alert
    # The rate held: 121 messages at 20 a second, less the first slice and the alert's lead,
    # cannot go out in under five seconds however fast the machine.
    assert (last - first).total_seconds() >= 5


def test_a_stop_mid_backlog_loses_nothing(
    client: TestClient, writer: Headers, engine: Engine, process: Process
) -> None:
    send(client, writer, phones(60), "bulk")
    wait_for(lambda: counts(engine, "bulk").get("sent"), what="the drain to start")
    rt = process.runtime
    process.scheduler.shutdown(wait=True)  # returns without draining the backlog
    left = counts(engine, "bulk")
    assert set(left) <= {"sent", "due"}, left  # nothing stuck "sending" or "unknown"
    assert left.get("due", 0) > 0

    # The next start's lanes find the due notices and send each one once.
    again = NoticeScheduler(engine, runtime=Runtime(rt.settings, engine, rt.sender, token="second"))
    again.start()
    try:
        wait_for(lambda: counts(engine, "bulk") == {"sent": 60}, what="the rest to be sent")
    finally:
        again.shutdown(wait=True)
    with Session(engine) as session:
        attempts = session.exec(select(func.count()).select_from(Attempt)).one()
    assert attempts == 60


def test_jobs_name_their_lane() -> None:
    when = datetime(2027, 1, 1, tzinfo=UTC)
    assert job_state(1, when)["executor"] == "notices"
    assert job_state(1, when, "bulk")["executor"] == "notices"
    assert job_state(1, when, "transactional")["executor"] == "transactional"


def test_notices_filter_by_lane(client: TestClient, writer: Headers) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for priority, phone in (("bulk", "+359888650001"), ("transactional", "+359888650002")):
        body = {"to": {"phones": [phone]}, "text": "x", "priority": priority, "send_at": later}
        assert client.post("/api/v1/messages", json=body, headers=writer).status_code == 201
    for lane, phone in (("bulk", "+359888650001"), ("transactional", "+359888650002")):
        listed = client.get(f"/api/v1/notices?priority={lane}", headers=writer).json()["items"]
        assert [(n["phone"], n["priority"]) for n in listed] == [(phone, lane)]
    refused = client.get("/api/v1/notices?priority=urgent", headers=writer)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "priority"
