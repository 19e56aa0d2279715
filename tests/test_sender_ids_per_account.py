"""An account sends from its own sender IDs alone; its default applies when none is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.accounts import crud
from reminders.accounts.senders import sender_for
from reminders.messages import create_message
from reminders.models import Notice
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.firing import fire
from reminders.schemas.accounts import AccountCreate, AccountUpdate
from reminders.schemas.messages import MessageCreate
from reminders.sender.outbox import OutboxSender
from reminders.settings import Settings
from tests.conftest import account_session, fall_due, make_key

Headers = dict[str, str]
LATER = (datetime.now(UTC) + timedelta(days=3)).isoformat()


def new_account(engine: Engine, slug: str, **fields: Any) -> int:
    with Session(engine) as session:
        account = crud.create_account(session, AccountCreate(slug=slug, **fields))
        session.commit()
        assert account.id is not None
        return account.id


def change_account(engine: Engine, slug: str, **fields: Any) -> None:
    with Session(engine) as session:
        crud.update_account(session, slug, AccountUpdate(**fields))
        session.commit()


@pytest.fixture
def clinic(engine: Engine) -> int:
    """An account that may send as ClinicA (its default) or Clinic."""
    return new_account(
        engine, "clinic-a", sender_ids=["ClinicA", "Clinic"], default_sender_id="ClinicA"
    )


def message(engine: Engine, account_id: int, sender_id: str | None = None) -> int:
    """A message of one SMS for now, in ``account_id``; its notice's id."""
    data = MessageCreate.model_validate(
        {"to": {"phones": ["0888 500 001"]}, "text": "Hello", "sender_id": sender_id}
    )
    with account_session(engine, account_id, expire_on_commit=False) as session:
        _, [notice] = create_message(session, None, data, region="BG")
        commit_and_schedule(session)
    assert notice.id is not None
    return notice.id


def sent_from(engine: Engine, notice_id: int) -> list[str | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT sender_id FROM outbox WHERE notice_id = :n"), {"n": notice_id}
        )
        return [row[0] for row in rows]


def test_a_sender_id_the_account_may_not_use_is_refused_naming_it(
    client: TestClient, engine: Engine, clinic: int
) -> None:
    key = make_key(engine, "admin", "clinic-a")
    body = {"to": {"phones": ["0888 500 002"]}, "text": "Hi", "send_at": LATER}

    refused = client.post("/api/v1/messages", json={**body, "sender_id": "BankB"}, headers=key)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "sender_id"
    assert "'BankB'" in error["message"] and "ClinicA, Clinic" in error["message"]

    allowed = client.post("/api/v1/messages", json={**body, "sender_id": "Clinic"}, headers=key)
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["notices"][0]["sender_id"] == "Clinic"

    step = {"offset": "-PT1H", "template": "Hi"}
    policy = {"name": "short", "steps": [step], "sender_id": "BankB"}
    made = client.post("/api/v1/policies", json=policy, headers=key)
    assert made.status_code == 422 and made.json()["errors"][0]["field"] == "sender_id"
    made = client.post("/api/v1/policies", json={**policy, "sender_id": "Clinic"}, headers=key)
    assert made.status_code == 201, made.text

    patched = client.patch("/api/v1/policies/short", json={"sender_id": "BankB"}, headers=key)
    assert patched.status_code == 422 and patched.json()["errors"][0]["field"] == "sender_id"
    assert client.get("/api/v1/policies/short", headers=key).json()["sender_id"] == "Clinic"
    patched = client.patch("/api/v1/policies/short", json={"sender_id": None}, headers=key)
    assert patched.status_code == 200, patched.text


def test_an_account_without_sender_ids_may_use_any(
    client: TestClient, writer: Headers, clinic: int
) -> None:
    """The default account has none: today's behaviour, whatever another account may use."""
    body = {"to": {"phones": ["0888 500 003"]}, "text": "Hi", "send_at": LATER}
    made = client.post("/api/v1/messages", json={**body, "sender_id": "BankB"}, headers=writer)
    assert made.status_code == 201, made.text
    policy = {"name": "any", "steps": [{"offset": "-PT1H", "template": "x"}], "sender_id": "Zz9"}
    assert client.post("/api/v1/policies", json=policy, headers=writer).status_code == 201


def test_the_accounts_default_is_read_when_the_notice_fires(
    engine: Engine, settings: Settings, clinic: int
) -> None:
    service = settings.model_copy(update={"sender_id": "Service"})
    sender = OutboxSender(service, engine)
    plain, chosen = message(engine, clinic), message(engine, clinic, "Clinic")
    # A new default reaches notices planned before it: they name no sender ID of their own.
    later = message(engine, clinic)
    change_account(engine, "clinic-a", default_sender_id="Clinic")
    for notice_id in (plain, chosen, later):
        fall_due(engine, notice_id)
    assert fire(engine, sender, plain, settings=service) == "sent"
    assert fire(engine, sender, chosen, settings=service) == "sent"
    assert sent_from(engine, plain) == ["Clinic"]
    assert sent_from(engine, chosen) == ["Clinic"]

    change_account(engine, "clinic-a", default_sender_id="ClinicA")
    assert fire(engine, sender, later, settings=service) == "sent"
    assert sent_from(engine, later) == ["ClinicA"]


def test_the_service_default_applies_where_the_account_may_use_it(
    engine: Engine, settings: Settings
) -> None:
    service = settings.model_copy(update={"sender_id": "Service"})
    sender = OutboxSender(service, engine)
    bank = new_account(engine, "bank-b", sender_ids=["BankB", "Service"])
    shop = new_account(engine, "shop-c", sender_ids=["ShopC", "Shop"])
    free = new_account(engine, "free-d")
    ids = {name: message(engine, account) for name, account in [("bank", bank), ("shop", shop)]}
    ids["free"] = message(engine, free)
    ids["default"] = message(engine, 1)
    for notice_id in ids.values():
        fall_due(engine, notice_id)
        assert fire(engine, sender, notice_id, settings=service) == "sent"
    assert {name: sent_from(engine, n) for name, n in ids.items()} == {
        "bank": ["Service"],  # the service's, which it may use
        "shop": ["ShopC"],  # it may not use the service's: the first of its own
        "free": ["Service"],
        "default": ["Service"],
    }


def test_a_notice_whose_sender_id_the_account_dropped_fails_unsent(
    engine: Engine, settings: Settings, clinic: int
) -> None:
    notice_id = message(engine, clinic, "Clinic")
    change_account(engine, "clinic-a", sender_ids=["ClinicA"])
    fall_due(engine, notice_id)
    assert fire(engine, OutboxSender(settings, engine), notice_id, settings=settings) == "failed"
    assert sent_from(engine, notice_id) == []
    with Session(engine) as session:
        notice = session.get_one(Notice, notice_id)
        assert notice.status_reason is not None
        assert "'Clinic' is not one of the account's sender IDs: ClinicA" in notice.status_reason
        attempts = session.execute(
            text("SELECT count(*) FROM attempts WHERE notice_id = :n"), {"n": notice_id}
        ).scalar()
        assert attempts == 0


def test_a_policys_reminder_goes_out_from_the_accounts_default(
    client: TestClient, engine: Engine, settings: Settings, clinic: int
) -> None:
    key = make_key(engine, "write", "clinic-a")
    start = datetime.now(UTC) + timedelta(hours=3)
    event = client.post(
        "/api/v1/events",
        json={
            "title": "Преглед",
            "start": start.isoformat(),
            "recipients": {"phones": ["0888 500 009"]},
        },
        headers=key,
    )
    assert event.status_code == 201, event.text
    # The appointment policy's step two hours before (the day before at 18:00 is past).
    [due] = [n for n in event.json()["notices"] if n["status"] == "scheduled"]
    assert due["sender_id"] is None
    fall_due(engine, due["id"])
    assert fire(engine, OutboxSender(settings, engine), due["id"], settings=settings) == "sent"
    assert sent_from(engine, due["id"]) == ["ClinicA"]


@pytest.mark.parametrize(
    ("asked", "allowed", "default", "fallback", "expected"),
    [
        ("Mine", ["A", "B"], "A", "S", "Mine"),  # checked when written, not here
        (None, ["A", "B"], "B", "S", "B"),
        (None, ["A", "S"], None, "S", "S"),
        (None, ["A", "B"], None, "S", "A"),
        (None, ["A", "B"], None, None, "A"),
        (None, [], None, "S", "S"),
        (None, [], None, None, None),
        (None, [], "D", "S", "D"),
    ],
)
def test_which_sender_id_a_notice_goes_out_from(
    asked: str | None,
    allowed: list[str],
    default: str | None,
    fallback: str | None,
    expected: str | None,
) -> None:
    assert sender_for(asked, allowed=allowed, default=default, fallback=fallback) == expected
