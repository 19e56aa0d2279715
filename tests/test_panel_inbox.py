"""The inbox: messages received, newest first and paged, with what each did and the contact it
matched; and the contacts who opted out, for the account alone."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders import inbound
from reminders.db import utcnow
from reminders.models import InboundMessage
from reminders.pending_jobs import commit_and_schedule
from reminders.settings import Settings
from tests.conftest import DEFAULT_ACCOUNT
from tests.test_panel import add_user, sign_in


def receive(engine: Engine, settings: Settings, phone: str, text: str) -> None:
    with Session(engine) as session:
        inbound.receive(
            session, None, provider="console", from_phone=phone, text=text, settings=settings
        )
        commit_and_schedule(session)


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="inbound-\d+">(.*?)</tr>', html, re.S)


def numbers(html: str) -> list[str]:
    return [n for row in rows(html) for n in re.findall(r"съобщение (\d+)", row)]


def test_messages_show_what_they_did_and_whom_they_matched(
    client: TestClient, engine: Engine, settings: Settings, writer: dict[str, str]
) -> None:
    made = client.post(
        "/api/v1/contacts", json={"name": "Мария Иванова", "phone": "+359888111222"},
        headers=writer,
    )  # fmt: skip
    assert made.status_code == 201
    receive(engine, settings, "+359888111222", "СТОП")
    receive(engine, settings, "+359888333444", "Здравейте, кога е часът?")
    add_user(engine, "ana@clinic.bg", role="viewer")
    sign_in(client, "ana@clinic.bg")
    page = client.get("/inbox", headers={"Accept-Language": "bg"})
    assert page.status_code == 200
    newest, oldest = rows(page.text)
    assert "Здравейте, кога е часът?" in newest and "Няма контакт" in newest
    assert 'data-action=""' in newest
    assert "СТОП" in oldest and "Мария Иванова" in oldest and 'data-action="opt_out"' in oldest
    assert "Отказал се" in oldest
    opted = re.search(r'id="opted-out-title">(.*?)</section>', page.text, re.S)
    assert opted is not None and "Мария Иванова" in opted.group(1)
    # START brings her back: she leaves the opted-out list, the message says what it did.
    receive(engine, settings, "+359888111222", "START")
    again = client.get("/inbox")
    assert 'data-action="opt_in"' in rows(again.text)[0] and "Opted back in" in again.text
    opted = re.search(r'id="opted-out-title">(.*?)</section>', again.text, re.S)
    assert opted is not None and "Мария Иванова" not in opted.group(1)
    assert "Nobody has opted out." in opted.group(1)


def test_the_inbox_pages_newest_first_and_shows_the_account_alone(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    other = client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider).json()
    start = utcnow() - timedelta(days=1)
    with Session(engine) as session:
        for n in range(55):
            session.add(InboundMessage(account_id=DEFAULT_ACCOUNT, from_phone="+359888000001",
                                       text=f"съобщение {n}", provider="console",
                                       received_at=start + timedelta(minutes=n)))  # fmt: skip
        theirs = int(other["id"])
        session.add(InboundMessage(account_id=theirs, from_phone="+359888000002", text="чуждо",
                                   provider="console", received_at=utcnow()))  # fmt: skip
        session.commit()
    add_user(engine, "ana@clinic.bg", role="viewer")
    sign_in(client, "ana@clinic.bg")
    first = client.get("/inbox")
    shown = numbers(first.text)
    assert shown == [str(n) for n in range(54, 4, -1)]
    assert "чуждо" not in first.text
    older = re.search(r'href="(/inbox\?before=\d+)" rel="next"', first.text)
    assert older is not None
    second = client.get(older.group(1))
    shown = numbers(second.text)
    assert shown == ["4", "3", "2", "1", "0"]
    assert 'rel="next"' not in second.text and 'href="/inbox" rel="first"' in second.text
    assert 'rel="first"' not in first.text
    assert client.get("/inbox?before=abc").status_code == 422


def test_answers_show_what_they_said_and_unclear_ones_wait_to_be_handled(
    client: TestClient, engine: Engine, settings: Settings, writer: dict[str, str]
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    body = {"title": "Д-р Петрова", "start": start, "recipients": {"phones": ["0888 720 001"]}}
    event = client.post("/api/v1/events", json=body, headers=writer).json()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE notices SET status = 'sent', sent_at = :at WHERE anchor_id = :id"),
            {"at": datetime.now(UTC).replace(tzinfo=None), "id": event["id"]},
        )
    receive(engine, settings, "+359888720001", "Може ли в петък?")
    receive(engine, settings, "+359888720001", "ДА")
    add_user(engine, "ana@clinic.bg", role="viewer")
    add_user(engine, "ivo@clinic.bg", role="operator")
    sign_in(client, "ana@clinic.bg")
    page = client.get("/inbox", headers={"Accept-Language": "bg"}).text
    confirmed, unclear = rows(page)
    assert 'data-action="confirmed"' in confirmed and "Потвърди" in confirmed
    assert 'data-action="unclear"' in unclear and "Неясен отговор" in unclear
    [waiting] = re.findall(r'<tr id="reply-(\d+)">(.*?)</tr>', page, re.S)
    assert "Може ли в петък?" in waiting[1] and "Д-р Петрова" in waiting[1]
    assert "Отбележи като обработен" not in page  # a viewer reads, an operator handles
    forbidden = client.post(f"/inbox/replies/{waiting[0]}/handled", headers={"X-CSRF-Token": "x"})
    assert forbidden.status_code in (403, 400)

    sign_in(client, "ivo@clinic.bg")
    page = client.get("/inbox", headers={"Accept-Language": "bg"}).text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None and "Отбележи като обработен" in page
    done = client.post(
        f"/inbox/replies/{waiting[0]}/handled",
        data={"csrf": token.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = client.get("/inbox", headers={"Accept-Language": "bg"}).text
    assert 'id="reply-' not in page and "Няма чакащи отговори." in page
    assert (
        client.post("/inbox/replies/99999/handled", data={"csrf": token.group(1)}).status_code
        == 404
    )
