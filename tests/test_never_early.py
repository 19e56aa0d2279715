"""Never early: a firing that reaches a notice before its time leaves it for its own job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reminders.models import Notice
from reminders.process import Process
from reminders.scheduler.jobs import fire_notices

Headers = dict[str, str]


def test_an_event_moved_while_its_reminder_waits_in_the_lane_is_not_sent_early(
    client: TestClient, writer: Headers, engine: Engine, process: Process
) -> None:
    response = client.post(
        "/api/v1/policies",
        headers=writer,
        json={"name": "minute", "steps": [{"offset": "-PT1M", "template": "Часът е скоро"}]},
    )
    assert response.status_code == 201, response.text
    start = datetime.now(UTC) + timedelta(minutes=2)
    response = client.post(
        "/api/v1/events",
        headers=writer,
        json={
            "title": "Преглед",
            "start": start.isoformat(),
            "policy": "minute",
            "recipients": {"phones": ["0888 710 001"]},
        },
    )
    assert response.status_code == 201, response.text
    event = response.json()
    [notice] = event["notices"]
    # Its time comes: the job fires and hands the notice to the bulk lane, where it waits
    # behind other batches (the send rate, a busy gateway). Meanwhile the event moves.
    with engine.begin() as conn:
        conn.execute(
            update(Notice)
            .where(col(Notice.id) == notice["id"])
            .values(send_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    moved_start = start + timedelta(days=2)
    response = client.patch(
        f"/api/v1/events/{event['id']}", headers=writer, json={"start": moved_start.isoformat()}
    )
    assert response.status_code == 200, response.text
    [moved] = response.json()["notices"]
    assert moved["status"] == "scheduled"
    assert datetime.fromisoformat(moved["send_at"]) == moved_start - timedelta(minutes=1)

    # The lane gets to the stale batch now: nothing may go out.
    fire_notices(process.scheduler, [notice["id"]])

    with Session(engine) as session:
        row = session.get(Notice, notice["id"])
        assert row is not None
        assert row.status == "scheduled"
        assert row.send_at == moved_start - timedelta(minutes=1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM attempts")).scalar() == 0
