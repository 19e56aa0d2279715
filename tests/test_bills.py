"""Bills over the API: upserted by external_id, paid, refused payments, batches."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.dates import accepted_days
from reminders.settings import Settings, load_settings
from tests.conftest import wait_for

Headers = dict[str, str]
SOFIA = ZoneInfo("Europe/Sofia")


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Quiet hours off: the refused-payment notice is sent "now", whatever the hour."""
    return load_settings(database_url=database_url, quiet_hours="off")


def due_in(days: int) -> date:
    return (datetime.now(SOFIA) + timedelta(days=days)).date()


def bill(**extra: Any) -> dict[str, Any]:
    return {
        "external_id": "inv-1",
        "contact": {"external_id": "cust-1", "phone": "0888 800 001", "name": "Иван Петров"},
        "amount": "84.20",
        "currency": "BGN",
        "due": due_in(20).isoformat(),
        "title": "Ток",
        **extra,
    }


def test_bill_lifecycle(client: TestClient, writer: Headers, engine: Engine) -> None:
    created = client.post("/api/v1/bills", json=bill(), headers=writer)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["created"] is True and body["due"] == due_in(20).isoformat()
    due = due_in(20)
    sends = sorted(datetime.fromisoformat(n["send_at"]) for n in body["notices"])
    # 3 days before, on the day, 3 and 10 days after: all at 10:00 on the customer's clock.
    assert [s.astimezone(SOFIA).date() for s in sends] == [
        due - timedelta(days=3),
        due,
        due + timedelta(days=3),
        due + timedelta(days=10),
    ]
    assert {s.astimezone(SOFIA).strftime("%H:%M") for s in sends} == {"10:00"}
    assert sorted(n["kind"] for n in body["notices"]) == [
        "bill_due",
        "bill_due",
        "bill_overdue",
        "bill_overdue",
    ]
    contact_id = body["contact_id"]
    contact = client.get(f"/api/v1/contacts/{contact_id}", headers=writer).json()
    assert contact["phone"] == "+359888800001" and contact["external_id"] == "cust-1"

    # The same external_id again updates the bill and re-plans it.
    updated = client.post(
        "/api/v1/bills", json=bill(amount="90.00", due=due_in(25).isoformat()), headers=writer
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["amount"] == "90.00" and updated.json()["id"] == body["id"]
    assert len(updated.json()["notices"]) == 4
    assert min(datetime.fromisoformat(n["send_at"]) for n in updated.json()["notices"]).astimezone(
        SOFIA
    ).date() == due_in(22)

    paid = client.post(f"/api/v1/bills/{body['id']}/paid", headers=writer)
    assert paid.status_code == 200
    assert paid.json()["paid"] is True
    assert {n["status"] for n in paid.json()["notices"]} == {"cancelled"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == 0
    assert client.post("/api/v1/bills", json=bill(), headers=writer).status_code == 409


def test_refused_payment_sends_at_once(client: TestClient, writer: Headers, engine: Engine) -> None:
    created = client.post("/api/v1/bills", json=bill(external_id="inv-2"), headers=writer).json()
    response = client.post(f"/api/v1/bills/{created['id']}/payment-failed", headers=writer)
    assert response.status_code == 201, response.text
    notice = response.json()
    assert notice["priority"] == "transactional" and notice["kind"] == "payment_failed"

    def sent() -> Any:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT text FROM outbox WHERE notice_id = :n"), {"n": notice["id"]}
            ).scalar()

    assert wait_for(sent, what="the refused-payment SMS") == (
        "Плащането на Ток (84,20 BGN) беше отказано поради недостиг на средства."
    )


def test_english_customer_gets_english_amounts(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    english = {"phone": "0888 800 002", "name": "John", "language": "en"}
    created = client.post(
        "/api/v1/bills", json=bill(external_id="inv-3", contact=english), headers=writer
    ).json()
    notice = client.post(f"/api/v1/bills/{created['id']}/payment-failed", headers=writer).json()

    def sent() -> Any:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT text FROM outbox WHERE notice_id = :n"), {"n": notice["id"]}
            ).scalar()

    assert wait_for(sent, what="the SMS") == (
        "The payment of Ток (84.20 BGN) was refused for lack of funds."
    )


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"amount": "84,20"}, "amount", "decimal string"),
        ({"amount": 84.2}, "amount", "string"),
        ({"currency": "лв"}, "currency", "ISO 4217"),
        ({"due": "някой ден"}, "due", "някой ден"),
        # Day first in every date field, as events read them; never re-read month first.
        ({"due": "12/20/2027"}, "due", "'12/20/2027' is not a date read day first"),
        ({"due": "02/03/2027"}, "due", "day first or month first"),
        ({"due": "13.12"}, "due", "could be a date or a time of day"),
        ({"contact": 999999}, "contact", "no contact with id 999999"),
        ({"contact": {"phone": "123", "name": "x"}}, "contact.phone", "not a valid"),
        ({"policy": "nope"}, "policy", "no policy"),
        ({"external_id": ""}, "external_id", "at least 1"),
    ],
)
def test_bad_bills_name_the_field(
    client: TestClient, writer: Headers, changes: dict[str, Any], field: str, message: str
) -> None:
    response = client.post("/api/v1/bills", json=bill(**changes), headers=writer)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"].startswith(field) and message in e["message"] for e in errors), errors


def test_batch_keeps_the_good_rows(client: TestClient, writer: Headers) -> None:
    rows = [
        bill(external_id=f"b-{i}", contact={"phone": f"0888 81{i:04d}", "name": f"C{i}"})
        for i in range(5)
    ]
    rows[1]["amount"] = "lots"
    rows[3]["due"] = due_in(30).strftime("%d.%m.%Y")
    rows.append({"external_id": "b-x"})
    response = client.post("/api/v1/bills/batch", json={"bills": rows}, headers=writer)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["created"] == 4 and result["updated"] == 0
    refused = {r["index"]: r for r in result["refused"]}
    assert set(refused) == {1, 5}
    assert refused[1]["external_id"] == "b-1"
    assert refused[1]["errors"][0]["field"] == "amount"
    assert {e["field"] for e in refused[5]["errors"]} >= {"contact", "amount", "due"}

    again = client.post("/api/v1/bills/batch", json={"bills": [rows[0]]}, headers=writer).json()
    assert again == {"created": 0, "updated": 1, "refused": []}


@pytest.mark.parametrize(
    "due",
    [
        "9999-12-31",
        "0001-01-01",
        "9999-12-31T23:00:00+00:00",
        # Years in the past is a mistake, not a bill to chase.
        due_in(-800).isoformat(),
        due_in(-800).strftime("%d.%m.%Y"),
    ],
)
def test_a_due_date_far_off_is_refused_and_nothing_is_stored(
    client: TestClient, writer: Headers, engine: Engine, due: str
) -> None:
    response = client.post("/api/v1/bills", json=bill(due=due), headers=writer)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    first, last = accepted_days(datetime.now(UTC), SOFIA)
    assert error["field"] == "due"
    assert error["message"].startswith(f"'{due}' is outside the dates accepted, {first} to {last}")

    batch = [bill(due=due), bill(external_id="inv-2")]
    answer = client.post("/api/v1/bills/batch", json={"bills": batch}, headers=writer)
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] == 1
    [refused] = answer.json()["refused"]
    assert refused["index"] == 0 and refused["errors"][0]["field"] == "due"
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT key FROM anchors")).scalars().all()
    assert keys == ["bill:ext:inv-2"]


def test_a_due_date_a_little_in_the_past_is_taken(client: TestClient, writer: Headers) -> None:
    # Overdue bills are what the overdue notices are for: up to a year back is fine.
    due = due_in(-300)
    response = client.post("/api/v1/bills", json=bill(due=due.strftime("%d.%m.%Y")), headers=writer)
    assert response.status_code == 201, response.text
    assert response.json()["due"] == due.isoformat()
