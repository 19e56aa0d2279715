"""Odd values: ids past the database's integers and NUL, which PostgreSQL cannot store.

The API refuses them (422, naming the field); a gateway's callback is kept, NUL dropped from
its numbers and ids and marked in its text, so that no customer's SMS or delivery report is
lost for a character. On SQLite and on PostgreSQL (where each of these was a 500).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.messages import create_message
from reminders.models import Attempt, Notice, NoticeStatus
from reminders.pending_jobs import commit_and_schedule
from reminders.process import Process
from reminders.schemas.common import MAX_ID
from reminders.schemas.messages import MessageCreate
from reminders.sender.http import sign
from reminders.sender.kannel_dlr import message_id
from reminders.sender.kannel_dlr import signature as signature_of_dlr
from reminders.sender.twilio import signature
from reminders.settings import Settings, load_settings
from reminders.webhook_keys import inbound_token
from tests.conftest import account_session

SECRET, TOKEN, PUBLIC, HTTP_SECRET = "kannel-secret", "twilio-token", "https://sms.example", "hs"
Headers = dict[str, str]
PAST_INT = [MAX_ID + 1, 2**63, 10**30]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        quiet_hours="off",
        webhook_secret=SECRET,
        twilio_auth_token=TOKEN,
        public_url=PUBLIC,
        http_sender_secret=HTTP_SECRET,
    )


def refused(
    response: Any, field: str, words: str = "must not contain control characters such as NUL"
) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["field"] == field, body
    assert words in body["detail"], body


def test_nul_in_a_path_a_query_or_a_body_is_a_422_naming_it(
    client: TestClient, writer: Headers
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        refused(client.request(method, "/api/v1/policies/a%00b", headers=writer, json={}), "path")
    refused(client.get("/api/v1/contacts?limit=5&q=a%00b", headers=writer), "q")
    refused(client.get("/api/v1/events?external_id=x%00", headers=writer), "external_id")

    def post(body: dict[str, Any]) -> Any:
        return client.post("/api/v1/contacts", json=body, headers=writer)

    contact = {"name": "Иван", "phone": "0888123456"}
    refused(post({**contact, "name": "Ив\x00ан"}), "name")
    doctor = {"doctor": ["д-р", "Пе\x00трова"]}
    refused(post({**contact, "attributes": doctor}), "attributes.doctor.1")
    refused(post({**contact, "attributes": {"a\x00": 1}}), "attributes")
    step = {"offset": "-P1D", "template": "Утре\x00"}
    refused(
        client.post("/api/v1/policies", json={"name": "p", "steps": [step]}, headers=writer),
        "steps.0.template",
    )
    assert client.get("/api/v1/contacts", headers=writer).json()["items"] == []
    # A backslash before "u0000" is text, not NUL.
    kept = post({**contact, "attributes": {"path": "C:\\u0000"}})
    assert kept.status_code == 201, kept.text
    assert kept.json()["attributes"] == {"path": "C:\\u0000"}


def test_ids_past_the_database_integers_are_a_422(client: TestClient, writer: Headers) -> None:
    for big in PAST_INT:
        for path in (
            f"/api/v1/contacts/{big}",
            f"/api/v1/notices?contact_id={big}",
            f"/api/v1/bills?contact_id={big}",
        ):
            response = client.get(path, headers=writer)
            assert response.status_code == 422, (path, response.text)
        message = {"to": {"contacts": [big]}, "text": "x"}
        response = client.post("/api/v1/messages", json=message, headers=writer)
        refused(response, "to.contacts.0", "less than or equal to 2147483647")


def test_a_kannel_report_for_an_id_past_the_integers_is_a_422(client: TestClient) -> None:
    for big in PAST_INT:
        sig = signature_of_dlr(SECRET, 1, "a1")
        response = client.get(f"/webhooks/kannel/dlr?notice={big}&attempt=a1&sig={sig}&type=1")
        refused(response, "notice", "less than or equal to 2147483647")


def test_other_gateways_reports_for_ids_past_the_integers_are_not_ours(
    client: TestClient,
) -> None:
    for big in PAST_INT:
        path = f"/webhooks/twilio/status?notice={big}"
        params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
        header = {"X-Twilio-Signature": signature(TOKEN, PUBLIC + path, params)}
        assert client.post(path, data=params, headers=header).status_code == 204

        body = json.dumps({"id": f"notice-{big}", "status": "delivered"}).encode()
        stamp = str(int(time.time()))
        signed = {
            "X-Reminders-Timestamp": stamp,
            "X-Reminders-Signature": sign(HTTP_SECRET, stamp, body),
        }
        response = client.post("/webhooks/http/status", content=body, headers=signed)
        assert response.status_code == 422 and "not an id we sent" in response.json()["detail"]


def kannel_inbound(client: TestClient, query: str) -> Any:
    base = f"/webhooks/kannel/inbound?token={inbound_token(SECRET)}&coding=0&charset=UTF-8&to=1234&"
    return client.get(base + query)


def test_a_kannel_sms_with_nul_is_kept(client: TestClient, reader: Headers) -> None:
    for query in (
        "from=%2B359888123456&text=%D0%94%D0%B0%00%D0%94%D0%B0&id=k1",
        "from=%2B359888%00123457&text=STOP&id=k%002",
    ):
        response = kannel_inbound(client, query)
        assert (response.status_code, response.text) == (200, ""), response.text
    # Kannel sending the same message again (its id, NUL and all) keeps it once.
    assert kannel_inbound(client, "from=%2B359888%00123457&text=STOP&id=k%002").status_code == 200
    items = client.get("/api/v1/inbound", headers=reader).json()["items"]
    got = [(i["from_phone"], i["text"], i["provider_message_id"], i["action"]) for i in items]
    assert got == [
        ("+359888123456", "Да\ufffdДа", "k1", None),
        ("+359888123457", "STOP", "k2", "opt_out"),
    ]


def test_a_kannel_report_with_nul_is_applied(
    client: TestClient, engine: Engine, process: Process
) -> None:
    data = MessageCreate.model_validate(
        {
            "to": {"phones": ["0888123456"]},
            "text": "x",
            "send_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }
    )
    with account_session(engine, expire_on_commit=False) as session:
        _, [notice] = create_message(session, None, data, region="BG")
        commit_and_schedule(session)
        assert notice.id is not None
        notice.status = NoticeStatus.sent
        session.add(notice)
        session.add(
            Attempt(
                notice_id=notice.id,
                provider="kannel",
                provider_message_id=message_id(notice.id, "a1"),
                status=NoticeStatus.sent,
            )
        )
        session.commit()
    sig = signature_of_dlr(SECRET, notice.id, "a1")
    query = f"notice={notice.id}&attempt=a1&sig={sig}&type=16&reply=NACK%00%2F0x0b&fid=ab%00c"
    response = client.get(f"/webhooks/kannel/dlr?{query}")
    assert (response.status_code, response.text) == (200, "applied")
    with account_session(engine) as session:
        stored = session.get(Notice, notice.id)
        assert stored is not None and stored.status == NoticeStatus.failed
        [attempt] = session.exec(text("SELECT error, gateway_reference FROM attempts")).all()  # type: ignore[call-overload]
    assert tuple(attempt) == ("NACK\ufffd/0x0b", "abc")


def test_a_value_no_check_caught_is_still_a_4xx(
    process: Process, client: TestClient, engine: Engine, reader: Headers
) -> None:
    """The last line: an integer past a column's range that reaches the database."""

    def lookup() -> None:
        with account_session(engine) as session:
            session.get(Notice, 2**40)

    process.app.add_api_route("/api/v1/unchecked", lookup)
    response = client.get("/api/v1/unchecked", headers=reader)
    if engine.dialect.name == "postgresql":
        assert response.status_code == 422, response.text
        assert "outside what the database can store" in response.json()["detail"]
    else:  # SQLite's integers are 64-bit: nothing to refuse
        assert response.status_code == 200, response.text
