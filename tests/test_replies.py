"""Answers to reminders: "1"/"ДА" confirms, "2"/"НЕ" cancels, anything else waits for a person.

Each inbound path is used (Twilio's signed callback, the in-house gateway's, and the API's
`POST /inbound`; Kannel's real handset link is in tests/test_kannel_inbound.py). A reminder
"went" when its notice is marked sent: sending itself is tested elsewhere, and the replies only
look at what was sent to the phone, when, and about which event.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook

from reminders.models import ReplyState
from reminders.reply_words import read_answer
from reminders.sender.twilio import signature
from reminders.settings import Settings, load_settings
from tests.conftest import wait_for
from tests.http_gateway import SECRET as HTTP_SECRET
from tests.test_http_callbacks import sign
from tests.webhook_receiver import Receiver

Headers = dict[str, str]
TOKEN, PUBLIC = "twilio-token", "http://127.0.0.1:9"
PHONE, STORED = "0888 710 001", "+359888710001"
WORDS = {"confirm": ["1", "ДА", "DA", "YES", "Y"], "cancel": ["2", "НЕ", "NE", "NO", "N"]}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        quiet_hours="off",
        twilio_account_sid="AC1",
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
        public_url=PUBLIC,
        http_sender_url="http://127.0.0.1:9/send",
        http_sender_secret=HTTP_SECRET,
        allow_private_webhooks=True,  # the receiver below runs on 127.0.0.1
    )


# How the words are read -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "state"),
    [
        ("1", ReplyState.confirmed),
        ("ДА", ReplyState.confirmed),
        ("да", ReplyState.confirmed),
        ("Da!", ReplyState.confirmed),
        ("  yes  ", ReplyState.confirmed),
        ("дa", ReplyState.confirmed),  # Cyrillic д, Latin a
        ("Да, ще дойда", ReplyState.confirmed),
        ("1.", ReplyState.confirmed),
        ("2", ReplyState.cancelled),
        ("НЕ", ReplyState.cancelled),
        ("НE", ReplyState.cancelled),  # Cyrillic Н, Latin E
        ("не мога", ReplyState.cancelled),
        ("No, sorry", ReplyState.cancelled),
        ("Може би", ReplyState.unclear),
        ("12", ReplyState.unclear),
        ("?!", ReplyState.unclear),
        ("", ReplyState.unclear),
    ],
)
def test_answers_are_read_as_people_type_them(said: str, state: ReplyState) -> None:
    assert read_answer(said, WORDS) == state


# Helpers ----------------------------------------------------------------------------------


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def appointment(
    client: TestClient,
    headers: Headers,
    phones: list[str],
    *,
    days: float = 3,
    title: str = "Д-р Петрова",
) -> int:
    """An appointment ``days`` from now for ``phones``, its day-before reminder already gone."""
    start = (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()
    body = {"title": title, "start": start, "recipients": {"phones": phones}}
    event = ok(client.post("/api/v1/events", json=body, headers=headers), 201)
    return int(event["id"])


def went(engine: Engine, event_id: int, *, ago: timedelta = timedelta(minutes=5)) -> None:
    """The event's day-before reminders were handed to the gateway ``ago``."""
    with engine.begin() as conn:
        changed = conn.execute(
            text(
                "UPDATE notices SET status = 'sent', sent_at = :at"
                " WHERE anchor_id = :event AND step = 0"
            ),
            {"at": (datetime.now(UTC) - ago).replace(tzinfo=None), "event": event_id},
        ).rowcount
    assert changed


def event_of(client: TestClient, headers: Headers, event_id: int) -> Any:
    return ok(client.get(f"/api/v1/events/{event_id}", headers=headers))


def notices_of(client: TestClient, headers: Headers, event_id: int, phone: str = STORED) -> Any:
    return [n for n in event_of(client, headers, event_id)["notices"] if n["phone"] == phone]


def hand_in(client: TestClient, headers: Headers, said: str, **fields: Any) -> Any:
    body = {"from": PHONE, "text": said, **fields}
    return ok(client.post("/api/v1/inbound", json=body, headers=headers), 201)


def twilio_in(client: TestClient, said: str, sid: str | None = None) -> None:
    params = {"From": STORED, "To": "+15005550006", "Body": said}
    params["MessageSid"] = sid or f"SM{uuid.uuid4().hex}"
    path = "/webhooks/twilio/inbound"
    headers = {"X-Twilio-Signature": signature(TOKEN, PUBLIC + path, params)}
    assert client.post(path, data=params, headers=headers).status_code == 200


def gateway_in(client: TestClient, said: str) -> None:
    body = json.dumps({"id": uuid.uuid4().hex, "from": STORED, "text": said}).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Reminders-Timestamp": stamp,
        "X-Reminders-Signature": sign(HTTP_SECRET, stamp, body),
    }
    response = client.post("/webhooks/http/inbound", content=body, headers=headers)
    assert response.status_code == 200, response.text


def replies(client: TestClient, headers: Headers, **query: Any) -> list[Any]:
    return list(ok(client.get("/api/v1/replies", params=query, headers=headers))["items"])


def outbox(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT "to", text FROM outbox ORDER BY id')).all()
    return [(to, said) for to, said in rows]


# Confirm, cancel, unclear --------------------------------------------------------------------


def test_a_confirmation_through_the_api_is_recorded_and_acknowledged(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    event_id = appointment(client, writer, [PHONE])
    went(engine, event_id)
    handed = hand_in(client, writer, "Да, ще дойда")
    assert handed["reply"] == "confirmed" and handed["provider"] == "api"

    [answer] = event_of(client, writer, event_id)["answers"]
    assert (answer["phone"], answer["answer"]) == (STORED, "confirmed")
    assert answer["answered_at"] is not None
    [reply] = replies(client, writer)
    assert (reply["state"], reply["handled"], reply["event_id"]) == ("confirmed", True, event_id)
    assert reply["inbound_id"] == handed["id"]
    # The acknowledgement goes at once, in the recipient's language, about their appointment.
    wait_for(lambda: outbox(engine), what="the acknowledgement to go")
    [(to, said)] = outbox(engine)
    assert to == STORED
    assert said.startswith("Благодарим! Д-р Петрова ") and said.endswith(" е потвърдено.")
    # Its later reminder still goes.
    later = [n for n in notices_of(client, writer, event_id) if n["kind"] == "event_reminder"]
    assert [n["status"] for n in later] == ["sent", "scheduled"]


def test_a_cancellation_by_twilio_cancels_that_recipients_reminders_alone(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    other = "0888 710 002"
    event_id = appointment(client, writer, [PHONE, other])
    went(engine, event_id)
    twilio_in(client, "НЕ")

    mine = notices_of(client, writer, event_id)
    reminders = [n for n in mine if n["kind"] == "event_reminder"]
    assert [n["status"] for n in reminders] == ["sent", "cancelled"]
    assert reminders[1]["status_reason"] == "the recipient cancelled by SMS"
    theirs = notices_of(client, writer, event_id, "+359888710002")
    assert [n["status"] for n in theirs] == ["sent", "scheduled"]
    [answer] = event_of(client, writer, event_id)["answers"]
    assert answer["answer"] == "cancelled"
    wait_for(lambda: outbox(engine), what="the acknowledgement to go")
    assert outbox(engine)[0][1].endswith("е отменено. Благодарим, че ни уведомихте.")

    # Moving the event re-plans it: the one who cancelled is reminded no more, the other is.
    later = (datetime.now(UTC) + timedelta(days=4)).replace(microsecond=0).isoformat()
    ok(client.patch(f"/api/v1/events/{event_id}", json={"start": later}, headers=writer))
    assert [
        n["status"] for n in notices_of(client, writer, event_id) if n["kind"] != "reply_ack"
    ] == [
        "sent",
        "cancelled",
    ]
    assert "scheduled" in [
        n["status"] for n in notices_of(client, writer, event_id, "+359888710002")
    ]


def test_confirming_after_cancelling_brings_the_reminders_back(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    event_id = appointment(client, writer, [PHONE])
    went(engine, event_id)
    assert hand_in(client, writer, "2")["reply"] == "cancelled"
    assert hand_in(client, writer, "1")["reply"] == "confirmed"
    reminders = [n for n in notices_of(client, writer, event_id) if n["kind"] == "event_reminder"]
    assert [n["status"] for n in reminders] == ["sent", "scheduled"]
    assert event_of(client, writer, event_id)["answers"][0]["answer"] == "confirmed"


def test_an_unclear_answer_through_the_gateway_waits_for_a_person(
    client: TestClient, writer: Headers, reader: Headers, engine: Engine
) -> None:
    event_id = appointment(client, writer, [PHONE])
    went(engine, event_id)
    gateway_in(client, "Може ли да я преместим за петък?")

    [waiting] = replies(client, reader, state="unclear", handled="false")
    assert (waiting["state"], waiting["handled"], waiting["handled_at"]) == ("unclear", False, None)
    assert waiting["text"] == "Може ли да я преместим за петък?"
    assert event_of(client, writer, event_id)["answers"] == []  # nothing decided
    assert [n["status"] for n in notices_of(client, writer, event_id)] == ["sent", "scheduled"]
    assert outbox(engine) == []  # no acknowledgement of what was not understood

    refused = client.patch(
        f"/api/v1/replies/{waiting['id']}", json={"handled": True}, headers=reader
    )
    assert refused.status_code == 403
    handled = ok(
        client.patch(f"/api/v1/replies/{waiting['id']}", json={"handled": True}, headers=writer)
    )
    assert handled["handled"] is True and handled["handled_at"] is not None
    assert replies(client, reader, state="unclear", handled="false") == []
    bad = client.patch(f"/api/v1/replies/{waiting['id']}", json={"handled": "soon"}, headers=writer)
    assert bad.status_code == 422 and "handled" in bad.text
    assert (
        client.get("/api/v1/replies", params={"state": "maybe"}, headers=reader).status_code == 422
    )
    assert client.get("/api/v1/replies/99999", headers=reader).status_code == 404


# Opt-out words and answers ------------------------------------------------------------------


def test_an_opt_out_word_acts_only_as_the_whole_message(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    event_id = appointment(client, writer, [PHONE])
    went(engine, event_id)
    said = hand_in(client, writer, "не")  # cancels the appointment, opts out of nothing
    assert (said["action"], said["reply"]) == (None, "cancelled")
    said = hand_in(client, writer, "stop the reminders, I moved it")  # a sentence: for a person
    assert (said["action"], said["reply"]) == (None, "unclear")
    said = hand_in(client, writer, "СТОП!")
    assert (said["action"], said["reply"]) == ("opt_out", None)
    assert [r["state"] for r in replies(client, writer)] == ["cancelled", "unclear"]


def test_answer_words_may_not_be_opt_out_keywords_or_both_answers(
    client: TestClient, writer: Headers
) -> None:
    def refused(replies_: Any, reply_ack: Any = None) -> str:
        body: dict[str, Any] = {"replies": replies_}
        if reply_ack is not None:
            body["reply_ack"] = reply_ack
        answer = client.patch("/api/v1/policies/appointment", json=body, headers=writer)
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["errors"]
        return str(error["field"])

    assert refused({"confirm": ["1", "Stop"], "cancel": ["2"]}) == "replies.confirm.1"
    assert refused({"confirm": ["DA"], "cancel": ["no", "да"]}) == "replies.cancel.1"
    assert refused({"confirm": [], "cancel": []}) == "replies"
    assert refused({"confirm": ["!!"]}) == "replies.confirm.0"
    assert refused(WORDS, {"confirm": "{{ nosuchname }}"}) == "reply_ack.confirm"
    assert refused({"confirm": ["x" * 41]}) == "replies.confirm.0"
    # Taken back: the policy asks for nothing, and an answer is just a message.
    off = client.patch(
        "/api/v1/policies/appointment", json={"replies": None, "reply_ack": None}, headers=writer
    )
    assert ok(off)["replies"] is None and off.json()["reply_ack"] is None


# Which reminder an answer is about ------------------------------------------------------------


def test_an_answer_after_the_event_started_answers_nothing(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    event_id = appointment(client, writer, [PHONE], days=2)
    went(engine, event_id)
    with engine.begin() as conn:  # it began ten minutes ago
        conn.execute(
            text("UPDATE anchors SET at = :at WHERE id = :id"),
            {
                "at": (datetime.now(UTC) - timedelta(minutes=10)).replace(tzinfo=None),
                "id": event_id,
            },
        )
    said = hand_in(client, writer, "1")
    assert said["reply"] is None and said["text"] == "1"  # kept, as any message
    assert replies(client, writer) == [] and event_of(client, writer, event_id)["answers"] == []


def test_with_two_appointments_the_answer_is_about_the_one_last_reminded_of(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    earlier = appointment(client, writer, [PHONE], days=2, title="Зъболекар")
    later = appointment(client, writer, [PHONE], days=3, title="Очен лекар")
    went(engine, later, ago=timedelta(hours=2))
    went(engine, earlier, ago=timedelta(minutes=3))  # reminded of last, though it comes first
    assert hand_in(client, writer, "2")["reply"] == "cancelled"
    assert event_of(client, writer, earlier)["answers"][0]["answer"] == "cancelled"
    assert event_of(client, writer, later)["answers"] == []


def test_an_answer_in_another_accounts_conversation_touches_only_that_account(
    client: TestClient, two: tuple[Headers, Headers], engine: Engine, provider: Headers
) -> None:
    clinic, bank = two
    ok(
        client.patch(
            "/api/v1/accounts/clinic-a",
            json={"inbound_numbers": ["+359888999111"]},
            headers=provider,
        )
    )
    clinic_event = appointment(client, clinic, [PHONE], days=2)
    bank_event = appointment(client, bank, [PHONE], days=2)
    went(engine, clinic_event, ago=timedelta(hours=1))
    went(engine, bank_event, ago=timedelta(minutes=1))  # the bank texted last
    # To the clinic's number: the clinic's appointment, though the bank texted last.
    said = hand_in(client, provider | {"Reminders-Account": "clinic-a"}, "1", to="+359888999111")
    assert said["reply"] == "confirmed"
    assert event_of(client, clinic, clinic_event)["answers"][0]["answer"] == "confirmed"
    assert event_of(client, bank, bank_event)["answers"] == []
    assert replies(client, bank) == []
    # Handed in with the bank's key: the bank's own conversation.
    assert hand_in(client, bank, "2")["reply"] == "cancelled"
    assert event_of(client, bank, bank_event)["answers"][0]["answer"] == "cancelled"
    assert event_of(client, clinic, clinic_event)["answers"][0]["answer"] == "confirmed"


# Duplicates ------------------------------------------------------------------------------


def test_one_message_handed_in_twice_is_acted_on_once(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    event_id = appointment(client, writer, [PHONE])
    went(engine, event_id)
    sid = f"SM{uuid.uuid4().hex}"
    twilio_in(client, "2", sid=sid)
    twilio_in(client, "2", sid=sid)  # Twilio's retry
    hand_in(client, writer, "2", id="crm-41")
    hand_in(client, writer, "2", id="crm-41")  # the customer's system's retry
    received = ok(client.get("/api/v1/inbound", headers=writer))["items"]
    # Both ways in are kept (once each); the answer is acted on once, acknowledged once.
    assert [(m["provider"], m["text"]) for m in received] == [("twilio", "2"), ("api", "2")]
    assert [r["state"] for r in replies(client, writer)] == ["cancelled"]
    wait_for(lambda: outbox(engine), what="the acknowledgement to go")
    time.sleep(0.3)  # room for a second one, were it sent
    assert len(outbox(engine)) == 1


def test_concurrent_identical_hand_ins_make_one_message_and_one_answer(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    event_id = appointment(client, writer, [PHONE])
    went(engine, event_id)
    received_at = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    body = {"from": PHONE, "text": "ДА", "received_at": received_at}
    answers: list[int] = []

    def post() -> None:
        answers.append(client.post("/api/v1/inbound", json=body, headers=writer).status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [201] * 6
    assert len(ok(client.get("/api/v1/inbound", headers=writer))["items"]) == 1
    assert [r["state"] for r in replies(client, writer)] == ["confirmed"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "1"}, "from"),
        ({"from": PHONE}, "text"),
        ({"from": PHONE, "text": "x" * 2001}, "text"),
        ({"from": PHONE, "text": "1", "received_at": "yesterday"}, "received_at"),
        ({"from": PHONE, "text": "1", "received_at": "2026-12-01T10:00:00"}, "received_at"),
        ({"from": PHONE, "text": "1", "colour": "red"}, "colour"),
        ({"from": "+359\x00888", "text": "1"}, "from"),
    ],
)
def test_a_bad_hand_in_names_its_field(
    client: TestClient, writer: Headers, reader: Headers, body: Any, field: str
) -> None:
    answer = client.post("/api/v1/inbound", json=body, headers=writer)
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    assert (
        client.post(
            "/api/v1/inbound", json={"from": PHONE, "text": "1"}, headers=reader
        ).status_code
        == 403
    )


def test_each_answer_reaches_the_customers_webhook_signed(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    event_id = appointment(client, writer, [PHONE])
    went(engine, event_id)
    with Receiver() as receiver:
        body = {
            "url": receiver.url,
            "events": ["reply.confirmed", "reply.cancelled", "reply.unclear"],
        }
        hook = ok(client.post("/api/v1/webhooks", json=body, headers=writer), 201)
        hand_in(client, writer, "1")
        hand_in(client, writer, "Може ли по-късно?")
        hand_in(client, writer, "НЕ")
        received = receiver.wait_for(3)
    documents = []
    for request in received:
        Webhook(hook["secret"]).verify(request.body, request.headers)
        documents.append(json.loads(request.body))
    by_type = {d["type"]: d["data"] for d in documents}
    assert set(by_type) == {"reply.confirmed", "reply.unclear", "reply.cancelled"}
    assert by_type["reply.unclear"]["text"] == "Може ли по-късно?"
    for data in by_type.values():
        assert (data["event_id"], data["phone"]) == (event_id, STORED)
        assert data["notice_id"] and data["reply_id"] and data["inbound_id"]
