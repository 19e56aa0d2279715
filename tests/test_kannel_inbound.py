"""SMS our customers send us through Kannel: a real Kannel calls GET /webhooks/kannel/inbound.

A handset is fakesmsc on a second fake link (tests/kannel.py); smsbox's default sms-service
GETs the service with the get-url ``inbound_get_url`` builds (its token is tested in
tests/test_kannel_inbound_token.py). One Kannel and one front server serve the module; each
test puts its own service (database, settings) behind the front.

smsbox logs "No reply sent, denied." once it has the service's answer and has decided not to
answer the customer: the tests wait for that line, so they need no sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.api.routes.kannel_webhook import INBOUND_PATH, inbound_get_url, mo_text
from reminders.process import Process
from reminders.settings import Settings, load_settings
from reminders.webhook_keys import inbound_token
from tests import kannel as harness
from tests.conftest import wait_for

pytestmark = pytest.mark.slow  # real processes and clocks: not in the fast tier

# What Kannel would mangle if it were not escaped: non-ASCII, "%A" (an escape), "&", "/".
SECRET = "inbound-secret-ü/%A&x"
TOKEN = inbound_token(SECRET)  # what the get-url carries instead
OUR_NUMBER = "1234"  # the short number customers text
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Headers = dict[str, str]


class Front:
    """The app Kannel calls: the current test's service, and a note of each answer's status."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.base_url = ""
        self.statuses: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:  # between tests: Kannel retries a 503 later
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, receive, noting)


@pytest.fixture(scope="module")
def front() -> Iterator[Front]:
    switch = Front()
    # No lifespan: each test's app is started by its TestClient, not by this server.
    with harness.serving(switch, lifespan="off") as base_url:
        switch.base_url = base_url
        yield switch


@pytest.fixture(scope="module")
def kannel(tmp_path_factory: pytest.TempPathFactory, front: Front) -> Iterator[harness.Kannel]:
    url = inbound_get_url(front.base_url, SECRET)
    with harness.running(tmp_path_factory.mktemp("kannel"), inbound_url=url) as running:
        yield running


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, webhook_secret=SECRET)


@pytest.fixture
def live(client: TestClient, front: Front, kannel: harness.Kannel) -> Iterator[TestClient]:
    """The service behind the front for this test; ``client`` reads what it recorded."""
    front.app, front.statuses = client.app, []
    try:
        yield client
    finally:
        front.app = None
    # Whatever the test did, the customer never got an SMS back.
    assert kannel.replies_to_handsets() == []


def handset_sends(
    kannel: harness.Kannel, sender: str, body: str, *, ucs2: bool | None = None
) -> None:
    """A customer's phone sends ``body`` to our number; return once smsbox is done with it."""
    served = kannel.replies_withheld()
    kannel.send_mo(sender, OUR_NUMBER, body, ucs2=ucs2)
    wait_for(
        lambda: kannel.replies_withheld() > served,
        timeout=15,  # a refused request is retried three times, a second apart
        what=f"smsbox to serve {body!r} from {sender}",
    )


def new_contact(client: TestClient, writer: Headers, phone: str) -> tuple[int, int]:
    """A contact with one notice due tomorrow; return their ids."""
    contact = client.post(
        "/api/v1/contacts", json={"name": "Иван", "phone": phone}, headers=writer
    ).json()
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    message = client.post(
        "/api/v1/messages",
        json={"to": {"contacts": [contact["id"]]}, "text": "x", "send_at": later},
        headers=writer,
    ).json()
    return contact["id"], message["notices"][0]["id"]


def opted_out(client: TestClient, writer: Headers, contact_id: int) -> bool:
    return bool(client.get(f"/api/v1/contacts/{contact_id}", headers=writer).json()["opted_out"])


def inbound(client: TestClient, writer: Headers) -> list[dict[str, object]]:
    items: list[dict[str, object]] = client.get("/api/v1/inbound", headers=writer).json()["items"]
    return items


def scheduled_jobs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() or 0)


# --- Through a real Kannel -----------------------------------------------------------------


def test_stop_from_a_handset_opts_out_and_suppresses_what_was_pending(
    live: TestClient, kannel: harness.Kannel, writer: Headers, engine: Engine
) -> None:
    contact_id, notice_id = new_contact(live, writer, "0888 600 001")
    assert scheduled_jobs(engine) == 1

    handset_sends(kannel, "+359888600001", "STOP")

    assert opted_out(live, writer, contact_id)
    notice = live.get(f"/api/v1/notices/{notice_id}", headers=writer).json()
    assert notice["status"] == "suppressed"
    assert notice["status_reason"] == "the recipient opted out by SMS"
    assert scheduled_jobs(engine) == 0
    [message] = inbound(live, writer)
    assert message["provider"] == "kannel" and UUID.fullmatch(str(message["provider_message_id"]))
    assert (message["from_phone"], message["to"], message["text"], message["action"]) == (
        "+359888600001",
        OUR_NUMBER,
        "STOP",
        "opt_out",
    )
    assert message["contact_id"] == contact_id


@pytest.mark.parametrize("ucs2", [True, False], ids=["ucs2", "utf8-text"])
def test_cyrillic_stop_arrives_intact(
    live: TestClient, kannel: harness.Kannel, writer: Headers, ucs2: bool
) -> None:
    """A phone sends Cyrillic as UCS-2 (%c = 2, UTF-16BE bytes); an SMSC link that recodes it
    (Kannel's mo-recode) hands it over as UTF-8 text. Both read the same."""
    contact_id, notice_id = new_contact(live, writer, "0888 600 002")

    handset_sends(kannel, "+359888600002", "СТОП", ucs2=ucs2)

    assert opted_out(live, writer, contact_id)
    assert live.get(f"/api/v1/notices/{notice_id}", headers=writer).json()["status"] == (
        "suppressed"
    )
    [message] = inbound(live, writer)
    assert (message["text"], message["action"]) == ("СТОП", "opt_out")


def test_start_opts_back_in(live: TestClient, kannel: harness.Kannel, writer: Headers) -> None:
    contact_id, _ = new_contact(live, writer, "0888 600 003")
    handset_sends(kannel, "+359888600003", "Stop!")
    assert opted_out(live, writer, contact_id)

    handset_sends(kannel, "+359888600003", "START")

    assert not opted_out(live, writer, contact_id)
    assert [(m["text"], m["action"]) for m in inbound(live, writer)] == [
        ("Stop!", "opt_out"),
        ("START", "opt_in"),
    ]


def test_an_ordinary_text_is_only_kept(
    live: TestClient, kannel: harness.Kannel, writer: Headers, engine: Engine
) -> None:
    contact_id, notice_id = new_contact(live, writer, "0888 600 004")
    # Kept as sent: two spaces stay two (%b, not %a), an emoji is a UTF-16 surrogate pair, and
    # "&", "%" and "+" survive two URL encodings. "00" is the international prefix.
    replies = ["Благодаря, ще дойда 🙂", "See you  at 10:30 & thanks: 100% +1"]
    for body in replies:
        handset_sends(kannel, "00359888600004", body)

    assert not opted_out(live, writer, contact_id)
    assert live.get(f"/api/v1/notices/{notice_id}", headers=writer).json()["status"] == (
        "scheduled"
    )
    assert scheduled_jobs(engine) == 1
    stored = inbound(live, writer)
    assert [(m["text"], m["action"], m["from_phone"]) for m in stored] == [
        (body, None, "+359888600004") for body in replies
    ]
    assert {m["contact_id"] for m in stored} == {contact_id}


def test_a_stale_token_is_refused_and_the_customer_gets_no_reply(
    live: TestClient,
    kannel: harness.Kannel,
    front: Front,
    process: Process,
    writer: Headers,
) -> None:
    contact_id, _ = new_contact(live, writer, "0888 600 005")
    # The service's secret changed, kannel.conf's did not.
    process.runtime.settings = process.runtime.settings.model_copy(
        update={"webhook_secret": SecretStr("rotated-secret")}
    )

    handset_sends(kannel, "+359888600005", "STOP")

    # Refused, then tried again (http-request-retry = 3), and refused each time.
    assert front.statuses == [403] * 4
    assert not opted_out(live, writer, contact_id)
    assert inbound(live, writer) == []
    # With max-messages = 0 Kannel does not text "Could not fetch content" to the customer
    # either (the live fixture checks the handsets' link received nothing).
    response = httpx.get(
        front.base_url + INBOUND_PATH,
        params={"token": TOKEN, "from": "+359888600005", "text": "STOP", "coding": 0},
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "the token does not match", "errors": []}


# --- The route's answers, without Kannel ---------------------------------------------------


def get_inbound(client: TestClient, **params: object) -> httpx.Response:
    query: dict[str, object] = {
        "token": TOKEN,
        "from": "+359888600006",
        "to": OUR_NUMBER,
        "text": "STOP",
        "coding": 0,
        "charset": "UTF-8",
        **params,
    }
    return client.get(INBOUND_PATH, params={k: v for k, v in query.items() if v is not None})


def test_the_answer_is_empty_so_kannel_sends_no_reply(client: TestClient) -> None:
    response = get_inbound(client)
    assert response.status_code == 200 and response.text == ""
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": None}, "from"),
        ({"from": ""}, "from"),
        ({"from": "+3598886" + "0" * 40}, "from"),
        ({"text": None}, "text"),
        ({"coding": None}, "coding"),
        ({"coding": "ucs2"}, "coding"),
        ({"coding": 3}, "coding"),
        ({"to": "1" * 41}, "to"),
        ({"token": None}, "token"),
    ],
    ids=[
        "no-from",
        "empty-from",
        "long-from",
        "no-text",
        "no-coding",
        "coding-not-a-number",
        "coding-unknown",
        "long-to",
        "no-token",
    ],
)
def test_a_malformed_request_is_a_json_422(
    client: TestClient, writer: Headers, params: dict[str, object], field: str
) -> None:
    response = get_inbound(client, **params)
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == field and body["detail"].startswith(f"{field}: ")
    assert inbound(client, writer) == []


def test_a_wrong_token_is_403_and_no_secret_configured_is_404(
    client: TestClient, process: Process, writer: Headers
) -> None:
    response = get_inbound(client, token="guess")
    assert response.status_code == 403
    assert response.json()["detail"] == "the token does not match"
    process.runtime.settings = process.runtime.settings.model_copy(update={"webhook_secret": None})
    response = get_inbound(client)
    assert response.status_code == 404
    assert response.json()["detail"] == "the kannel inbound messages are not configured"
    assert inbound(client, writer) == []


# --- Pure functions --------------------------------------------------------------------------


def test_the_get_url_survives_kannels_escapes() -> None:
    url = inbound_get_url("https://reminders.example.org", SECRET)
    escapes = "&from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I"
    assert url.endswith(escapes)
    assert url.removesuffix(escapes) == (
        f"https://reminders.example.org/webhooks/kannel/inbound?token={TOKEN}"
    )


@pytest.mark.parametrize(
    ("data", "coding", "charset", "expected"),
    [
        ("СТОП".encode("utf-16-be"), 2, "UTF-16BE", "СТОП"),
        ("СТОП".encode("utf-16-be"), 2, "", "СТОП"),  # UCS-2 is UTF-16BE, named or not
        ("СТОП".encode(), 0, "UTF-8", "СТОП"),
        ("СТОП".encode(), -1, "", "СТОП"),  # no charset, no coding: Kannel's own UTF-8
        ("Grüße".encode("latin-1"), 0, "ISO-8859-1", "Grüße"),
        (b"\x00\xff", 1, "8-BIT", "\x00\xff"),  # binary data, byte for byte
        (b"\x04\x21\x04", 2, "UTF-16BE", "С\ufffd"),  # an odd byte: kept, marked
        (b"ok", 0, "base64", "ok"),  # not a text codec: Kannel's UTF-8
    ],
)
def test_mo_text(data: bytes, coding: int, charset: str, expected: str) -> None:
    assert mo_text(data, coding, charset) == expected


def test_the_harness_writes_the_sms_service(tmp_path: Path) -> None:
    """Kannel reads the get-url as given (its escapes intact) and never replies."""
    kannel = harness.Kannel(
        workdir=tmp_path,
        admin_port=1,
        smsbox_port=2,
        sendsms_port=3,
        smsc_port=4,
        mo_port=5,
        max_messages=10,
        inbound_url="http://x/in?a=%%41&b=%b",
    )
    config = kannel.config()
    service = config[config.index("group = sms-service") :]
    assert 'get-url = "http://x/in?a=%%41&b=%b"' in service
    assert "max-messages = 0" in service and "keyword = default" in service


def test_an_answer_from_a_handset_confirms_the_appointment(
    live: TestClient, kannel: harness.Kannel, writer: Headers, engine: Engine
) -> None:
    """ "ДА" typed on a phone (UCS-2) answers the reminder that asked: the patient confirmed."""
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    body = {"title": "Д-р Петрова", "start": start, "recipients": {"phones": ["0888 600 031"]}}
    made = live.post("/api/v1/events", json=body, headers=writer)
    assert made.status_code == 201, made.text
    event_id = made.json()["id"]
    with engine.begin() as conn:  # its day-before reminder went a minute ago
        conn.execute(
            text(
                "UPDATE notices SET status = 'sent', sent_at = :at"
                " WHERE anchor_id = :id AND step = 0"
            ),
            {"at": (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None), "id": event_id},
        )

    handset_sends(kannel, "+359888600031", "ДА", ucs2=True)

    event = live.get(f"/api/v1/events/{event_id}", headers=writer).json()
    assert [(a["phone"], a["answer"]) for a in event["answers"]] == [("+359888600031", "confirmed")]
    [reply] = live.get("/api/v1/replies", headers=writer).json()["items"]
    assert (reply["text"], reply["state"], reply["event_id"]) == ("ДА", "confirmed", event_id)
