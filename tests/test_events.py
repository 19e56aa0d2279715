"""Events over the API: planned by their policy, moved, cancelled; dates read as written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.dates import accepted_days

Headers = dict[str, str]
SOFIA = ZoneInfo("Europe/Sofia")


def later_day(days: int, hour: int = 10, minute: int = 30) -> datetime:
    day = (datetime.now(SOFIA) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SOFIA)


def contact(client: TestClient, headers: Headers, phone: str) -> int:
    response = client.post(
        "/api/v1/contacts", json={"name": "Иван", "phone": phone}, headers=headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def create(client: TestClient, headers: Headers, **body: Any) -> Any:
    return client.post("/api/v1/events", json=body, headers=headers)


def job_times(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all())


def test_event_lifecycle(client: TestClient, writer: Headers, engine: Engine) -> None:
    ivan = contact(client, writer, "0888 700 001")
    start = later_day(10)
    response = create(
        client,
        writer,
        title="Д-р Петрова",
        start=start.replace(tzinfo=None).isoformat(timespec="minutes"),
        timezone="Europe/Sofia",
        location="кабинет 5",
        recipients={"contacts": [ivan], "phones": ["0888 700 002"]},
        external_id="booking-1",
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert datetime.fromisoformat(event["start"]) == start
    assert event["recipients"] == ["+359888700001", "+359888700002"]
    assert event["planned"]["created"] == 4
    steps = {(n["phone"], n["step"]): n for n in event["notices"]}
    assert datetime.fromisoformat(steps[("+359888700001", 0)]["send_at"]) == (
        start - timedelta(days=1)
    ).replace(hour=18, minute=0)
    assert datetime.fromisoformat(steps[("+359888700001", 1)]["send_at"]) == start - timedelta(
        hours=2
    )
    assert len(job_times(engine)) == 4

    # Moving the start moves every pending notice and its job.
    moved = client.patch(
        f"/api/v1/events/{event['id']}",
        json={"start": (start + timedelta(days=2)).isoformat()},
        headers=writer,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["planned"]["moved"] == 4
    new_times = {n["id"]: datetime.fromisoformat(n["send_at"]) for n in moved.json()["notices"]}
    jobs = job_times(engine)
    assert {f"notice:{i}": t.timestamp() for i, t in new_times.items()} == jobs

    fetched = client.get(f"/api/v1/events/{event['id']}", headers=writer).json()
    assert fetched["location"] == "кабинет 5" and fetched["external_id"] == "booking-1"

    cancelled = client.delete(f"/api/v1/events/{event['id']}", headers=writer)
    assert cancelled.status_code == 200
    assert cancelled.json()["cancelled"] is True
    assert {n["status"] for n in cancelled.json()["notices"]} == {"cancelled"}
    assert job_times(engine) == {}
    assert client.get("/api/v1/events", headers=writer).json()["items"] == []
    again = client.patch(f"/api/v1/events/{event['id']}", json={"title": "x"}, headers=writer)
    assert again.status_code == 409


def test_bulgarian_words_are_read_in_the_events_zone(client: TestClient, writer: Headers) -> None:
    response = create(
        client,
        writer,
        title="Преглед",
        start="утре в 10:00",
        timezone="Europe/Sofia",
        recipients={"phones": ["0888 700 010"]},
    )
    assert response.status_code == 201, response.text
    start = datetime.fromisoformat(response.json()["start"])
    tomorrow = (datetime.now(SOFIA) + timedelta(days=1)).date()
    assert start == datetime(tomorrow.year, tomorrow.month, tomorrow.day, 10, 0, tzinfo=SOFIA)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"start": "някога"}, "start", "някога"),
        ({"start": "2026-13-45T10:00"}, "start", "2026-13-45"),
        ({"timezone": "Europe/Nowhere"}, "timezone", "IANA"),
        ({"policy": "nope"}, "policy", "no policy named 'nope'"),
        ({"recipients": {"groups": [999999]}}, "recipients.groups", "no group"),
        ({"recipients": {"phones": ["123"]}}, "recipients.phones.0", "not a valid"),
        ({"recipients": {}}, "recipients", "at least one recipient"),
        ({"end": later_day(5, hour=9).isoformat()}, "end", "before the start"),
        # Numbers are read day first; what is impossible or ambiguous that way is refused.
        ({"start": "12.13.2027 10:00"}, "start", "'12.13.2027' is not a date read day first"),
        ({"start": "02/03/2027 10:00"}, "start", "day first or month first"),
        ({"end": "12/20/2027 10:00"}, "end", "'12/20/2027' is not a date read day first"),
        ({"colour": "red"}, "colour", "not a known field"),
    ],
)
def test_bad_events_name_the_field(
    client: TestClient, writer: Headers, body: dict[str, Any], field: str, message: str
) -> None:
    base: dict[str, Any] = {
        "title": "x",
        "start": later_day(5).isoformat(),
        "recipients": {"phones": ["0888 700 020"]},
    }
    response = create(client, writer, **{**base, **body})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors


def test_duplicate_external_id_is_a_conflict(client: TestClient, writer: Headers) -> None:
    body = {
        "title": "x",
        "start": later_day(5).isoformat(),
        "recipients": {"phones": ["0888 700 030"]},
        "external_id": "b-7",
    }
    assert create(client, writer, **body).status_code == 201
    clash = create(client, writer, **body)
    assert clash.status_code == 409
    assert clash.json()["errors"][0]["field"] == "external_id"
    assert client.get("/api/v1/events/999999", headers=writer).status_code == 404


def test_a_reminder_already_past_is_expired_not_dropped(
    client: TestClient, writer: Headers
) -> None:
    start = datetime.now(UTC) + timedelta(minutes=90)
    response = create(
        client,
        writer,
        title="Soon",
        start=start.isoformat(),
        recipients={"phones": ["0888 700 040"]},
    )
    assert response.status_code == 201
    # The day-before step fell before now: recorded as expired, with the reason.
    [day_before] = [n for n in response.json()["notices"] if n["step"] == 0]
    assert day_before["status"] == "expired"
    assert "had passed" in day_before["status_reason"]


def test_listing_gives_each_event_its_own_notices(client: TestClient, writer: Headers) -> None:
    made = []
    for i in range(3):
        response = create(
            client,
            writer,
            title=f"Visit {i}",
            start=later_day(5 + i).isoformat(),
            recipients={"phones": [f"0888 710 00{i}", f"0888 710 10{i}"][: i + 1]},
        )
        assert response.status_code == 201, response.text
        made.append(response.json())
    listed = client.get("/api/v1/events", headers=writer).json()["items"]
    assert [e["id"] for e in listed] == [e["id"] for e in made]
    for one, shown in zip(made, listed, strict=True):
        assert shown["recipients"] == one["recipients"]
        assert [n["id"] for n in shown["notices"]] == [n["id"] for n in one["notices"]]
        assert {n["anchor_id"] for n in shown["notices"]} == {one["id"]}
    assert [len(e["notices"]) for e in listed] == [2, 4, 4]


def test_patch_may_not_put_the_start_after_the_end(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    start = later_day(10)
    response = create(
        client,
        writer,
        title="Преглед",
        start=start.isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
        recipients={"phones": ["0888 700 091"]},
    )
    assert response.status_code == 201, response.text
    event = response.json()
    url = f"/api/v1/events/{event['id']}"

    moved = client.patch(url, headers=writer, json={"start": later_day(12).isoformat()})
    assert moved.status_code == 422, moved.text
    assert moved.json()["errors"][0]["field"] == "start"
    shortened = client.patch(
        url, headers=writer, json={"end": (start - timedelta(minutes=5)).isoformat()}
    )
    assert shortened.status_code == 422, shortened.text
    assert shortened.json()["errors"][0]["field"] == "end"
    # Nothing was changed by the refused edits.
    again = client.get(url, headers=writer).json()
    assert datetime.fromisoformat(again["start"]) == start
    assert datetime.fromisoformat(again["end"]) == start + timedelta(hours=1)
    # Moving both together is fine.
    both = client.patch(
        url,
        headers=writer,
        json={
            "start": later_day(12).isoformat(),
            "end": (later_day(12) + timedelta(hours=1)).isoformat(),
        },
    )
    assert both.status_code == 200, both.text


def test_a_bare_time_is_its_next_occurrence(client: TestClient, writer: Headers) -> None:
    before = datetime.now(SOFIA)
    response = create(
        client, writer, title="x", start="в 10:30", recipients={"phones": ["0888 700 050"]}
    )
    after = datetime.now(SOFIA)
    assert response.status_code == 201, response.text
    start = datetime.fromisoformat(response.json()["start"])
    # Today if 10:30 is still to come, else tomorrow (25 hours when clocks go back).
    assert start.astimezone(SOFIA).strftime("%H:%M") == "10:30"
    assert before - timedelta(minutes=1) < start <= after + timedelta(hours=25)


@pytest.mark.parametrize(
    "when", ["9999-12-31T23:00:00+00:00", "0001-01-01T01:00:00+00:00", "31.12.9999 23:00"]
)
@pytest.mark.parametrize("field", ["start", "end"])
def test_far_dates_are_refused_and_nothing_is_stored(
    client: TestClient, writer: Headers, engine: Engine, when: str, field: str
) -> None:
    body: dict[str, Any] = {
        "title": "x",
        "start": later_day(5).isoformat(),
        "recipients": {"phones": ["0888 700 060"]},
    }
    response = create(client, writer, **{**body, field: when})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == field
    first, last = accepted_days(datetime.now(UTC), SOFIA)
    assert f"'{when}' is outside the dates accepted, {first} to {last}" in error["message"]
    assert client.get("/api/v1/events", headers=writer).json()["items"] == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM anchors")).scalar() == 0

    # Nor does a change put one there: the event stays readable and deletable.
    event = create(client, writer, **body).json()
    moved = client.patch(f"/api/v1/events/{event['id']}", json={field: when}, headers=writer)
    assert moved.status_code == 422, moved.text
    assert moved.json()["errors"][0]["field"] == field
    shown = client.get(f"/api/v1/events/{event['id']}", headers=writer)
    assert shown.status_code == 200
    assert shown.json()["start"] == event["start"] and shown.json()["end"] is None
    assert client.get("/api/v1/events", headers=writer).status_code == 200
    assert client.delete(f"/api/v1/events/{event['id']}", headers=writer).status_code == 200
