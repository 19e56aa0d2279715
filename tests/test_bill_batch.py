"""The batch of bills written as sets: same answers as row by row, and nothing half-written."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders import bill_batch
from reminders.bill_rules import Lookups
from tests.test_bills import bill, due_in, settings  # noqa: F401  (the fixture, quiet hours off)

Headers = dict[str, str]


def post(client: TestClient, headers: Headers, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/api/v1/bills/batch", json={"bills": rows}, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def recipients(engine: Engine, external_id: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT r.phone, r.contact_id FROM anchor_recipients r "
                "JOIN anchors a ON a.id = r.anchor_id WHERE a.key = :key"
            ),
            {"key": f"bill:ext:{external_id}"},
        ).all()
    return [(phone, contact_id) for phone, contact_id in rows]


def test_customers_are_created_once_and_shared_within_the_batch(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    ivan = {"external_id": "cust-9", "phone": "0888 820 001", "name": "Иван"}
    rows = [
        bill(external_id="a-1", contact=ivan),
        bill(external_id="a-2", contact=ivan),  # the same customer by external id
        bill(external_id="a-3", contact={"phone": "0888 820 001", "name": "Иван"}),  # by phone
        bill(external_id="a-4", contact={"phone": "0888 820 002", "name": "Мария"}),
        # Refused after its customer was looked at: that customer must not be created.
        bill(external_id="a-5", contact={"phone": "0888 820 003", "name": "X"}, due="nonsense"),
        bill(external_id="a-6", contact={"phone": "0888 820 004", "name": "Y"}, policy="nope"),
    ]
    result = post(client, writer, rows)
    assert (result["created"], result["updated"]) == (4, 0)
    assert [(r["index"], r["errors"][0]["field"]) for r in result["refused"]] == [
        (4, "due"),
        (5, "policy"),
    ]
    assert scalar(engine, "SELECT count(*) FROM contacts") == 2
    ivan_id = scalar(engine, "SELECT id FROM contacts WHERE external_id = 'cust-9'")
    for external_id in ("a-1", "a-2", "a-3"):
        assert recipients(engine, external_id) == [("+359888820001", ivan_id)]
    assert scalar(engine, "SELECT count(*) FROM notices") == 4 * 4
    assert scalar(engine, "SELECT count(*) FROM apscheduler_jobs") == 4 * 4


def test_updates_contacts_by_id_and_paid_bills(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    post(client, writer, [bill(external_id="u-1"), bill(external_id="u-2")])
    first_id = scalar(engine, "SELECT id FROM anchors WHERE key = 'bill:ext:u-2'")
    assert client.post(f"/api/v1/bills/{first_id}/paid", headers=writer).status_code == 200
    maria = client.post(
        "/api/v1/contacts", json={"name": "Мария", "phone": "0888 820 010"}, headers=writer
    ).json()
    later = due_in(40).isoformat()
    result = post(
        client,
        writer,
        [
            bill(external_id="u-1", due=later, contact=maria["id"], amount="10.00"),
            bill(external_id="u-2"),  # paid: refused
            bill(external_id="u-3", contact=999_999),  # no such contact
        ],
    )
    assert (result["created"], result["updated"]) == (0, 1)
    assert [(r["index"], r["errors"][0]["field"]) for r in result["refused"]] == [
        (1, "external_id"),
        (2, "contact"),
    ]
    # The bill moved to its new customer and date; its old recipient is gone.
    assert recipients(engine, "u-1") == [("+359888820010", maria["id"])]
    bill_id = scalar(engine, "SELECT id FROM anchors WHERE key = 'bill:ext:u-1'")
    shown = client.get(f"/api/v1/bills/{bill_id}", headers=writer).json()
    assert (shown["due"], shown["amount"], shown["contact_id"]) == (later, "10.00", maria["id"])
    assert {n["phone"] for n in shown["notices"] if n["status"] == "scheduled"} == {"+359888820010"}


def test_a_conflict_the_lookups_missed_falls_back_to_row_by_row(
    client: TestClient, writer: Headers, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request created the customer between our lookups and our write."""
    client.post(
        "/api/v1/contacts",
        json={"name": "Иван", "phone": "0888 820 020", "external_id": "race"},
        headers=writer,
    )
    real = Lookups.prefetch
    calls: list[int] = []

    def blind_once(*args: Any, **kwargs: Any) -> Lookups:
        found = real(*args, **kwargs)
        if not calls:
            found.contacts_by_external_id.pop("race", None)  # as if it did not exist yet
        calls.append(1)
        return found

    monkeypatch.setattr(bill_batch.Lookups, "prefetch", staticmethod(blind_once))
    contact = {"external_id": "race", "phone": "0888 820 020", "name": "Иван"}
    result = post(
        client, writer, [bill(external_id="r-1", contact=contact), bill(external_id="r-2")]
    )
    # The set write met the unique external_id; each row was then looked up again and written.
    assert len(calls) == 3
    assert result == {"created": 2, "updated": 0, "refused": []}
    assert scalar(engine, "SELECT count(*) FROM contacts WHERE external_id = 'race'") == 1
    assert scalar(engine, "SELECT count(*) FROM anchors") == 2


def test_a_known_customers_new_phone_in_a_batch(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    ivan = {"external_id": "cust-m", "phone": "0888 820 030", "name": "Иван"}
    post(
        client,
        writer,
        [bill(external_id="m-1", contact=ivan), bill(external_id="m-2", contact=ivan)],
    )
    moved = {"external_id": "cust-m", "phone": "0888 820 031"}
    result = post(
        client,
        writer,
        [
            bill(external_id="m-1", contact=moved),
            bill(external_id="m-3", contact={"external_id": "cust-m"}),
        ],
    )
    assert result == {"created": 1, "updated": 1, "refused": []}
    assert scalar(engine, "SELECT phone FROM contacts WHERE external_id = 'cust-m'") == (
        "+359888820031"
    )
    ivan_id = scalar(engine, "SELECT id FROM contacts WHERE external_id = 'cust-m'")
    for external_id in ("m-1", "m-2", "m-3"):
        assert recipients(engine, external_id) == [("+359888820031", ivan_id)]
    assert scalar(engine, "SELECT count(*) FROM notices WHERE phone = '+359888820031'") == 12
    assert scalar(engine, "SELECT count(*) FROM notices WHERE key LIKE '%+359888820030'") == 0
    assert scalar(engine, "SELECT count(*) FROM contacts") == 1
