"""Contacts over the API: E.164 phones, validation that names the field, paging and search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

Headers = dict[str, str]


def add(client: TestClient, headers: Headers, **fields: Any) -> dict[str, Any]:
    body = {"name": "Иван Петров", "phone": "0888 123 456", **fields}
    response = client.post("/api/v1/contacts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize(
    "raw", ["0888 123 456", "+359 88 812 3456", "00359888123456", "0888-123-456"]
)
def test_phone_is_stored_in_e164(client: TestClient, writer: Headers, raw: str) -> None:
    assert add(client, writer, phone=raw)["phone"] == "+359888123456"


def test_foreign_number_keeps_its_country(client: TestClient, writer: Headers) -> None:
    assert add(client, writer, phone="+44 7911 123456")["phone"] == "+447911123456"


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("123", "not a valid phone number"),
        ("02 987 6543", "not a mobile"),
        ("call me", "not a phone"),
    ],
)
def test_invalid_phone_is_refused_naming_the_field(
    client: TestClient, writer: Headers, phone: str, reason: str
) -> None:
    response = client.post("/api/v1/contacts", json={"name": "A", "phone": phone}, headers=writer)
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == "phone"
    assert reason in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "A", "phone": "0888123456", "nickname": "x"}, "nickname", "not a known field"),
        ({"name": 5, "phone": "0888123456"}, "name", "string"),
        ({"phone": "0888123456"}, "name", "required"),
        ({"name": "A", "phone": "0888123456", "timezone": "Europe/Sofiya"}, "timezone", "IANA"),
        ({"name": "A", "phone": "0888123456", "language": "de"}, "language", "'bg' or 'en'"),
        ({"name": "A", "phone": "0888123456", "email": "nope"}, "email", "email"),
        ({"name": "A", "phone": "0888123456", "opted_out": "maybe"}, "opted_out", "boolean"),
        ({"name": "A\u0000", "phone": "0888123456"}, "name", "control"),
    ],
)
def test_bad_input_names_the_field(
    client: TestClient, writer: Headers, body: dict[str, Any], field: str, message: str
) -> None:
    response = client.post("/api/v1/contacts", json=body, headers=writer)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors


def test_malformed_json_is_a_422(client: TestClient, writer: Headers) -> None:
    response = client.post(
        "/api/v1/contacts",
        content=b"{not json",
        headers={**writer, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


def test_crud(client: TestClient, writer: Headers, reader: Headers) -> None:
    created = add(
        client,
        writer,
        email="ivan@example.bg",
        timezone="Europe/London",
        language="en",
        external_id="crm-1",
        attributes={"doctor": "Петрова"},
    )
    contact_id = created["id"]
    fetched = client.get(f"/api/v1/contacts/{contact_id}", headers=reader).json()
    assert fetched == created

    patched = client.patch(
        f"/api/v1/contacts/{contact_id}",
        json={"phone": "+359 88 999 0000", "opted_out": True},
        headers=writer,
    )
    assert patched.status_code == 200
    assert patched.json()["phone"] == "+359889990000"
    assert patched.json()["opted_out"] is True
    assert patched.json()["email"] == "ivan@example.bg"  # untouched fields stay

    assert (
        client.patch(
            f"/api/v1/contacts/{contact_id}", json={"name": None}, headers=writer
        ).status_code
        == 422
    )

    assert client.delete(f"/api/v1/contacts/{contact_id}", headers=writer).status_code == 204
    missing = client.get(f"/api/v1/contacts/{contact_id}", headers=reader)
    assert missing.status_code == 404
    assert "no contact" in missing.json()["detail"]


def test_external_id_is_unique(client: TestClient, writer: Headers) -> None:
    first = add(client, writer, external_id="crm-7")
    clash = client.post(
        "/api/v1/contacts",
        json={"name": "B", "phone": "0888111222", "external_id": "crm-7"},
        headers=writer,
    )
    assert clash.status_code == 409
    assert clash.json()["errors"][0]["field"] == "external_id"
    assert str(first["id"]) in clash.json()["detail"]


def test_paging_walks_every_contact_once(client: TestClient, writer: Headers) -> None:
    ids = [
        add(client, writer, name=f"Contact {i}", phone=f"0888 100 {i:03d}")["id"] for i in range(7)
    ]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/contacts", params=params, headers=writer).json()
        seen += [c["id"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3


def test_bad_cursor_and_limit(client: TestClient, writer: Headers) -> None:
    bad_cursor = client.get("/api/v1/contacts", params={"cursor": "!!"}, headers=writer)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"
    bad_limit = client.get("/api/v1/contacts", params={"limit": 0}, headers=writer)
    assert bad_limit.status_code == 422
    assert bad_limit.json()["errors"][0]["field"] == "limit"


def test_search_by_name_any_case_and_by_phone(client: TestClient, writer: Headers) -> None:
    ivan = add(client, writer, name="Иван Петров", phone="0888 123 456")
    add(client, writer, name="Мария Иванова", phone="0899 555 666")
    add(client, writer, name="John Smith", phone="0877 000 111")

    def search(q: str) -> list[str]:
        page = client.get("/api/v1/contacts", params={"q": q}, headers=writer).json()
        return sorted(c["name"] for c in page["items"])

    assert search("иван") == ["Иван Петров", "Мария Иванова"]
    assert search("ПЕТРОВ") == ["Иван Петров"]
    assert search("smith") == ["John Smith"]
    assert search("0888 123") == [ivan["name"]]
    assert search("+359888123456") == [ivan["name"]]
    assert search("50%") == []


def test_a_too_long_search_text_is_refused_in_characters(
    client: TestClient, writer: Headers
) -> None:
    too_long = client.get("/api/v1/contacts", params={"q": "и" * 201}, headers=writer)
    assert too_long.status_code == 422, too_long.text
    [error] = too_long.json()["errors"]
    assert error["field"] == "q"
    assert error["message"] == "the search text may be at most 200 characters long, not 201"
    longest = client.get("/api/v1/contacts", params={"q": "и" * 200}, headers=writer)
    assert longest.status_code == 200, longest.text
    control = client.get("/api/v1/contacts", params={"q": "a\x00b"}, headers=writer)
    assert control.status_code == 422
    assert control.json()["errors"][0]["field"] == "q"


# What a contact's pending notices do when its phone or its opt-out changes.


def later(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def notices(client: TestClient, headers: Headers, **params: Any) -> list[dict[str, Any]]:
    page = client.get("/api/v1/notices", params={"limit": 500, **params}, headers=headers)
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


def keys_and_jobs(engine: Engine) -> tuple[dict[int, tuple[str, str, str]], set[str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, key, phone, status FROM notices")).all()
        jobs = set(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
    return {i: (key, phone, status) for i, key, phone, status in rows}, jobs


def test_a_new_phone_takes_the_pending_notices_along(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    ivan = add(client, writer, phone="0888 400 001")
    message = client.post(
        "/api/v1/messages",
        json={"to": {"contacts": [ivan["id"]]}, "text": "Утре", "send_at": later(2)},
        headers=writer,
    ).json()
    bill = client.post(
        "/api/v1/bills",
        json={"external_id": "inv-p", "contact": ivan["id"], "amount": "10", "due": later(20)[:10]},
        headers=writer,
    ).json()
    pending = [n["id"] for n in notices(client, writer, contact_id=ivan["id"])]
    assert len(pending) == 5
    # One of the bill's notices already went out: it stays what it was.
    gone = bill["notices"][0]["id"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE notices SET status = 'sent' WHERE id = :i"), {"i": gone})

    patched = client.patch(
        f"/api/v1/contacts/{ivan['id']}", json={"phone": "0888 400 002"}, headers=writer
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["phone"] == "+359888400002"

    rows, jobs = keys_and_jobs(engine)
    assert rows[gone][1:] == ("+359888400001", "sent")
    assert rows[gone][0].endswith(":+359888400001")
    for notice_id in set(pending) - {gone}:
        key, phone, status = rows[notice_id]
        assert (phone, status) == ("+359888400002", "scheduled")
        assert key.endswith(":+359888400002")
        assert f"notice:{notice_id}" in jobs  # the same notice, the same job
    assert rows[pending[0]][0] == f"message:{message['id']}:+359888400002"
    assert patched.json()["notices"] == {"moved": 4, "cancelled": 0, "suppressed": 0}

    # Planning the bill again finds its notices where they moved: nothing new, nothing to the
    # old number.
    again = client.post(
        "/api/v1/bills",
        json={"external_id": "inv-p", "contact": ivan["id"], "amount": "10", "due": later(20)[:10]},
        headers=writer,
    ).json()
    assert sorted(n["id"] for n in again["notices"]) == sorted(n["id"] for n in bill["notices"])
    assert {n["phone"] for n in again["notices"] if n["status"] == "scheduled"} == {"+359888400002"}


def test_a_new_phone_that_already_has_the_notice_gets_it_once(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    ivan = add(client, writer, phone="0888 400 011")
    to = {"contacts": [ivan["id"]], "phones": ["0888 400 012"]}
    message = client.post(
        "/api/v1/messages", json={"to": to, "text": "Утре", "send_at": later(2)}, headers=writer
    ).json()
    event = client.post(
        "/api/v1/events",
        json={"title": "Преглед", "start": later(10), "recipients": to},
        headers=writer,
    ).json()
    assert len(event["notices"]) == 4

    patched = client.patch(
        f"/api/v1/contacts/{ivan['id']}", json={"phone": "+359888400012"}, headers=writer
    )
    assert patched.status_code == 200, patched.text

    rows, jobs = keys_and_jobs(engine)
    live = [(key, phone) for key, phone, status in rows.values() if status == "scheduled"]
    assert sorted(live) == sorted(
        [(f"message:{message['id']}:+359888400012", "+359888400012")]
        + [(f"anchor:{event['id']}:{step}:+359888400012", "+359888400012") for step in (0, 1)]
    )
    assert patched.json()["notices"] == {"moved": 0, "cancelled": 3, "suppressed": 0}
    cancelled = [i for i, (_, _, status) in rows.items() if status == "cancelled"]
    assert len(cancelled) == 3 and not {f"notice:{i}" for i in cancelled} & jobs
    reason = client.get(f"/api/v1/notices/{cancelled[0]}", headers=writer).json()["status_reason"]
    assert "+359888400012" in reason

    # The event planned again keeps one notice per step for the number.
    moved = client.patch(
        f"/api/v1/events/{event['id']}", json={"start": later(11)}, headers=writer
    ).json()
    assert sorted(
        (n["phone"], n["step"]) for n in moved["notices"] if n["status"] == "scheduled"
    ) == [
        ("+359888400012", 0),
        ("+359888400012", 1),
    ]


def test_opting_out_suppresses_the_pending_notices(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    ivan = add(client, writer, phone="0888 400 021")
    client.post(
        "/api/v1/messages",
        json={"to": {"contacts": [ivan["id"]]}, "text": "Утре", "send_at": later(2)},
        headers=writer,
    )
    patched = client.patch(
        f"/api/v1/contacts/{ivan['id']}",
        json={"opted_out": True, "phone": "0888 400 022"},
        headers=writer,
    )
    assert patched.status_code == 200, patched.text
    [notice] = notices(client, writer, contact_id=ivan["id"])
    assert (notice["status"], notice["status_reason"]) == ("suppressed", "the contact opted out")
    assert patched.json()["notices"] == {"moved": 0, "cancelled": 0, "suppressed": 1}
    _, jobs = keys_and_jobs(engine)
    assert jobs == set()
