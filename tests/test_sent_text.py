"""The text that went out is kept per attempt and shown on the notice and in the CSV report."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.models import Notice
from reminders.scheduler.firing import fire
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError
from reminders.settings import Settings, load_settings
from tests.conftest import wait_for

Headers = dict[str, str]
TEMPLATE = "„{{ name }}“, часът е в {{ time }}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Quiet hours off: the message test sends "now", whatever the hour the suite runs at."""
    return load_settings(database_url=database_url, quiet_hours="off")


class FailsOnce(Sender):
    """A gateway that is down for the first SMS and takes the rest; it keeps what it got."""

    name = "flaky"

    def __init__(self, settings: Settings, engine: Engine) -> None:
        super().__init__(settings, engine)
        self.received: list[str] = []

    def send(self, sms: OutgoingSms) -> Accepted:
        self.received.append(sms.text)
        if len(self.received) == 1:
            raise SendError("503 from the gateway", permanent=False, code="503")
        return Accepted(provider_message_id=f"flaky-{len(self.received)}")

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Accepted | SendError]:
        return super().send_many(messages)


def due_now(engine: Engine, notice_id: int) -> None:
    with Session(engine) as session:
        session.exec(  # type: ignore[call-overload]
            update(Notice)
            .where(Notice.id == notice_id)  # type: ignore[arg-type]
            .values(send_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        session.commit()


def notice(client: TestClient, headers: Headers, notice_id: int) -> Any:
    response = client.get(f"/api/v1/notices/{notice_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_attempt_keeps_the_text_it_handed_to_the_gateway(
    client: TestClient, writer: Headers, engine: Engine, settings: Settings
) -> None:
    policy = {
        "name": "latin",
        "steps": [{"offset": "-P1D", "template": TEMPLATE}],
        "transliterate": True,
    }
    assert client.post("/api/v1/policies", json=policy, headers=writer).status_code == 201
    contact = client.post(
        "/api/v1/contacts", json={"name": "Иван Петров", "phone": "0888 710 001"}, headers=writer
    ).json()
    sofia = ZoneInfo("Europe/Sofia")
    day = (datetime.now(sofia) + timedelta(days=10)).date()
    start = datetime(day.year, day.month, day.day, 11, 0, tzinfo=sofia)
    event = client.post(
        "/api/v1/events",
        json={
            "title": "Преглед",
            "start": start.isoformat(),
            "policy": "latin",
            "recipients": {"contacts": [contact["id"]]},
        },
        headers=writer,
    )
    assert event.status_code == 201, event.text
    [planned] = event.json()["notices"]
    assert (planned["template"], planned["text"]) == (TEMPLATE, None)

    sender = FailsOnce(settings, engine)
    due_now(engine, planned["id"])
    assert fire(engine, sender, planned["id"], settings=settings) == "scheduled"  # to retry
    renamed = client.patch(
        f"/api/v1/contacts/{contact['id']}", json={"name": "Мария Иванова"}, headers=writer
    )
    assert renamed.status_code == 200, renamed.text
    due_now(engine, planned["id"])
    assert fire(engine, sender, planned["id"], settings=settings) == "sent"

    first, second = '"Ivan Petrov", chasat e v 11:00', '"Maria Ivanova", chasat e v 11:00'
    assert sender.received == [first, second]
    shown = notice(client, writer, planned["id"])
    assert [(a["status"], a["text"]) for a in shown["attempts"]] == [
        ("failed", first),
        ("sent", second),
    ]
    assert (shown["text"], shown["template"]) == (second, TEMPLATE)
    listed = client.get("/api/v1/notices", params={"status": "sent"}, headers=writer).json()
    assert [(n["id"], n["text"]) for n in listed["items"]] == [(planned["id"], second)]

    report = client.get(
        "/api/v1/reports/notices.csv",
        params={"from": (start - timedelta(days=30)).isoformat(), "to": start.isoformat()},
        headers=writer,
    )
    [row] = list(csv.DictReader(io.StringIO(report.text)))
    assert (row["id"], row["status"], row["text"]) == (str(planned["id"]), "sent", second)


def test_a_message_shows_its_text_as_written_then_as_it_went_out(
    client: TestClient, writer: Headers
) -> None:
    written = "Часът ви е „утре“ – в 10:30"
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    waiting = client.post(
        "/api/v1/messages",
        json={"to": {"phones": ["0888 710 002"]}, "text": written, "send_at": later},
        headers=writer,
    ).json()
    [pending] = waiting["notices"]
    assert (pending["text"], pending["template"]) == (written, None)

    now = client.post(
        "/api/v1/messages",
        json={"to": {"phones": ["0888 710 003"]}, "text": written},
        headers=writer,
    ).json()
    notice_id = now["notices"][0]["id"]
    sent = wait_for(
        lambda: (n := notice(client, writer, notice_id))["status"] == "sent" and n,
        what="the message sent",
    )
    went_out = 'Часът ви е "утре" - в 10:30'  # the look-alikes that would force UCS-2 replaced
    assert (sent["text"], sent["template"]) == (went_out, None)
    assert [a["text"] for a in sent["attempts"]] == [went_out]

    report = client.get("/api/v1/reports/notices.csv", headers=writer)
    texts = {r["id"]: r["text"] for r in csv.DictReader(io.StringIO(report.text))}
    assert texts[str(notice_id)] == went_out
