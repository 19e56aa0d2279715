"""Every API route needs a key; scopes are enforced; keys are hashed at rest."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders import apikeys
from reminders.db import make_engine
from reminders.errors import Conflict
from reminders.migrate import upgrade
from tests.conftest import create_pg_database, wait_for


def test_missing_and_wrong_keys_are_refused(client: TestClient) -> None:
    missing = client.get("/api/v1/contacts")
    assert missing.status_code == 401
    assert "API key is required" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"

    wrong = client.get("/api/v1/contacts", headers={"Authorization": "Bearer rmd_nope"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.json()["detail"]

    basic = client.get("/api/v1/contacts", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def test_every_api_route_is_protected(client: TestClient) -> None:
    """Walk the OpenAPI schema: without a key, every operation under /api answers 401."""
    schema = client.get("/openapi.json").json()
    checked = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            response = client.request(method.upper(), concrete)
            assert response.status_code == 401, (method, path, response.status_code)
            checked += 1
    assert checked >= 15


def test_read_key_cannot_write(client: TestClient, reader: dict[str, str]) -> None:
    assert client.get("/api/v1/contacts", headers=reader).status_code == 200
    refused = client.post(
        "/api/v1/contacts", json={"name": "A", "phone": "0888123456"}, headers=reader
    )
    assert refused.status_code == 403
    assert "write" in refused.json()["detail"]


def test_only_admin_manages_keys(
    client: TestClient, writer: dict[str, str], admin: dict[str, str]
) -> None:
    assert client.get("/api/v1/keys", headers=writer).status_code == 403
    assert client.post("/api/v1/keys", json={"name": "x"}, headers=writer).status_code == 403

    created = client.post("/api/v1/keys", json={"name": "billing", "scope": "write"}, headers=admin)
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert secret.startswith("rmd_") and body["scope"] == "write"
    new_key = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/contacts", headers=new_key).status_code == 200

    listed = client.get("/api/v1/keys", headers=admin).json()
    assert all("key" not in item for item in listed)

    revoked = client.delete(f"/api/v1/keys/{body['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get("/api/v1/contacts", headers=new_key).status_code == 401


def test_keys_are_stored_hashed(client: TestClient, engine: Engine, admin: dict[str, str]) -> None:
    secret = admin["Authorization"].removeprefix("Bearer ")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key_hash, prefix FROM api_keys")).all()
    assert rows
    for key_hash, prefix in rows:
        assert secret not in key_hash
        assert len(key_hash) == 64 and len(prefix) < 16


def test_the_last_admin_key_cannot_be_revoked(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    own_id = client.get("/api/v1/keys", headers=admin).json()[0]["id"]
    refused = client.delete(f"/api/v1/keys/{own_id}", headers=admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"][0]["field"] == "id"
    assert "last admin key" in refused.json()["detail"]
    assert client.get("/api/v1/keys", headers=admin).status_code == 200

    # With a second admin key, either may go, but then the other is the last one.
    second = client.post("/api/v1/keys", json={"name": "ops", "scope": "admin"}, headers=admin)
    other = {"Authorization": f"Bearer {second.json()['key']}"}
    assert client.delete(f"/api/v1/keys/{own_id}", headers=admin).status_code == 200
    last = client.delete(f"/api/v1/keys/{second.json()['id']}", headers=other)
    assert last.status_code == 409, last.text
    # Revoking a revoked key again changes nothing and is not refused.
    assert client.delete(f"/api/v1/keys/{own_id}", headers=other).status_code == 200
    with Session(engine) as session:
        live = [k for k in apikeys.list_keys(session) if k.revoked_at is None]
    assert [(k.id, k.scope) for k in live] == [(second.json()["id"], "admin")]


@pytest.mark.slow  # PostgreSQL
def test_two_concurrent_revocations_leave_one_admin_key_on_postgresql() -> None:
    """Each of two requests revokes one of the last two admin keys at the same moment: the
    second must wait for the first and then find its key is the last one."""
    url, drop = create_pg_database()
    engine = make_engine(url)
    try:
        upgrade(engine)
        with Session(engine) as session:
            first = apikeys.create_key(session, name="a", scope="admin", account_id=1).key.id
            second = apikeys.create_key(session, name="b", scope="admin", account_id=1).key.id
            session.commit()
        assert first is not None and second is not None

        holder = Session(engine)
        apikeys.revoke_key(holder, first)  # not committed: its transaction holds the lock

        def revoke_second() -> str:
            with Session(engine) as session:
                try:
                    apikeys.revoke_key(session, second)
                    session.commit()
                except Conflict as exc:
                    return exc.message
                return "revoked"

        with ThreadPoolExecutor(max_workers=1) as pool:
            outcome = pool.submit(revoke_second)
            wait_for(
                lambda: _waiting_on_a_lock(engine),
                what="the second revocation to wait for the first one's lock",
            )
            holder.commit()
            holder.close()
            assert "last admin key" in outcome.result(timeout=30)
        with Session(engine) as session:
            live = [k.id for k in apikeys.list_keys(session) if k.revoked_at is None]
        assert live == [second]
    finally:
        engine.dispose()
        drop()


def _waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)
