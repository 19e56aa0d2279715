"""Statistics, the live stream, the CSV report and /metrics."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.models import Notice
from reminders.settings import Settings, load_settings
from tests.conftest import wait_for

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, quiet_hours="off")


def send(client: TestClient, headers: Headers, phones: list[str], **extra: object) -> dict:
    response = client.post(
        "/api/v1/messages",
        json={"to": {"phones": phones}, "text": "Здравейте", **extra},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_counts_by_status_kind_and_bucket(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    sent = send(client, writer, ["0888 700 101", "0888 700 102", "0888 700 103"])
    later = send(
        client,
        writer,
        ["0888 700 104"],
        send_at=(datetime.now(UTC) + timedelta(days=2)).isoformat(),
    )
    ids = [n["id"] for n in sent["notices"]]
    wait_for(
        lambda: all(
            client.get(f"/api/v1/notices/{i}", headers=writer).json()["status"] == "sent"
            for i in ids
        ),
        what="the messages to go",
    )
    # One report never came: past the DLR timeout it counts as "no report", not as failed.
    with Session(engine) as session:
        session.execute(
            update(Notice)
            .where(Notice.id == ids[0])
            .values(sent_at=datetime.now(UTC) - timedelta(days=3))
        )
        session.commit()

    response = client.get(
        "/api/v1/stats",
        params={
            "from": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "to": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
            "bucket": "day",
        },
        headers=writer,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totals"]["statuses"] == {"sent": 2, "no_report": 1, "scheduled": 1}
    assert body["totals"]["kinds"] == {"message": 4}
    assert body["totals"]["segments"] == 3  # one UCS-2 segment each for the three sent
    assert len(body["buckets"]) == 2
    assert later["notices"][0]["status"] == "scheduled"

    hourly = client.get("/api/v1/stats", params={"bucket": "hour"}, headers=writer).json()
    assert all(b["start"].endswith(":00:00") for b in hourly["buckets"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-12-01T00:00:00"}, "from"),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "from"),
        ({"bucket": "week"}, "bucket"),
    ],
)
def test_bad_ranges(client: TestClient, reader: Headers, params: dict, field: str) -> None:
    response = client.get("/api/v1/stats", params=params, headers=reader)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_stream_pushes_server_sent_events(client: TestClient, reader: Headers) -> None:
    with client.stream(
        "GET", "/api/v1/stats/stream", params={"limit": 2, "every": 0.5}, headers=reader
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    events = [chunk for chunk in body.split("\n\n") if chunk]
    assert len(events) == 2
    first = events[0].splitlines()
    assert first[0] == "event: stats"
    assert "statuses" in json.loads(first[1].removeprefix("data: "))


def test_csv_report_streams_every_notice(client: TestClient, writer: Headers) -> None:
    send(client, writer, [f"0888 70{i:04d}" for i in range(5)])
    response = client.get("/api/v1/reports/notices.csv", headers=writer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 5
    assert {r["phone"] for r in rows} == {f"+35988870{i:04d}" for i in range(5)}
    assert {r["status"] for r in rows} <= {"scheduled", "sending", "sent"}


def test_metrics(client: TestClient, reader: Headers) -> None:
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=reader)
    assert response.status_code == 200
    assert "reminders_scheduler_active 1" in response.text
