"""Users and roles: the account admins' API, the password rules, and signing in."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders.accounts import users
from reminders.db import make_engine
from reminders.errors import Conflict, InvalidField
from reminders.migrate import upgrade
from reminders.models import User
from reminders.schemas.users import UserUpdate
from tests.conftest import create_pg_database, wait_for

Headers = dict[str, str]
PASSWORD = "  Пролет в София 2026  "  # spaces at both ends are part of it


def new_user(
    client: TestClient, headers: Headers, email: str, role: str = "operator", **fields: Any
) -> Any:
    body = {"email": email, "role": role, "password": PASSWORD, **fields}
    response = client.post("/api/v1/users", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_an_admin_creates_lists_changes_and_deletes_users(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    made = new_user(client, admin, "Ivan.Petrov@Example.BG", "admin")
    assert made["email"] == "ivan.petrov@example.bg"  # casefolded
    assert (made["role"], made["disabled"], made["last_login_at"]) == ("admin", False, None)
    assert "password" not in made and "password_hash" not in made
    other = new_user(client, admin, "maria@example.bg", "viewer", disabled=True)

    listed = client.get("/api/v1/users", headers=admin).json()
    assert [u["email"] for u in listed] == ["ivan.petrov@example.bg", "maria@example.bg"]
    assert client.get(f"/api/v1/users/{other['id']}", headers=admin).json() == other

    patched = client.patch(
        f"/api/v1/users/{other['id']}",
        json={"role": "operator", "disabled": False, "email": "Maria.P@Example.bg"},
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["email"] == "maria.p@example.bg"
    assert (patched.json()["role"], patched.json()["disabled"]) == ("operator", False)

    # The hash is Argon2 and any pwdlib verifies it; a new password replaces it.
    with Session(engine) as session:
        stored = session.exec(select(User).where(User.id == other["id"])).one()
        assert stored.password_hash.startswith("$argon2id$")
        assert PasswordHash.recommended().verify(PASSWORD, stored.password_hash)
        assert not PasswordHash.recommended().verify(PASSWORD.strip(), stored.password_hash)
    changed = client.patch(
        f"/api/v1/users/{other['id']}", json={"password": "a new one, long enough"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    with Session(engine) as session:
        stored = session.exec(select(User).where(User.id == other["id"])).one()
        assert PasswordHash.recommended().verify("a new one, long enough", stored.password_hash)

    deleted = client.delete(f"/api/v1/users/{other['id']}", headers=admin)
    assert deleted.status_code == 204, deleted.text
    assert client.get(f"/api/v1/users/{other['id']}", headers=admin).status_code == 404
    assert client.delete(f"/api/v1/users/{other['id']}", headers=admin).status_code == 404
    assert [u["id"] for u in client.get("/api/v1/users", headers=admin).json()] == [made["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "owner"}, "role"),
        ({"role": None}, "role"),
        ({"email": "not an address"}, "email"),
        ({"email": "a\x00b@example.bg"}, "email"),
        ({"password": "123456789"}, "password"),  # nine characters
        ({"password": "long enough\x00but NUL"}, "password"),
        ({"password": "long enough\nbut two lines"}, "password"),
        ({"password": "x" * 1001}, "password"),
        ({"password": 1234567890}, "password"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_user_is_refused_naming_the_field(
    client: TestClient, admin: Headers, body: dict[str, Any], field: str
) -> None:
    full = {"email": "new@example.bg", "role": "viewer", "password": PASSWORD, **body}
    response = client.post("/api/v1/users", json=full, headers=admin)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    if field == "password":
        assert str(body["password"]) not in response.text

    existing = new_user(client, admin, "old@example.bg")
    patched = client.patch(f"/api/v1/users/{existing['id']}", json=body, headers=admin)
    assert patched.status_code == 422, patched.text
    assert [e["field"] for e in patched.json()["errors"]] == [field]


def test_the_role_is_required_and_one_of_three(client: TestClient, admin: Headers) -> None:
    body = {"email": "new@example.bg", "password": PASSWORD}
    missing = client.post("/api/v1/users", json=body, headers=admin)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "role"
    for role in ("admin", "operator", "viewer"):
        made = new_user(client, admin, f"{role}@example.bg", role)
        assert made["role"] == role
    provider_role = client.post("/api/v1/users", json={**body, "role": "provider"}, headers=admin)
    assert provider_role.status_code == 422, provider_role.text


def test_an_email_is_taken_in_any_case_and_in_any_account(
    client: TestClient, two: tuple[Headers, Headers]
) -> None:
    a, b = two
    first = new_user(client, a, "ivan@example.bg")
    for headers, email in ((a, "IVAN@example.bg"), (b, "Ivan@Example.BG")):
        again = client.post(
            "/api/v1/users",
            json={"email": email, "role": "viewer", "password": PASSWORD},
            headers=headers,
        )
        assert again.status_code == 409, again.text
        assert again.json()["errors"][0]["field"] == "email"
    second = new_user(client, a, "maria@example.bg")
    taken = client.patch(
        f"/api/v1/users/{second['id']}", json={"email": "IVAN@EXAMPLE.BG"}, headers=a
    )
    assert taken.status_code == 409 and taken.json()["errors"][0]["field"] == "email"
    # A user may keep (or re-case) their own address.
    own = client.patch(f"/api/v1/users/{first['id']}", json={"email": "Ivan@example.bg"}, headers=a)
    assert own.status_code == 200, own.text


def test_another_accounts_users_are_not_found(
    client: TestClient, two: tuple[Headers, Headers], provider: Headers
) -> None:
    a, b = two
    mine = new_user(client, a, "ivan@clinic.bg", "admin")
    theirs = new_user(client, b, "petar@bank.bg", "admin")
    new_user(client, b, "second@bank.bg", "admin")  # so the last-admin rule is not what answers
    assert [u["id"] for u in client.get("/api/v1/users", headers=a).json()] == [mine["id"]]
    path = f"/api/v1/users/{theirs['id']}"
    assert client.get(path, headers=a).status_code == 404
    patched = client.patch(path, json={"role": "viewer"}, headers=a)
    assert patched.status_code == 404 and patched.json()["errors"][0]["field"] == "id"
    assert client.delete(path, headers=a).status_code == 404
    assert client.get(path, headers=b).json()["role"] == "admin"

    # A provider key acting in clinic-a is clinic-a's admin, no more; without the header it is
    # told to name an account.
    in_a = {**provider, "Reminders-Account": "clinic-a"}
    assert [u["id"] for u in client.get("/api/v1/users", headers=in_a).json()] == [mine["id"]]
    assert client.get(path, headers=in_a).status_code == 404
    made = new_user(client, in_a, "nurse@clinic.bg", "viewer")
    assert [u["id"] for u in client.get("/api/v1/users", headers=a).json()][-1] == made["id"]
    bare = client.get("/api/v1/users", headers=provider)
    assert bare.status_code == 422 and bare.json()["errors"][0]["field"] == "Reminders-Account"


def test_a_provider_administrator_is_not_seen_through_an_account(
    client: TestClient, admin: Headers, provider: Headers, engine: Engine
) -> None:
    with Session(engine) as session:
        above = users.create_user(
            session, email="ops@provider.bg", password=PASSWORD, role=None, account_id=None
        )
        session.commit()
        assert (above.account_id, above.role) == (None, "admin")
    in_default = {**provider, "Reminders-Account": "default"}
    for headers in (admin, in_default):
        assert client.get("/api/v1/users", headers=headers).json() == []
        path = f"/api/v1/users/{above.id}"
        assert client.get(path, headers=headers).status_code == 404
        assert client.patch(path, json={"disabled": True}, headers=headers).status_code == 404
        assert client.delete(path, headers=headers).status_code == 404
    # Nor can an account take their address.
    clash = client.post(
        "/api/v1/users",
        json={"email": "OPS@provider.bg", "role": "viewer", "password": PASSWORD},
        headers=admin,
    )
    assert clash.status_code == 409
    with Session(engine) as session:
        kept = session.get(User, above.id)
        assert kept is not None and not kept.disabled and kept.account_id is None


def test_the_last_enabled_admin_stays(client: TestClient, admin: Headers) -> None:
    viewer = new_user(client, admin, "viewer@example.bg", "viewer")
    # No admin user yet: nothing to keep, so viewers come and go freely.
    assert client.patch(
        f"/api/v1/users/{viewer['id']}", json={"disabled": True}, headers=admin
    ).json()["disabled"]
    boss = new_user(client, admin, "boss@example.bg", "admin")
    path = f"/api/v1/users/{boss['id']}"
    for method, body in (
        ("PATCH", {"disabled": True}),
        ("PATCH", {"role": "operator"}),
        ("PATCH", {"role": "viewer", "disabled": True}),
        ("DELETE", None),
    ):
        refused = client.request(method, path, json=body, headers=admin)
        assert refused.status_code == 409, (method, body, refused.text)
        assert refused.json()["errors"][0]["field"] == "id"
        assert "last enabled admin" in refused.json()["detail"]
    assert client.get(path, headers=admin).json() == boss  # nothing changed

    # A disabled admin does not count; an enabled one does.
    client.patch(f"/api/v1/users/{viewer['id']}", json={"role": "admin"}, headers=admin)
    assert client.patch(path, json={"disabled": True}, headers=admin).status_code == 409
    client.patch(f"/api/v1/users/{viewer['id']}", json={"disabled": False}, headers=admin)
    demoted = client.patch(path, json={"role": "viewer"}, headers=admin)
    assert demoted.status_code == 200, demoted.text
    assert client.delete(path, headers=admin).status_code == 204
    # Other changes to the last admin are fine.
    last = f"/api/v1/users/{viewer['id']}"
    renamed = client.patch(last, json={"email": "chief@example.bg", "role": "admin"}, headers=admin)
    assert renamed.status_code == 200, renamed.text
    assert client.delete(last, headers=admin).status_code == 409


def test_read_and_write_keys_cannot_manage_users(
    client: TestClient, admin: Headers, reader: Headers, writer: Headers
) -> None:
    someone = new_user(client, admin, "someone@example.bg", "viewer")
    path = f"/api/v1/users/{someone['id']}"
    body = {"email": "x@example.bg", "role": "admin", "password": PASSWORD}
    for headers in (reader, writer):
        for method, url, json in (
            ("GET", "/api/v1/users", None),
            ("POST", "/api/v1/users", body),
            ("GET", path, None),
            ("PATCH", path, {"role": "admin"}),
            ("DELETE", path, None),
        ):
            response = client.request(method, url, json=json, headers=headers)
            assert response.status_code == 403, (method, url, response.text)
            assert "admin is needed" in response.json()["detail"]
    assert client.get(path, headers=admin).json() == someone


def test_no_answer_carries_a_password_or_its_hash(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    answers = []
    made = client.post(
        "/api/v1/users",
        json={"email": "ivan@example.bg", "role": "admin", "password": PASSWORD},
        headers=admin,
    )
    answers.append(made)
    path = f"/api/v1/users/{made.json()['id']}"
    answers.append(client.patch(path, json={"password": "второ-дълго-тайно"}, headers=admin))
    answers.append(client.patch(path, json={"password": "short-pw"}, headers=admin))
    answers.append(client.patch(path, json={"password": "with\ttab inside"}, headers=admin))
    answers.append(client.get(path, headers=admin))
    answers.append(client.get("/api/v1/users", headers=admin))
    answers.append(
        client.post(
            "/api/v1/users",
            json={"email": "IVAN@example.bg", "role": "viewer", "password": "третото-тайно"},
            headers=admin,
        )
    )
    with Session(engine) as session:
        (stored,) = session.exec(select(User)).all()
    secrets = [PASSWORD, PASSWORD.strip(), "второ-дълго-тайно", "short-pw", "with\\ttab inside"]
    secrets += ["третото-тайно", stored.password_hash, stored.password_hash.split("$")[-1]]
    assert [a.status_code for a in answers] == [201, 200, 422, 422, 200, 200, 409]
    for answer in answers:
        assert "password_hash" not in answer.text
        for secret in secrets:
            assert secret not in answer.text, (answer.request.url, answer.text)
        if answer.status_code < 300:
            body = answer.json()
            for item in body if isinstance(body, list) else [body]:
                assert "password" not in item


def test_signing_in(engine: Engine) -> None:
    with Session(engine) as session:
        made = users.create_user(
            session, email="Ivan@Example.bg", password=PASSWORD, role="operator", account_id=1
        )
        off = users.create_user(
            session,
            email="off@example.bg",
            password=PASSWORD,
            role="viewer",
            account_id=1,
            disabled=True,
        )
        session.commit()
        assert users.verify_password(made, PASSWORD)
        assert not users.verify_password(made, PASSWORD.strip())

        signed_in = users.authenticate(session, "IVAN@example.BG", PASSWORD)
        assert signed_in is not None and signed_in.id == made.id
        assert signed_in.last_login_at is not None
        assert users.authenticate(session, "ivan@example.bg", "wrong password") is None
        assert users.authenticate(session, "nobody@example.bg", PASSWORD) is None
        assert users.authenticate(session, "not an address", PASSWORD) is None
        assert users.authenticate(session, "off@example.bg", PASSWORD) is None
        assert off.last_login_at is None
        session.commit()


def test_passwords_and_roles_are_checked_below_the_api(engine: Engine) -> None:
    """The CLI and the control panel reach these functions without the API's schemas."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"password": "short"}, "password"),
        ({"password": "NUL\x00inside it"}, "password"),
        ({"email": "nobody"}, "email"),
        ({"role": "owner"}, "role"),
        ({"role": None}, "role"),
        ({"role": "viewer", "account_id": None}, "role"),
    ]
    with Session(engine) as session:
        for change, field in cases:
            args: dict[str, Any] = {
                "email": "a@example.bg",
                "password": PASSWORD,
                "role": "admin",
                "account_id": 1,
                **change,
            }
            with pytest.raises(InvalidField) as raised:
                users.create_user(session, **args)
            assert raised.value.field == field
            assert str(change.get("password", "\x01")) not in raised.value.message


@pytest.mark.slow  # its own PostgreSQL database
def test_two_admins_disabled_at_once_leave_one_on_postgresql() -> None:
    """Each of two sessions disables one of the last two admin users at the same moment: the
    second must wait for the first and then find its user is the last admin."""
    url, drop = create_pg_database()
    engine = make_engine(url)
    try:
        upgrade(engine)
        with Session(engine) as session:
            made = [
                users.create_user(
                    session, email=f"{n}@example.bg", password=PASSWORD, role="admin", account_id=1
                ).id
                for n in ("first", "second")
            ]
            session.commit()
        first, second = made
        assert first is not None and second is not None

        holder = Session(engine)
        users.update_user(holder, first, UserUpdate(disabled=True))  # holds the lock

        def disable_second() -> str:
            with Session(engine) as session:
                try:
                    users.update_user(session, second, UserUpdate(disabled=True))
                    session.commit()
                except Conflict as exc:
                    return exc.message
                return "disabled"

        with ThreadPoolExecutor(max_workers=1) as pool:
            outcome = pool.submit(disable_second)
            wait_for(lambda: _waiting_on_a_lock(engine), what="the second to wait for the lock")
            holder.commit()
            holder.close()
            assert "last enabled admin" in outcome.result(timeout=30)
        with Session(engine) as session:
            enabled = [u.id for u in users.list_users(session) if not u.disabled]
        assert enabled == [second]
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
