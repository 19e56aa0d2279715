"""The in-house gateway's signed callbacks: delivery reports and inbound SMS."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from reminders.models import Notice, NoticeStatus
from reminders.sender.http import sign
from reminders.settings import Settings, load_settings
from tests.conftest import account_session, wait_for
from tests.http_gateway import SECRET, Gateway

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str, gateway: Gateway) -> Settings:
    return load_settings(
        database_url=database_url,
        sender="http",
        http_sender_url=gateway.url,
        http_sender_secret=SECRET,
        quiet_hours="off",
    )


def callback(
    client: TestClient,
    path: str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    stamp: int | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    timestamp = str(int(time.time()) if stamp is None else stamp)
    headers = {
        "Content-Type": "application/json",
        "X-Reminders-Timestamp": timestamp,
        "X-Reminders-Signature": sign(secret, timestamp, body),
    }
    return client.post(f"/webhooks/http/{path}", content=body, headers=headers)


def sent_notice(client: TestClient, writer: Headers, gateway: Gateway, phone: str) -> int:
    message = client.post(
        "/api/v1/messages", json={"to": {"phones": [phone]}, "text": "Hi"}, headers=writer
    ).json()
    notice_id = int(message["notices"][0]["id"])

    def status() -> str:
        return str(client.get(f"/api/v1/notices/{notice_id}", headers=writer).json()["status"])

    wait_for(lambda: status() == "sent", what="the gateway to take the message")
    return notice_id


def test_reports_move_the_notice_forward_once(
    client: TestClient, writer: Headers, gateway: Gateway
) -> None:
    gateway.answer = (202, b'{"id": "gw-77"}')
    notice_id = sent_notice(client, writer, gateway, "0888 830 001")
    assert gateway.received[0]["id"] == f"notice-{notice_id}"
    ours = f"notice-{notice_id}"

    delivered = callback(client, "status", {"id": ours, "status": "delivered"})
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["result"] == "applied"
    # The same report again, and a late "sent", change nothing.
    assert callback(client, "status", {"id": ours, "status": "delivered"}).json()["result"] == (
        "ignored"
    )
    assert callback(client, "status", {"id": ours, "status": "sent"}).json()["result"] == "ignored"
    notice = client.get(f"/api/v1/notices/{notice_id}", headers=writer).json()
    assert notice["status"] == "delivered"
    [attempt] = notice["attempts"]
    assert (attempt["provider"], attempt["provider_message_id"]) == ("http", "gw-77")
    assert attempt["delivered_at"] is not None


def test_an_undelivered_report_keeps_the_gateways_words(
    client: TestClient, writer: Headers, gateway: Gateway
) -> None:
    notice_id = sent_notice(client, writer, gateway, "0888 830 002")
    report = {
        "id": f"notice-{notice_id}",
        "status": "undelivered",
        "error_code": "EXPIRED",
        "error": "the handset was off for 48 h",
    }
    assert callback(client, "status", report).json()["result"] == "applied"
    notice = client.get(f"/api/v1/notices/{notice_id}", headers=writer).json()
    assert (notice["status"], notice["status_reason"]) == (
        "undelivered",
        "the handset was off for 48 h",
    )
    assert notice["attempts"][0]["error_code"] == "EXPIRED"


def test_a_report_before_the_send_is_recorded_asks_the_gateway_to_retry(
    client: TestClient, writer: Headers, gateway: Gateway, engine: Engine
) -> None:
    notice_id = sent_notice(client, writer, gateway, "0888 830 004")
    with engine.begin() as conn:  # claimed, posted, the attempt not yet written
        conn.execute(
            update(Notice).where(col(Notice.id) == notice_id).values(status=NoticeStatus.sending)
        )
    report = {"id": f"notice-{notice_id}", "status": "delivered"}
    answer = callback(client, "status", report)
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"] == "the notice is still being sent; try again"
    with account_session(engine) as session:
        notice = session.get(Notice, notice_id)
        assert notice is not None and notice.status == NoticeStatus.sending


def test_unsigned_stale_or_unknown_callbacks_are_refused(
    client: TestClient, writer: Headers
) -> None:
    report = {"id": "notice-1", "status": "delivered"}
    assert callback(client, "status", report, secret="wrong").status_code == 403
    stale = callback(client, "status", report, stamp=int(time.time()) - 3600)
    assert stale.status_code == 403
    assert "5 minutes" in stale.json()["detail"]
    assert callback(client, "status", report).json()["result"] == "unknown"  # no such notice


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"id": "notice-1", "status": "lost"}, "status"),
        ({"status": "delivered"}, "id"),
        ({"id": "notice-1", "status": "sent", "extra": 1}, "extra"),
        (b"{not json", "body"),
    ],
)
def test_bad_reports_are_a_422_naming_the_field(
    client: TestClient, payload: dict[str, Any] | bytes, field: str
) -> None:
    response = callback(client, "status", payload)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


def test_an_id_we_never_sent_is_a_422(client: TestClient) -> None:
    response = callback(client, "status", {"id": "gw-77", "status": "delivered"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("id:")


def test_inbound_stop_and_start(client: TestClient, writer: Headers) -> None:
    contact = client.post(
        "/api/v1/contacts", json={"name": "Иван", "phone": "0888 830 010"}, headers=writer
    ).json()
    stop = {"id": "mo-1", "from": "+359888830010", "to": "1234", "text": "СТОП"}
    answer = callback(client, "inbound", stop)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"result": "kept", "action": "opt_out"}
    assert callback(client, "inbound", stop).json()["action"] == "opt_out"  # a retry: kept once
    assert client.get(f"/api/v1/contacts/{contact['id']}", headers=writer).json()["opted_out"]
    start = {"id": "mo-2", "from": "+359888830010", "text": "START"}
    assert callback(client, "inbound", start).json()["action"] == "opt_in"
    listed = client.get("/api/v1/inbound", headers=writer).json()["items"]
    assert [(m["text"], m["provider"]) for m in listed] == [("СТОП", "http"), ("START", "http")]
    assert callback(client, "inbound", {"from": "", "text": "x"}).status_code == 422


def test_not_configured_is_a_404(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(
        client.app.state.runtime,  # type: ignore[attr-defined]
        "settings",
        settings.model_copy(update={"http_sender_secret": None}),
    )
    response = callback(client, "status", {"id": "notice-1", "status": "sent"})
    assert response.status_code == 404
