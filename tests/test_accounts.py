"""Accounts: the provider's API for them, and each account seeing its own rows alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.accounts.defaults import DEFAULT_POLICIES
from reminders.db import utcnow
from reminders.models import Account, Notice, Policy
from reminders.scheduler.claims import LanePicker
from reminders.scheduler.notice_scheduler import job_id
from reminders.scheduler.shares import AccountShares
from tests.conftest import wait_for

Headers = dict[str, str]


def new_account(client: TestClient, provider: Headers, slug: str, **fields: Any) -> Any:
    response = client.post("/api/v1/accounts", json={"slug": slug, **fields}, headers=provider)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_provider_creates_reads_and_changes_accounts(
    client: TestClient, provider: Headers, engine: Engine
) -> None:
    made = new_account(
        client,
        provider,
        "clinic-a",
        name="Clinic A",
        sender_ids=["ClinicA", "Clinic"],
        default_sender_id="ClinicA",
        monthly_segments=1000,
    )
    assert made["slug"] == "clinic-a" and made["status"] == "active"
    assert made["sender_ids"] == ["ClinicA", "Clinic"] and made["rate_share"] == 1

    slugs = [a["slug"] for a in client.get("/api/v1/accounts", headers=provider).json()]
    assert slugs == ["default", "clinic-a"]
    got = client.get("/api/v1/accounts/clinic-a", headers=provider).json()
    assert got == made

    patched = client.patch(
        "/api/v1/accounts/clinic-a",
        json={"rate_share": 3, "name": "Clinic A Ltd"},
        headers=provider,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["rate_share"] == 3 and patched.json()["name"] == "Clinic A Ltd"

    # It starts with the two default policies, its own copies.
    with Session(engine) as session:
        mine = session.exec(select(Policy).where(Policy.account_id == made["id"])).all()
        assert sorted(p.name for p in mine) == sorted(p["name"] for p in DEFAULT_POLICIES)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"slug": "A"}, "slug"),
        ({"slug": "x"}, "slug"),
        ({"slug": "default"}, "slug"),  # taken: 409
        ({"slug": "ok-1", "sender_ids": ["this is far too long"]}, "sender_ids.0"),
        ({"slug": "ok-2", "sender_ids": ["A1"], "default_sender_id": "B1"}, "default_sender_id"),
        ({"slug": "ok-3", "rate_share": 0}, "rate_share"),
        ({"slug": "ok-4", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_account_is_refused_naming_the_field(
    client: TestClient, provider: Headers, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/accounts", json=body, headers=provider)
    assert response.status_code in (409, 422), response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_only_a_provider_key_manages_accounts(
    client: TestClient, provider: Headers, admin: Headers
) -> None:
    refused = client.get("/api/v1/accounts", headers=admin)
    assert refused.status_code == 403
    assert "provider" in refused.json()["detail"]
    assert client.post("/api/v1/accounts", json={"slug": "z1"}, headers=admin).status_code == 403
    unknown = client.get("/api/v1/accounts/nobody", headers=provider)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "slug"


def test_a_provider_key_acts_in_the_account_it_names(
    client: TestClient, provider: Headers, two: tuple[Headers, Headers]
) -> None:
    a, _ = two
    made = client.post(
        "/api/v1/contacts",
        json={"name": "Мария", "phone": "0888 100 001"},
        headers={**provider, "Reminders-Account": "clinic-a"},
    )
    assert made.status_code == 201, made.text
    assert client.get(f"/api/v1/contacts/{made.json()['id']}", headers=a).status_code == 200

    # Without naming one it is told which header to send, and nothing is written.
    bare = client.post(
        "/api/v1/contacts", json={"name": "X", "phone": "0888 100 002"}, headers=provider
    )
    assert bare.status_code == 422
    assert bare.json()["errors"][0] == {
        "field": "Reminders-Account",
        "in": "header",
        "message": bare.json()["errors"][0]["message"],
    }
    nobody = client.get("/api/v1/contacts", headers={**provider, "Reminders-Account": "zz9"})
    assert nobody.status_code == 404
    # An account's key cannot borrow another's name.
    other = client.get("/api/v1/contacts", headers={**a, "Reminders-Account": "bank-b"})
    assert other.status_code == 403


def test_each_account_sees_only_its_own_rows(
    client: TestClient, two: tuple[Headers, Headers]
) -> None:
    a, b = two
    # The same external id in two accounts: two contacts, no conflict.
    body = {"name": "Пациент", "phone": "0888 200 001", "external_id": "42"}
    in_a = client.post("/api/v1/contacts", json=body, headers=a)
    in_b = client.post("/api/v1/contacts", json=body, headers=b)
    assert in_a.status_code == in_b.status_code == 201, (in_a.text, in_b.text)
    ida, idb = in_a.json()["id"], in_b.json()["id"]
    assert ida != idb

    # Another account's id in a path is a 404, as if it did not exist.
    assert client.get(f"/api/v1/contacts/{idb}", headers=a).status_code == 404
    assert client.patch(f"/api/v1/contacts/{idb}", json={"name": "x"}, headers=a).status_code == 404
    assert client.delete(f"/api/v1/contacts/{idb}", headers=a).status_code == 404
    listed = client.get("/api/v1/contacts", headers=a).json()["items"]
    assert [c["id"] for c in listed] == [ida]

    # Another account's contact or group in a body is a 422 naming the field.
    group_b = client.post("/api/v1/groups", json={"name": "G"}, headers=b).json()["id"]
    same_name = client.post("/api/v1/groups", json={"name": "G"}, headers=a)
    assert same_name.status_code == 201  # group names are unique per account
    members = client.post(
        f"/api/v1/groups/{same_name.json()['id']}/members",
        json={"contact_ids": [idb]},
        headers=a,
    )
    assert members.status_code == 422 and members.json()["errors"][0]["field"].startswith(
        "contact_ids"
    )
    message = client.post(
        "/api/v1/messages", json={"to": {"groups": [group_b]}, "text": "x"}, headers=a
    )
    assert message.status_code == 422, message.text
    assert message.json()["errors"][0]["field"].startswith("to.groups")

    # Each account has its own "appointment" policy; editing one leaves the other's.
    edited = client.patch(
        "/api/v1/policies/appointment", json={"description": "A's own"}, headers=a
    )
    assert edited.status_code == 200, edited.text
    theirs = client.get("/api/v1/policies/appointment", headers=b).json()
    assert theirs["description"] != "A's own"

    # Keys: an admin lists and revokes its own account's alone.
    keys_a = {k["id"] for k in client.get("/api/v1/keys", headers=a).json()}
    keys_b = {k["id"] for k in client.get("/api/v1/keys", headers=b).json()}
    assert keys_a and keys_b and not keys_a & keys_b
    assert client.delete(f"/api/v1/keys/{min(keys_b)}", headers=a).status_code == 404


def test_a_suspended_account_is_refused_and_its_notices_wait(
    client: TestClient, provider: Headers, two: tuple[Headers, Headers], engine: Engine
) -> None:
    a, b = two
    sent = client.post(
        "/api/v1/messages",
        json={"to": {"phones": ["0888 300 001"]}, "text": "later", "send_at": "2030-01-01T10:00"},
        headers=a,
    )
    assert sent.status_code == 201, sent.text
    notice_id = sent.json()["notices"][0]["id"]

    suspended = client.patch(
        "/api/v1/accounts/clinic-a",
        json={"status": "suspended", "status_reason": "unpaid invoice 2026-11"},
        headers=provider,
    )
    assert suspended.status_code == 200, suspended.text
    refused = client.get("/api/v1/contacts", headers=a)
    assert refused.status_code == 403
    assert "suspended" in refused.json()["detail"] and "unpaid invoice" in refused.json()["detail"]
    assert client.get("/api/v1/contacts", headers=b).status_code == 200  # the others go on

    # Its notice comes due while it is suspended: its job marks it due, and no lane picks it.
    with engine.begin() as conn:
        conn.execute(
            update(Notice)
            .where(col(Notice.id) == notice_id)
            .values(send_at=utcnow() - timedelta(seconds=1))
        )
    scheduler = client.app.state.scheduler  # type: ignore[attr-defined]
    scheduler.schedule([(notice_id, utcnow(), "bulk")])
    assert _status(engine, notice_id) == "due"
    assert _job_time(engine, notice_id) is None
    with Session(engine) as session:
        assert LanePicker("bulk", AccountShares(engine))(session, utcnow(), 10) == []
        assert LanePicker("bulk")(session, utcnow(), 10) == []
    assert _status(engine, notice_id) == "due"

    # Active again: the lanes' next look takes it.
    active = client.patch("/api/v1/accounts/clinic-a", json={"status": "active"}, headers=provider)
    assert active.json()["status_reason"] is None
    wait_for(lambda: _status(engine, notice_id) == "sent", what="the held notice to be sent")
    assert client.get("/api/v1/contacts", headers=a).status_code == 200


def _job_time(engine: Engine, notice_id: int) -> datetime | None:
    with engine.connect() as conn:
        at = conn.execute(
            text("SELECT next_run_time FROM apscheduler_jobs WHERE id = :id"),
            {"id": job_id(notice_id)},
        ).scalar()
    return datetime.fromtimestamp(at, UTC) if at is not None else None


def _status(engine: Engine, notice_id: int) -> str:
    with Session(engine) as session:
        return session.get_one(Notice, notice_id).status


def test_the_default_account_is_there_after_the_migrations(engine: Engine) -> None:
    with Session(engine) as session:
        accounts = session.exec(select(Account)).all()
    assert [(a.id, a.slug, a.status) for a in accounts] == [(1, "default", "active")]
