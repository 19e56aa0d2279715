"""Administration: users and roles, API keys and sender IDs, for the account's admins (and a
provider administrator acting in it), with the domain's refusals shown on the page."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.models import Account, ApiKey, User
from tests.conftest import DEFAULT_ACCOUNT
from tests.test_panel import add_user, csrf, sign_in

NEW_PASSWORD = "Зима в Пловдив 2027"


def user(engine: Engine, email: str) -> User | None:
    with Session(engine) as session:
        return session.exec(select(User).where(User.email == email)).first()


def found(engine: Engine, email: str) -> User:
    stored = user(engine, email)
    assert stored is not None, email
    return stored


def keys(engine: Engine) -> list[ApiKey]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(ApiKey).where(ApiKey.account_id == DEFAULT_ACCOUNT).order_by(col(ApiKey.id))
            )
        )


def as_admin(client: TestClient, engine: Engine) -> str:
    add_user(engine, "admin@clinic.bg", role="admin")
    sign_in(client, "admin@clinic.bg")
    page = client.get("/admin")
    assert page.status_code == 200
    return csrf(page.text)


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_open_administration(client: TestClient, engine: Engine, role: str) -> None:
    add_user(engine, "ana@clinic.bg", role=role)
    sign_in(client, "ana@clinic.bg")
    home = client.get("/")
    assert 'href="/admin"' not in home.text
    token = csrf(home.text)
    assert client.get("/admin").status_code == 403
    posts = {
        "/admin/users": {"email": "x@clinic.bg", "password": NEW_PASSWORD, "role": "admin"},
        "/admin/users/1/role": {"role": "admin"},
        "/admin/users/1/disabled": {"disabled": "true"},
        "/admin/keys": {"name": "mine", "scope": "admin"},
        "/admin/keys/1/revoke": {},
        "/admin/senders": {"sender_ids": "CLINIC"},
    }
    for path, form in posts.items():
        assert client.post(path, data={**form, "csrf": token}).status_code == 403, path
    assert user(engine, "x@clinic.bg") is None and keys(engine) == []
    assert found(engine, "ana@clinic.bg").role == role


def test_an_admin_creates_users_and_bad_input_is_answered_beside_the_field(
    client: TestClient, engine: Engine
) -> None:
    token = as_admin(client, engine)
    refused = client.post("/admin/users", data={
        "email": "mira@clinic.bg", "password": NEW_PASSWORD, "role": "operator"})  # fmt: skip
    assert refused.status_code == 403 and user(engine, "mira@clinic.bg") is None  # no token
    made = client.post(
        "/admin/users",
        data={"email": "Mira@Clinic.bg", "password": NEW_PASSWORD, "role": "operator",
              "csrf": token},
        follow_redirects=False,
    )  # fmt: skip
    assert made.status_code == 303
    mira = user(engine, "mira@clinic.bg")
    assert mira is not None and mira.role == "operator" and mira.account_id == DEFAULT_ACCOUNT
    assert "The user was created." in client.get(made.headers["location"]).text
    client.cookies.clear()
    assert sign_in(client, "mira@clinic.bg", NEW_PASSWORD).status_code == 303
    client.cookies.clear()
    sign_in(client, "admin@clinic.bg")
    token = csrf(client.get("/admin").text)
    cases = [
        ({"email": "not-an-address", "password": NEW_PASSWORD, "role": "viewer"}, "email",
         "Това не е имейл адрес."),
        ({"email": "MIRA@clinic.bg", "password": NEW_PASSWORD, "role": "viewer"}, "email",
         "Вече има потребител с този имейл."),
        ({"email": "new@clinic.bg", "password": "short", "role": "viewer"}, "password",
         "Паролата трябва да е от 10 до 1000 знака"),
        ({"email": "new@clinic.bg", "password": NEW_PASSWORD, "role": "owner"}, "role",
         "Изберете роля"),
    ]  # fmt: skip
    for form, field, message in cases:
        bad = client.post("/admin/users", data={**form, "csrf": token},
                          headers={"Accept-Language": "bg"})  # fmt: skip
        assert bad.status_code == 422, form
        assert f'id="{field}-error"' in bad.text and message in bad.text, form
        assert f'aria-describedby="{field}-error"' in bad.text
        assert NEW_PASSWORD not in bad.text and "short" not in bad.text
    assert user(engine, "new@clinic.bg") is None


def test_roles_change_and_the_last_admin_is_kept(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    ana = add_user(engine, "ana@clinic.bg", role="viewer")
    token = as_admin(client, engine)
    me = user(engine, "admin@clinic.bg")
    assert me is not None
    done = client.post(f"/admin/users/{ana.id}/role", data={"role": "operator", "csrf": token},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303 and found(engine, "ana@clinic.bg").role == "operator"
    off = client.post(f"/admin/users/{ana.id}/disabled", data={"disabled": "true", "csrf": token},
                      follow_redirects=False)  # fmt: skip
    assert off.status_code == 303 and found(engine, "ana@clinic.bg").disabled
    page = client.get("/admin")
    assert re.search(rf'id="user-{ana.id}">.*?Disabled.*?>Enable<', page.text, re.S)
    on = client.post(f"/admin/users/{ana.id}/disabled", data={"disabled": "false", "csrf": token})
    assert on.status_code == 200 and not found(engine, "ana@clinic.bg").disabled
    # The last enabled admin: the domain refuses, the page says why, nothing changes.
    for path, form in ((f"/admin/users/{me.id}/role", {"role": "viewer"}),
                       (f"/admin/users/{me.id}/disabled", {"disabled": "true"})):  # fmt: skip
        refused = client.post(path, data={**form, "csrf": token}, headers={"Accept-Language": "bg"})
        assert refused.status_code == 409
        assert "Това е последният активен администратор на клиента." in refused.text
        assert f'id="user-{me.id}-error"' in refused.text
    again = user(engine, "admin@clinic.bg")
    assert again is not None and again.role == "admin" and not again.disabled
    bad = client.post(f"/admin/users/{ana.id}/role", data={"role": "owner", "csrf": token})
    assert bad.status_code == 422 and found(engine, "ana@clinic.bg").role == "operator"
    # Another account's user is not found, and stays as it was.
    client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    boris = add_user(engine, "boris@bank.bg", role="viewer", account="bank-b")
    for path, form in ((f"/admin/users/{boris.id}/role", {"role": "admin"}),
                       (f"/admin/users/{boris.id}/disabled", {"disabled": "true"})):  # fmt: skip
        assert client.post(path, data={**form, "csrf": token}).status_code == 404
    theirs = user(engine, "boris@bank.bg")
    assert theirs is not None and theirs.role == "viewer" and not theirs.disabled
    assert "boris@bank.bg" not in client.get("/admin").text


def test_a_new_key_is_shown_once_and_the_last_admin_key_is_kept(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    token = as_admin(client, engine)
    form = {"name": "Счетоводство", "scope": "admin", "csrf": token}
    made = client.post("/admin/keys", data=form, headers={"Accept-Language": "bg"})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-key" value="(rmd_[^"]+)"', made.text)
    assert secret is not None and "показва се само веднъж" in made.text
    # The key works, and is never shown again.
    works = client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {secret.group(1)}"})
    assert works.status_code == 200
    assert secret.group(1) not in client.get("/admin").text
    (first,) = keys(engine)
    assert first.name == "Счетоводство" and first.scope == "admin"
    reader = client.post("/admin/keys", data={"name": "Отчети", "scope": "read", "csrf": token})
    assert reader.status_code == 200
    # Bad input beside the field; a provider key is not made here.
    for form, field in (({"name": "", "scope": "read"}, "key_name"),
                        ({"name": "x" * 101, "scope": "read"}, "key_name"),
                        ({"name": "Нов\x07ключ", "scope": "read"}, "key_name"),
                        ({"name": "Всичко", "scope": "everything"}, "scope"),
                        ({"name": "Всичко", "scope": "provider"}, "scope")):  # fmt: skip
        bad = client.post("/admin/keys", data={**form, "csrf": token})
        assert bad.status_code == 422 and f'id="{field}-error"' in bad.text, form
    assert len(keys(engine)) == 2
    # The only admin key cannot be revoked; the read key can.
    last = client.post(f"/admin/keys/{first.id}/revoke", data={"csrf": token})
    assert last.status_code == 409 and "last administration key" in last.text
    assert keys(engine)[0].revoked_at is None
    second = keys(engine)[1]
    gone = client.post(f"/admin/keys/{second.id}/revoke", data={"csrf": token},
                       follow_redirects=False)  # fmt: skip
    assert gone.status_code == 303 and keys(engine)[1].revoked_at is not None
    # Another account's key is not found, and stays live.
    client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    with Session(engine) as session:
        bank = session.exec(select(Account).where(Account.slug == "bank-b")).one()
        theirs = ApiKey(account_id=bank.id, name="bank", scope="read", key_hash="0" * 64,
                        prefix="rmd_bank")  # fmt: skip
        session.add(theirs)
        session.commit()
        their_id = theirs.id
    assert client.post(f"/admin/keys/{their_id}/revoke", data={"csrf": token}).status_code == 404
    with Session(engine) as session:
        assert session.get_one(ApiKey, their_id).revoked_at is None


def test_sender_ids_are_shown_to_admins_and_set_by_the_provider(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    client.patch("/api/v1/accounts/default", json={"sender_ids": ["CLINIC"]}, headers=provider)
    token = as_admin(client, engine)
    page = client.get("/admin")
    assert re.search(r'<dl id="senders">.*?CLINIC', page.text, re.S)
    assert 'action="/admin/senders"' not in page.text
    refused = client.post("/admin/senders", data={"sender_ids": "HACKED", "csrf": token})
    assert refused.status_code == 403
    # A provider administrator, acting in the account, sets them.
    add_user(engine, "root@provider.bg", role=None, account=None)
    client.cookies.clear()
    sign_in(client, "root@provider.bg")
    page = client.get("/admin")
    assert page.status_code == 200 and 'action="/admin/senders"' in page.text
    token = csrf(page.text)
    # Acting in the account, the users they make are the account's.
    made = client.post("/admin/users", data={"email": "nurse@clinic.bg", "password": NEW_PASSWORD,
                                             "role": "viewer", "csrf": token})  # fmt: skip
    assert (
        made.status_code == 200 and found(engine, "nurse@clinic.bg").account_id == DEFAULT_ACCOUNT
    )
    assert "root@provider.bg" not in made.text  # above the account, never listed in it
    saved = client.post(
        "/admin/senders",
        data={"sender_ids": "CLINIC\nSofiaMed", "default_sender_id": "SofiaMed", "csrf": token},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    with Session(engine) as session:
        account = session.get_one(Account, DEFAULT_ACCOUNT)
        assert account.sender_ids == ["CLINIC", "SofiaMed"]
        assert account.default_sender_id == "SofiaMed"
    for form, field in (({"sender_ids": "Твърде дълго име"}, "sender_ids"),
                        ({"sender_ids": "CLINIC", "default_sender_id": "OTHER"},
                         "default_sender_id")):  # fmt: skip
        bad = client.post("/admin/senders", data={**form, "csrf": token})
        assert bad.status_code == 422 and f'id="{field}-error"' in bad.text, form
    with Session(engine) as session:
        assert session.get_one(Account, DEFAULT_ACCOUNT).sender_ids == ["CLINIC", "SofiaMed"]
