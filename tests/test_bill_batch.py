"""The batch of bills written as sets: same answers as row by row, and nothing half-written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.bills import writing
from reminders.bills.rules import Lookups
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
            found.contacts.by_external_id.pop("race", None)  # as if it did not exist yet
        calls.append(1)
        return found

    monkeypatch.setattr(writing.Lookups, "prefetch", staticmethod(blind_once))
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


def export(maria_id: int) -> list[dict[str, Any]]:
    """A billing system's export, in order: rows that create, share, move and update customers
    and bills, and rows refused for each kind of reason."""
    ivan = {"external_id": "c-1", "phone": "0888 830 001", "name": "Иван"}
    return [
        bill(external_id="s-1", contact=ivan),
        bill(external_id="s-2", contact={"phone": "0888 830 001", "name": "Друго име"}),  # Иван
        # Иван moves to a new number and to English: s-1 and s-2 follow him.
        bill(
            external_id="s-3",
            contact={"external_id": "c-1", "phone": "0888 830 002", "language": "en"},
            title=None,
        ),
        bill(external_id="s-4", contact={"phone": "+359888830002", "name": "X"}),  # Иван again
        # Георги, known before the export, moves too, and is found by his new number.
        bill(external_id="s-5", contact={"external_id": "c-2", "phone": "0888 830 021"}),
        bill(external_id="s-6", contact={"phone": "0888 830 021", "name": "Y"}),
        bill(external_id="old-1", contact=maria_id, amount="99.00", due=due_in(40).isoformat()),
        bill(
            external_id="s-7",
            contact={
                "external_id": "c-3",
                "phone": "0888 830 003",
                "name": "Peter",
                "timezone": "Europe/London",
            },
            due=due_in(30).strftime("%d.%m.%Y"),
            reference="R-7",
            currency="EUR",
        ),
        bill(external_id="paid-1"),  # paid
        bill(external_id="s-8", contact={"phone": "0888 830 004"}),  # a new customer, no name
        bill(external_id="s-9", amount="1.005"),
        bill(external_id="s-10", amount="10.50", currency="JPY"),
        bill(external_id="s-11", due="nonsense"),
        bill(external_id="s-12", policy="nope"),
        bill(external_id="s-13", contact=999_999),
        bill(external_id="s-14", contact={"phone": "123", "name": "Z"}),
        bill(external_id="s-15", contact="ivan"),
    ]


def set_up(client: TestClient, writer: Headers, engine: Engine) -> int:
    """What the export meets: customers known by id and by external id, a stored bill and a
    paid one."""
    maria = client.post(
        "/api/v1/contacts", json={"name": "Мария", "phone": "0888 830 010"}, headers=writer
    ).json()
    georgi = {"name": "Георги", "phone": "0888 830 020", "external_id": "c-2"}
    assert client.post("/api/v1/contacts", json=georgi, headers=writer).status_code == 201
    stored = [bill(external_id="old-1", contact=maria["id"]), bill(external_id="paid-1")]
    assert post(client, writer, stored)["created"] == 2
    paid = scalar(engine, "SELECT id FROM anchors WHERE key = 'bill:ext:paid-1'")
    assert client.post(f"/api/v1/bills/{paid}/paid", headers=writer).status_code == 200
    return int(maria["id"])


def written(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the bills wrote, without ids and clock times, in a stable order."""
    queries = {
        "contacts": "SELECT external_id, name, name_folded, phone, email, timezone, language,"
        " opted_out, attributes FROM contacts",
        "anchors": "SELECT key, kind, title, at, all_day, timezone, policy, data, cancelled"
        " FROM anchors",
        "recipients": "SELECT a.key, r.phone, c.name FROM anchor_recipients r"
        " JOIN anchors a ON a.id = r.anchor_id LEFT JOIN contacts c ON c.id = r.contact_id",
        "notices": "SELECT a.key, n.key, n.kind, n.status, n.status_reason, n.phone, c.name,"
        " n.send_at, n.priority, n.text FROM notices n JOIN anchors a ON a.id = n.anchor_id"
        " LEFT JOIN contacts c ON c.id = n.contact_id",
        "jobs": "SELECT next_run_time FROM apscheduler_jobs",
    }
    ids = dict(scalar_rows(engine, "SELECT id, key FROM anchors"))
    out = {}
    for name, sql in queries.items():
        rows = []
        for row in scalar_rows(engine, sql):
            values = list(row)
            if name == "anchors":
                values[7] = {k: v for k, v in json_value(values[7]).items() if k != "paid_at"}
            if name == "notices":  # its key holds its bill's id
                anchor_id = values[1].split(":")[1]
                values[1] = values[1].replace(f":{anchor_id}:", f":{ids[int(anchor_id)]}:", 1)
            rows.append(tuple(str(v) for v in values))
        out[name] = sorted(rows)
    return out


def scalar_rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql)).all()]


def json_value(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value)


def wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("apscheduler_jobs", "notices", "anchor_recipients", "anchors", "contacts"):
            conn.execute(text(f"DELETE FROM {table}"))


def test_single_and_batch_writes_give_identical_rows(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    """The same export posted bill by bill (POST /bills), then as one batch on an empty
    database: the same rows, and the same rows refused with the same errors."""
    rows = export(set_up(client, writer, engine))
    one_by_one: dict[int, list[tuple[str, str]]] = {}
    created = updated = 0
    for index, row in enumerate(rows):
        response = client.post("/api/v1/bills", json=row, headers=writer)
        if response.status_code in (200, 201):
            created += response.status_code == 201
            updated += response.status_code == 200
        else:
            assert response.status_code in (404, 409, 422), response.text
            errors = response.json()["errors"]
            one_by_one[index] = [(e["field"], e["message"]) for e in errors]
    singly = written(engine)

    wipe(engine)
    rows = export(set_up(client, writer, engine))
    result = post(client, writer, rows)
    batch = {
        r["index"]: [(e["field"], e["message"]) for e in r["errors"]] for r in result["refused"]
    }

    assert (result["created"], result["updated"]) == (created, updated) == (7, 1)
    assert batch == one_by_one
    assert sorted(batch) == list(range(8, len(rows)))  # each refusal in the export was met
    assert written(engine) == singly
    assert len(singly["contacts"]) == 5 and len(singly["notices"]) == 4 * 9
