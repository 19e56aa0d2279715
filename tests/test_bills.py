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


def sent_text(engine: Engine, notice_id: int) -> str:
    def sent() -> Any:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT text FROM outbox WHERE notice_id = :n"), {"n": notice_id}
            ).scalar()

    return str(wait_for(sent, what=f"the SMS of notice {notice_id}"))


def test_refused_payment_sends_at_once(client: TestClient, writer: Headers, engine: Engine) -> None:
    created = client.post("/api/v1/bills", json=bill(external_id="inv-2"), headers=writer).json()
    response = client.post(f"/api/v1/bills/{created['id']}/payment-failed", headers=writer)
    assert response.status_code == 201, response.text
    notice = response.json()
    assert notice["priority"] == "transactional" and notice["kind"] == "payment_failed"
    # No reason was given: none is claimed.
    assert sent_text(engine, notice["id"]) == "Плащането на Ток (84,20 BGN) беше отказано."

    with_reason = client.post(
        f"/api/v1/bills/{created['id']}/payment-failed",
        json={"reason": "недостиг на средства"},
        headers=writer,
    )
    assert with_reason.status_code == 201, with_reason.text
    assert sent_text(engine, with_reason.json()["id"]) == (
        "Плащането на Ток (84,20 BGN) беше отказано: недостиг на средства."
    )
    # The reason is the caller's text, not template code.
    braces = client.post(
        f"/api/v1/bills/{created['id']}/payment-failed",
        json={"reason": "{{ amount }}"},
        headers=writer,
    ).json()
    assert sent_text(engine, braces["id"]).endswith("беше отказано: {{ amount }}.")


def test_english_customer_gets_english_amounts(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    english = {"phone": "0888 800 002", "name": "John", "language": "en"}
    created = client.post(
        "/api/v1/bills", json=bill(external_id="inv-3", contact=english), headers=writer
    ).json()
    notice = client.post(
        f"/api/v1/bills/{created['id']}/payment-failed",
        json={"reason": "the card has expired"},
        headers=writer,
    ).json()
    assert sent_text(engine, notice["id"]) == (
        "The payment of Ток (84.20 BGN) was refused: the card has expired."
    )


def test_a_paid_bill_cannot_fail_its_payment(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    created = client.post("/api/v1/bills", json=bill(external_id="inv-4"), headers=writer).json()
    assert client.post(f"/api/v1/bills/{created['id']}/paid", headers=writer).status_code == 200
    response = client.post(f"/api/v1/bills/{created['id']}/payment-failed", headers=writer)
    assert response.status_code == 409, response.text
    assert response.json()["errors"][0]["field"] == "id"
    assert "paid" in response.json()["detail"]
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT kind FROM notices")).scalars().all()
    assert "payment_failed" not in kinds


def test_an_untitled_bill_is_named_in_its_customers_language(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    bulgarian = client.post(
        "/api/v1/bills", json=bill(external_id="t-bg", title=None), headers=writer
    ).json()
    english = {"phone": "0888 800 003", "name": "John", "language": "en"}
    untitled = bill(external_id="t-en", contact=english)
    del untitled["title"]
    in_english = client.post("/api/v1/bills", json=untitled, headers=writer).json()
    assert (bulgarian["title"], in_english["title"]) == ("Сметка", "Bill")
    notice = client.post(f"/api/v1/bills/{bulgarian['id']}/payment-failed", headers=writer).json()
    assert sent_text(engine, notice["id"]) == "Плащането на Сметка (84,20 BGN) беше отказано."
    # A title given once stays when the bill is posted again without one.
    client.post("/api/v1/bills", json=bill(external_id="t-bg", title="Вода"), headers=writer)
    again = client.post("/api/v1/bills", json=bill(external_id="t-bg", title=None), headers=writer)
    assert again.json()["title"] == "Вода"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"amount": "84,20"}, "amount", "decimal string"),
        ({"amount": 84.2}, "amount", "string"),
        ({"amount": "84.205"}, "amount", "more than two decimals"),
        ({"amount": "1500.50", "currency": "JPY"}, "amount", "JPY has no minor unit"),
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
        ({"contact": "ivan"}, "contact", "must be either a contact id or an object"),
        ({"contact": [1]}, "contact", "must be either a contact id or an object"),
        ({"contact": {"phone": "0888 800 001", "name": 5}}, "contact.name", "string"),
        ({"contact": {"phone": "0888 800 001", "nick": "x"}}, "contact.nick", "not a known"),
        ({"contact": {"external_id": "new-1", "name": "Иван"}}, "contact.phone", "required"),
        ({"contact": {"phone": "0888 800 009"}}, "contact.name", "required for a new customer"),
    ],
)
def test_bad_bills_name_the_field(
    client: TestClient, writer: Headers, changes: dict[str, Any], field: str, message: str
) -> None:
    response = client.post("/api/v1/bills", json=bill(**changes), headers=writer)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field], errors
    assert message in errors[0]["message"], errors
    # The same row in a batch is refused for the same reason.
    batch = client.post("/api/v1/bills/batch", json={"bills": [bill(**changes)]}, headers=writer)
    assert batch.json()["refused"][0]["errors"] == [
        {"field": e["field"], "message": e["message"]} for e in errors
    ]


def test_whole_amounts_in_a_currency_without_minor_units(
    client: TestClient, writer: Headers
) -> None:
    created = client.post(
        "/api/v1/bills", json=bill(amount="1500.00", currency="JPY"), headers=writer
    )
    assert created.status_code == 201, created.text
    assert created.json()["amount"] == "1500.00"


def test_a_known_customer_needs_only_its_external_id(client: TestClient, writer: Headers) -> None:
    first = client.post("/api/v1/bills", json=bill(), headers=writer).json()
    second = client.post(
        "/api/v1/bills",
        json=bill(external_id="inv-9", contact={"external_id": "cust-1"}),
        headers=writer,
    )
    assert second.status_code == 201, second.text
    assert second.json()["contact_id"] == first["contact_id"]
    assert {n["phone"] for n in second.json()["notices"]} == {"+359888800001"}


def test_a_known_customers_new_phone_takes_its_notices_along(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    first = client.post("/api/v1/bills", json=bill(), headers=writer).json()
    other = client.post("/api/v1/bills", json=bill(external_id="inv-8"), headers=writer).json()
    moved_contact = {"external_id": "cust-1", "phone": "0888 800 111", "name": "Иван Петров"}
    again = client.post("/api/v1/bills", json=bill(contact=moved_contact), headers=writer)
    assert again.status_code == 200, again.text
    contact = client.get(f"/api/v1/contacts/{first['contact_id']}", headers=writer).json()
    assert contact["phone"] == "+359888800111"
    for shown in (again.json(), client.get(f"/api/v1/bills/{other['id']}", headers=writer).json()):
        assert {n["phone"] for n in shown["notices"]} == {"+359888800111"}
        assert len(shown["notices"]) == 4
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT key FROM notices")).scalars().all()
    assert len(keys) == 8 and all(k.endswith(":+359888800111") for k in keys)


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


def test_bills_are_listed_and_found_by_external_id(
    client: TestClient, writer: Headers, reader: Headers
) -> None:
    ivan = client.post("/api/v1/bills", json=bill(), headers=writer).json()
    maria_contact = {"external_id": "cust-2", "phone": "0888 800 002", "name": "Мария"}
    maria = [
        client.post(
            "/api/v1/bills", json=bill(external_id=f"m-{i}", contact=maria_contact), headers=writer
        ).json()
        for i in range(3)
    ]
    client.post(f"/api/v1/bills/{maria[1]['id']}/paid", headers=writer)

    def listed(**params: Any) -> list[int]:
        response = client.get("/api/v1/bills", params=params, headers=reader)
        assert response.status_code == 200, response.text
        return [b["id"] for b in response.json()["items"]]

    assert listed() == [ivan["id"]] + [b["id"] for b in maria]
    found = client.get("/api/v1/bills", params={"external_id": "inv-1"}, headers=reader).json()
    assert found["items"] == [client.get(f"/api/v1/bills/{ivan['id']}", headers=reader).json()]
    assert len(found["items"][0]["notices"]) == 4
    assert listed(external_id="nope") == []
    assert listed(contact_id=maria[0]["contact_id"]) == [b["id"] for b in maria]
    assert listed(contact_id=maria[0]["contact_id"], status="unpaid") == [
        maria[0]["id"],
        maria[2]["id"],
    ]
    assert listed(status="paid") == [maria[1]["id"]]

    first = client.get("/api/v1/bills", params={"limit": 3}, headers=reader).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = client.get(
        "/api/v1/bills", params={"limit": 3, "cursor": first["next_cursor"]}, headers=reader
    ).json()
    assert [b["id"] for b in rest["items"]] == [maria[2]["id"]] and rest["next_cursor"] is None

    bad = client.get("/api/v1/bills", params={"status": "late"}, headers=reader)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
