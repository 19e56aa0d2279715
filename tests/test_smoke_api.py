import threading
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from reminders.models import Notice
from reminders.process import Process


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "scheduler": "ok",
        "sending": "ok",
        "webhooks": "ok",
    }


def test_a_process_whose_sending_or_webhook_threads_ended_is_not_ready(
    client: TestClient, process: Process
) -> None:
    """Every process sends and delivers webhooks: a thread of either that ended (a bug got out
    of its loop) makes it unready, naming the thread, so that it is restarted."""
    ended = threading.Thread(target=lambda: None, name="webhooks-0")
    ended.start()
    ended.join()
    assert process.scheduler.webhooks is not None and process.scheduler.sending is not None
    process.scheduler.webhooks._threads.append(ended)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["webhooks"] == "error: webhook threads ended: ['webhooks-0']"
    assert ready.json()["checks"]["sending"] == "ok"
    lane = threading.Thread(target=lambda: None, name="send-bulk-9")
    lane.start()
    lane.join()
    process.scheduler.sending._threads.append(lane)
    assert client.get("/readyz").json()["checks"]["sending"] == (
        "error: lane threads ended: ['send-bulk-9']"
    )


def test_readyz_counts_the_due_notices_of_each_lane(
    client: TestClient, writer: dict[str, str], engine: Engine, process: Process
) -> None:
    assert process.scheduler.sending is not None
    process.scheduler.sending.stop()  # nothing takes them: they wait, due
    posted = client.post(
        "/api/v1/messages",
        headers=writer,
        json={"to": {"phones": ["0888 990 001", "0888 990 002"]}, "text": "x"},
    )
    assert posted.status_code == 201, posted.text
    with engine.begin() as conn:
        ten_ago = datetime.now(UTC) - timedelta(seconds=10)
        conn.execute(update(Notice).where(col(Notice.status) == "due").values(send_at=ten_ago))
    body = client.get("/readyz").json()
    assert body["queue"]["transactional"] == {"due": 0, "more": False, "oldest_seconds": None}
    bulk = body["queue"]["bulk"]
    assert (bulk["due"], bulk["more"]) == (2, False)
    assert 10 <= bulk["oldest_seconds"] < 60
