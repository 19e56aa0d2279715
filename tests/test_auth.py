"""Every API route needs a key; scopes are enforced; keys are hashed at rest."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine


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
