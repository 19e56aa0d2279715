"""Never early: a firing that reaches a notice before its time leaves it for its own job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reminders.models import Notice
from reminders.process import Process
from reminders.scheduler.claims import LanePicker
from reminders.scheduler.firing import fire_many, fire_next

Headers = dict[str, str]


def test_an_event_moved_after_its_reminder_fell_due_is_not_sent_early(
    client: TestClient, writer: Headers, engine: Engine, process: Process
) -> None:
    assert process.scheduler.sending is not None
    process.scheduler.sending.stop()  # the lanes are busy elsewhere; this test plays them
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
    # Its time comes: the job marks it due, and it waits for a lane (the send rate, a busy
    # gateway, a backlog ahead of it). Meanwhile the event moves.
    with engine.begin() as conn:
        conn.execute(
            update(Notice)
            .where(col(Notice.id) == notice["id"])
            .values(send_at=datetime.now(UTC) - timedelta(seconds=1), status="due")
        )
    moved_start = start + timedelta(days=2)
    response = client.patch(
        f"/api/v1/events/{event['id']}", headers=writer, json={"start": moved_start.isoformat()}
    )
    assert response.status_code == 200, response.text
    [moved] = response.json()["notices"]
    assert moved["status"] == "scheduled"
    assert datetime.fromisoformat(moved["send_at"]) == moved_start - timedelta(minutes=1)

    # A lane that read the notice before the move claims it now, and the lanes look for work:
    # nothing may go out.
    rt = process.runtime
    assert fire_many(engine, rt.sender, [notice["id"]], settings=rt.settings) == {}
    for lane in ("bulk", "transactional"):
        picked = fire_next(engine, rt.sender, LanePicker(lane), settings=rt.settings, lane=lane)
        assert picked == 0

    with Session(engine) as session:
        row = session.get(Notice, notice["id"])
        assert row is not None
        assert row.status == "scheduled"
        assert row.send_at == moved_start - timedelta(minutes=1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM attempts")).scalar() == 0


def test_a_due_notice_whose_time_moved_later_is_not_picked(
    engine: Engine, process: Process, client: TestClient, writer: Headers
) -> None:
    """Marked due, then its send time rewritten later by a path that left the status alone: the
    claim's own ``send_at <= now`` keeps it back until its time."""
    assert process.scheduler.sending is not None
    process.scheduler.sending.stop()  # the lanes are busy elsewhere; this test plays them
    response = client.post(
        "/api/v1/messages",
        headers=writer,
        json={"to": {"phones": ["0888 710 002"]}, "text": "x", "priority": "bulk"},
    )
    assert response.status_code == 201, response.text
    [notice] = response.json()["notices"]
    assert notice["status"] == "due"
    later = datetime.now(UTC) + timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(update(Notice).where(col(Notice.id) == notice["id"]).values(send_at=later))
    rt = process.runtime
    assert fire_next(engine, rt.sender, LanePicker("bulk"), settings=rt.settings, lane="bulk") == 0
    with Session(engine) as session:
        row = session.get(Notice, notice["id"])
        assert row is not None
        assert (row.status, row.send_at) == ("due", later)
