"""Statistics, the live stream, the CSV report and /metrics."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine

from reminders.messages import create_message
from reminders.models import Notice
from reminders.schemas.messages import MessageCreate
from reminders.settings import Settings, load_settings
from reminders.stats import Bucket, notice_stats, offset_spans
from tests.conftest import account_session, wait_for
from tests.test_metrics import sample

Headers = dict[str, str]
SOFIA = ZoneInfo("Europe/Sofia")


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
    with account_session(engine) as session:
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
    assert hourly["timezone"] == "Europe/Sofia"
    for entry in hourly["buckets"]:
        start = datetime.fromisoformat(entry["start"])
        assert start.utcoffset() == start.astimezone(SOFIA).utcoffset()
        assert start.minute == 0 and start.second == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "from"),
        ({"from": "2026-12-02", "to": "2026-12-01"}, "from"),
        ({"bucket": "week"}, "bucket"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, "from"),
        ({"from": "9999-12-30T00:00:00-14:00", "to": "9999-12-31T23:59:59-14:00"}, "from"),
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


def test_the_stream_counts_the_last_24_hours_not_what_is_to_come(
    client: TestClient, reader: Headers, writer: Headers
) -> None:
    send(client, writer, ["0888 700 120"])
    send(
        client,
        writer,
        ["0888 700 121"],
        send_at=(datetime.now(UTC) + timedelta(hours=12)).isoformat(),
    )
    with client.stream(
        "GET", "/api/v1/stats/stream", params={"limit": 1}, headers=reader
    ) as response:
        body = "".join(response.iter_text())
    payload = json.loads(body.splitlines()[1].removeprefix("data: "))
    assert payload["kinds"] == {"message": 1}
    assert sum(payload["statuses"].values()) == 1


def test_csv_report_streams_every_notice(client: TestClient, writer: Headers) -> None:
    send(client, writer, [f"0888 70{i:04d}" for i in range(5)])
    response = client.get("/api/v1/reports/notices.csv", headers=writer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 5
    assert {r["phone"] for r in rows} == {f"+35988870{i:04d}" for i in range(5)}
    assert {r["status"] for r in rows} <= {"scheduled", "due", "sending", "sent"}


def test_metrics(client: TestClient, reader: Headers) -> None:
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=reader)
    assert response.status_code == 200
    assert sample(response.text, "reminders_scheduler_active") == 1


# Buckets follow a zone's clock: labelled with their offset, across clock changes too.
NOW = datetime(2027, 10, 25, 12, 0, tzinfo=SOFIA)
# 20:30 UTC on the 30th; 21:30 UTC on the 30th, already the 31st in Sofia; then 03:30 twice.
SEND_TIMES = [
    "2027-10-30T23:30:00+03:00",
    "2027-10-31T00:30:00+03:00",
    "2027-10-31T03:30:00+03:00",
    "2027-10-31T03:30:00+02:00",
]


def counts(engine: Engine, bucket: Bucket, zone: ZoneInfo) -> dict[str, int]:
    with account_session(engine, expire_on_commit=False) as session:
        for send_at in SEND_TIMES:
            data = MessageCreate.model_validate(
                {"to": {"phones": ["0888 700 130"]}, "text": "x", "send_at": send_at}
            )
            create_message(session, None, data, region="BG", now=NOW)
        _, buckets = notice_stats(
            session,
            start=datetime(2027, 10, 30, tzinfo=SOFIA),
            end=datetime(2027, 11, 1, tzinfo=SOFIA),
            bucket=bucket,
            dlr_timeout=timedelta(hours=48),
            now=NOW,
            zone=zone,
        )
    return {b.start: sum(b.statuses.values()) for b in buckets}


def test_hours_on_the_zone_s_clock_with_the_repeated_hour_apart(engine: Engine) -> None:
    assert counts(engine, "hour", SOFIA) == {
        "2027-10-30T23:00:00+03:00": 1,
        "2027-10-31T00:00:00+03:00": 1,
        "2027-10-31T03:00:00+03:00": 1,
        "2027-10-31T03:00:00+02:00": 1,
    }


def test_days_on_the_zone_s_clock(engine: Engine) -> None:
    assert counts(engine, "day", SOFIA) == {
        "2027-10-30T00:00:00+03:00": 1,
        "2027-10-31T00:00:00+03:00": 3,
    }


def test_days_in_utc(engine: Engine) -> None:
    assert counts(engine, "day", ZoneInfo("UTC")) == {
        "2027-10-30T00:00:00+00:00": 2,
        "2027-10-31T00:00:00+00:00": 2,
    }


def test_hours_in_a_half_hour_zone(engine: Engine) -> None:
    # 20:30, 21:30, 00:30 and 01:30 UTC are 02:00, 03:00, 06:00 and 07:00 in Kolkata.
    assert counts(engine, "hour", ZoneInfo("Asia/Kolkata")) == {
        "2027-10-31T02:00:00+05:30": 1,
        "2027-10-31T03:00:00+05:30": 1,
        "2027-10-31T06:00:00+05:30": 1,
        "2027-10-31T07:00:00+05:30": 1,
    }


def test_the_offsets_of_a_range_come_to_the_minute() -> None:
    start = datetime(2027, 1, 1, 0, 0, 13, tzinfo=UTC)
    spans = offset_spans(start, datetime(2028, 1, 1, tzinfo=UTC), SOFIA)
    assert spans == [
        (start, timedelta(hours=2)),
        (datetime(2027, 3, 28, 1, 0, tzinfo=UTC), timedelta(hours=3)),
        (datetime(2027, 10, 31, 1, 0, tzinfo=UTC), timedelta(hours=2)),
    ]
    lord_howe = offset_spans(
        start, datetime(2028, 1, 1, tzinfo=UTC), ZoneInfo("Australia/Lord_Howe")
    )
    assert [change for change, _ in lord_howe[1:]] == [
        datetime(2027, 4, 3, 15, 0, tzinfo=UTC),
        datetime(2027, 10, 2, 15, 30, tzinfo=UTC),
    ]


def test_plain_dates_are_midnights_in_the_zone_asked_for(
    client: TestClient, writer: Headers
) -> None:
    day = (datetime.now(SOFIA) + timedelta(days=10)).date()
    # 00:30 in Sofia: still the day before in UTC.
    at = datetime(day.year, day.month, day.day, 0, 30, tzinfo=SOFIA)
    send(client, writer, ["0888 700 140"], send_at=at.isoformat())
    midnight = datetime(day.year, day.month, day.day, tzinfo=SOFIA)
    params = {"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()}

    sofia = client.get("/api/v1/stats", params=params, headers=writer)
    assert sofia.status_code == 200, sofia.text
    body = sofia.json()
    assert body["timezone"] == "Europe/Sofia"
    assert body["start"] == midnight.isoformat() and body["totals"]["kinds"] == {"message": 1}
    assert [b["start"] for b in body["buckets"]] == [midnight.isoformat()]
    hours = client.get("/api/v1/stats", params={**params, "bucket": "hour"}, headers=writer)
    assert [b["start"] for b in hours.json()["buckets"]] == [midnight.isoformat()]

    utc = client.get("/api/v1/stats", params={**params, "tz": "UTC"}, headers=writer).json()
    assert utc["timezone"] == "UTC" and utc["buckets"] == []
    wider = {"from": (day - timedelta(days=1)).isoformat(), "to": params["to"], "tz": "UTC"}
    [before] = client.get("/api/v1/stats", params=wider, headers=writer).json()["buckets"]
    assert before["start"] == f"{day - timedelta(days=1)}T00:00:00+00:00"

    # A range written with an offset gets buckets labelled on the zone's clock, not in UTC.
    offset = {"from": midnight.isoformat(), "to": (midnight + timedelta(days=1)).isoformat()}
    [bucket] = client.get("/api/v1/stats", params=offset, headers=writer).json()["buckets"]
    assert bucket["start"] == midnight.isoformat()
