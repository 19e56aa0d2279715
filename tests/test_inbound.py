"""Inbound SMS through Twilio's signed webhook: STOP opts out, START opts back in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.sender.twilio import signature
from reminders.settings import Settings, load_settings

TOKEN, PUBLIC = "secret-token", "https://sms.example.bg"
Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        twilio_account_sid="AC1",
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
        public_url=PUBLIC,
    )


def inbound(
    client: TestClient,
    body: str,
    sender: str = "+359888600001",
    sign: bool = True,
    sid: str | None = None,
) -> int:
    sid = sid or f"SM{uuid.uuid4().hex}"
    params = {"From": sender, "To": "+15005550006", "Body": body, "MessageSid": sid}
    path = "/webhooks/twilio/inbound"
    header = signature(TOKEN, PUBLIC + path, params) if sign else "nope"
    response = client.post(path, data=params, headers={"X-Twilio-Signature": header})
    if response.status_code == 200:
        assert response.text == "<Response/>"
    return response.status_code


def test_stop_opts_out_and_suppresses_what_was_pending(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    contact = client.post(
        "/api/v1/contacts", json={"name": "Иван", "phone": "0888 600 001"}, headers=writer
    ).json()
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    message = client.post(
        "/api/v1/messages",
        json={"to": {"contacts": [contact["id"]]}, "text": "x", "send_at": later},
        headers=writer,
    ).json()
    notice_id = message["notices"][0]["id"]

    assert inbound(client, "stop", sign=False) == 403
    assert inbound(client, "Стоп!") == 200
    assert client.get(f"/api/v1/contacts/{contact['id']}", headers=writer).json()["opted_out"]
    notice = client.get(f"/api/v1/notices/{notice_id}", headers=writer).json()
    assert notice["status"] == "suppressed"
    assert notice["status_reason"] == "the recipient opted out by SMS"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == 0

    assert inbound(client, "START") == 200
    assert not client.get(f"/api/v1/contacts/{contact['id']}", headers=writer).json()["opted_out"]
    assert inbound(client, "Благодаря, ще дойда") == 200
    listed = client.get("/api/v1/inbound", headers=writer).json()["items"]
    assert [(m["text"], m["action"]) for m in listed] == [
        ("Стоп!", "opt_out"),
        ("START", "opt_in"),
        ("Благодаря, ще дойда", None),
    ]
    assert {m["contact_id"] for m in listed} == {contact["id"]}


def test_a_stranger_who_says_stop_stays_out(client: TestClient, writer: Headers) -> None:
    assert inbound(client, "ОТКАЗ", sender="+359888600002") == 200
    sent = client.post(
        "/api/v1/messages", json={"to": {"phones": ["0888 600 002"]}, "text": "x"}, headers=writer
    ).json()
    assert sent["notices"][0]["status"] == "suppressed"


def test_inbound_is_refused_when_twilio_is_not_configured(
    database_url: str, engine: Engine
) -> None:
    from reminders.process import build

    bare = build(load_settings(database_url=database_url), engine, run_scheduler=False)
    with TestClient(bare.app) as plain:
        response = plain.post("/webhooks/twilio/inbound", data={"Body": "STOP"})
    assert response.status_code == 404


def test_a_retried_message_is_kept_and_acted_on_once(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    """Twilio (like Kannel) sends a message again when our answer was lost: same MessageSid."""
    assert inbound(client, "STOP", sid="SMretry1") == 200
    assert inbound(client, "START", sid="SMretry2") == 200
    assert inbound(client, "STOP", sid="SMretry1") == 200  # the late copy of the first one
    listed = client.get("/api/v1/inbound", headers=writer).json()["items"]
    assert [m["text"] for m in listed] == ["STOP", "START"]
    contact = client.get("/api/v1/contacts?q=600001", headers=writer).json()["items"][0]
    assert contact["opted_out"] is False  # the copy did not undo the START that followed
