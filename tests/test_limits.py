"""Size limits: request bodies, free JSON on contacts, and JSON nested past any sensible depth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.api.limits import BODY_LIMIT, MB, ROUTE_LIMITS

Headers = dict[str, str]
JSON = {"content-type": "application/json"}
CONTACT = {"name": "Иван Петров", "phone": "0888 123 456"}


def post(client: TestClient, path: str, body: bytes | Iterator[bytes], headers: Headers) -> Any:
    return client.post(f"/api/v1{path}", content=body, headers={**headers, **JSON})


def contact_with(attributes: Any) -> bytes:
    return json.dumps({**CONTACT, "attributes": attributes}, ensure_ascii=False).encode()


def assert_body_error(response: Any, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errors"][0]["field"] == "body", body
    assert words in body["detail"], body


def contact_count(client: TestClient, headers: Headers) -> int:
    return len(client.get("/api/v1/contacts", headers=headers).json()["items"])


def test_a_body_past_the_limit_is_a_413_in_json(client: TestClient, writer: Headers) -> None:
    # The 10 MB attributes object, then one just past the 1 MB limit.
    huge = contact_with({"notes": "x" * (10 * MB)})
    assert_body_error(post(client, "/contacts", huge, writer), 413, "at most 1 MB")
    just_past = contact_with({"n": "x" * BODY_LIMIT})
    assert_body_error(post(client, "/contacts", just_past, writer), 413, "at most 1 MB")

    # Sent in chunks with no Content-Length, it is counted as it arrives.
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(just_past), 64 * 1024):
            yield just_past[start : start + 64 * 1024]

    assert_body_error(post(client, "/contacts", chunks(), writer), 413, "at most 1 MB")
    assert contact_count(client, writer) == 0
    # Under the limit, the same route works as before.
    assert (
        post(client, "/contacts", contact_with({"doctor": "Д-р Иванова"}), writer).status_code
        == 201
    )


def test_attributes_have_limits_on_size_depth_and_keys(client: TestClient, writer: Headers) -> None:
    cases = {
        "may take at most 8192 bytes as JSON, not 8412": {"notes": "я" * 4200},
        "may hold at most 100 keys, not 101": {f"k{i}": i for i in range(101)},
        "may nest at most 5 levels deep": {"a": {"b": {"c": {"d": {"e": {}}}}}},
    }
    for words, attributes in cases.items():
        refused = post(client, "/contacts", contact_with(attributes), writer)
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["field"] == "attributes" and words in error["message"], error
    assert contact_count(client, writer) == 0

    largest = {f"k{i}": "x" * 40 for i in range(96)} | {"a": {"b": {"c": {"d": [1]}}}}
    created = post(client, "/contacts", contact_with(largest), writer)
    assert created.status_code == 201, created.text
    assert created.json()["attributes"] == largest
    patched = client.patch(
        f"/api/v1/contacts/{created.json()['id']}",
        json={"attributes": {f"k{i}": i for i in range(101)}},
        headers=writer,
    )
    assert patched.status_code == 422
    assert patched.json()["errors"][0]["field"] == "attributes"

    sample = {"template": "{{ name }}", "sample": {"a": [[[[[1]]]]]}}
    preview = client.post("/api/v1/sms/preview", json=sample, headers=writer)
    assert preview.status_code == 422, preview.text
    assert preview.json()["errors"][0]["field"] == "sample"


@pytest.mark.parametrize("levels", [33, 900, 10_000])
def test_deeply_nested_json_is_refused_before_it_is_parsed(
    client: TestClient, writer: Headers, levels: int
) -> None:
    nested = "[" * levels + "]" * levels
    bodies = {
        "/contacts": f'{{"name": "a", "phone": "0888123456", "attributes": {{"x": {nested}}}}}',
        "/messages": nested,
        "/sms/preview": f'{{"text": "x", "sample": {{"a": {nested}}}}}',
    }
    for path, body in bodies.items():
        response = post(client, path, body.encode(), writer)
        assert_body_error(response, 422, "JSON nested more than 32 levels deep")
    assert contact_count(client, writer) == 0


def test_brackets_inside_strings_are_not_nesting(client: TestClient, writer: Headers) -> None:
    note = '[[[[{{{{ \\" ' * 20
    created = post(client, "/contacts", contact_with({"note": note}), writer)
    assert created.status_code == 201, created.text
    assert created.json()["attributes"] == {"note": note}


def realistic_bills(count: int) -> list[dict[str, Any]]:
    """Bills with every usual field filled in, Cyrillic where a utility would write it."""
    return [
        {
            "external_id": f"INV-2026-{i:09d}",
            "contact": {
                "external_id": f"CUST-{i:08d}",
                "phone": f"+359 88 8{i:06d}",
                "name": "Александра Константинова-Петрова",
                "email": f"customer.{i}@example.com",
                "language": "bg",
                "timezone": "Europe/Sofia",
            },
            "amount": "1234.56",
            "currency": "BGN",
            "due": "2026-12-15",
            "reference": f"Фактура № {i:010d} / абонатен номер {i:010d}",
            "title": "Електроенергия за ноември 2026",
            "policy": "bill",
        }
        for i in range(count)
    ]


def test_a_bill_batch_has_its_own_higher_limit(client: TestClient, writer: Headers) -> None:
    batch_limit = ROUTE_LIMITS[("POST", "/api/v1/bills/batch")]
    # 10,000 bills, as most JSON encoders write them (non-ASCII \u-escaped): past the default
    # limit, well within the batch's. One bill more than a batch takes shows the body got in.
    body = json.dumps({"bills": realistic_bills(10_001)}).encode()
    assert BODY_LIMIT < len(body) < batch_limit
    too_many = post(client, "/bills/batch", body, writer)
    assert too_many.status_code == 422, too_many.text[:500]
    assert too_many.json()["errors"][0]["field"] == "bills"

    padded = json.dumps({"bills": [{"external_id": "x" * batch_limit}]}).encode()
    assert_body_error(post(client, "/bills/batch", padded, writer), 413, "at most 16 MB")
    # The higher limit is the batch's alone.
    one = json.dumps({"external_id": "x" * BODY_LIMIT, "contact": 1, "amount": "1"}).encode()
    assert_body_error(post(client, "/bills", one, writer), 413, "at most 1 MB")


def nested(levels: int) -> dict[str, Any]:
    """{"a": {"a": ... {}}}, ``levels`` objects deep."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_attributes_300_levels_deep_are_refused_and_nothing_is_stored(
    client: TestClient, writer: Headers
) -> None:
    deep = nested(300)
    assert_body_error(post(client, "/contacts", contact_with(deep), writer), 422, "32 levels")
    assert contact_count(client, writer) == 0
    created = post(client, "/contacts", contact_with({"doctor": "Д-р Иванова"}), writer).json()
    patched = client.patch(
        f"/api/v1/contacts/{created['id']}", json={"attributes": deep}, headers=writer
    )
    assert_body_error(patched, 422, "32 levels")
    shown = client.get(f"/api/v1/contacts/{created['id']}", headers=writer).json()
    assert shown["attributes"] == {"doctor": "Д-р Иванова"}


def test_a_contact_stored_too_deep_before_the_limits_does_not_poison_reads(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    """Rows written before attributes had limits: every read that held one was a 500."""
    ids = [
        post(client, "/contacts", contact_with({}), writer).json()["id"],
        post(client, "/contacts", contact_with({}), writer).json()["id"],
    ]
    group = client.post("/api/v1/groups", json={"name": "g"}, headers=writer).json()["id"]
    client.post(f"/api/v1/groups/{group}/members", json={"contact_ids": ids}, headers=writer)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE contacts SET attributes = :value WHERE id = :id"),
            {"value": json.dumps({"doctor": "Д-р", "deep": nested(300)}), "id": ids[0]},
        )
    reads = [
        "/api/v1/contacts",
        f"/api/v1/contacts/{ids[0]}",
        "/api/v1/contacts?q=Иван",
        f"/api/v1/groups/{group}/members",
    ]
    for path in reads:
        response = client.get(path, headers=writer)
        assert response.status_code == 200, (path, response.text[:300])
    shown = client.get(f"/api/v1/contacts/{ids[0]}", headers=writer).json()["attributes"]
    # Shown down to 32 levels; what lies deeper is given as its JSON text, nothing lost.
    assert shown["doctor"] == "Д-р"
    level, depth = shown["deep"], 2
    while isinstance(level, dict):
        level, depth = level["a"], depth + 1
    assert depth == 33 and json.loads(level) == nested(300 - 31)
    # And it can be put right.
    fixed = client.patch(
        f"/api/v1/contacts/{ids[0]}", json={"attributes": {"doctor": "Д-р"}}, headers=writer
    )
    assert fixed.status_code == 200 and fixed.json()["attributes"] == {"doctor": "Д-р"}
