"""The Kannel sender and its delivery-report route, against a real Kannel (tests/kannel.py).

fakesmsc stands in for the operator: what it prints is what a handset would have been sent.
Each test writes to its own receiver number, so the tests share one Kannel for the module.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.models import Attempt, Notice, NoticeStatus
from reminders.process import build
from reminders.sender.base import OutgoingSms, SendError
from reminders.sender.kannel import KannelSender, parts
from reminders.sender.kannel_dlr import DLR_PATH
from reminders.settings import Settings, SettingsError, load_settings
from tests import kannel as harness
from tests.conftest import make_key, wait_for
from tests.test_kannel_dlr import SECRET, new_notice, notice_status, unsigned_dlr

pytestmark = pytest.mark.slow  # real processes and clocks: not in the fast tier

SENDER_ID = "MyShop"
DENIED = "invalid_number"
_numbers = itertools.count(359888100001)


def new_number() -> str:
    """A receiver number no other test uses, so each test reads only its own messages."""
    return f"+{next(_numbers)}"


@pytest.fixture(scope="module")
def kannel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Kannel]:
    with harness.running(tmp_path_factory.mktemp("kannel")) as running:
        yield running


@pytest.fixture(scope="module")
def bare_engine() -> Iterator[Engine]:
    """The sender keeps an engine but never uses it: sending needs no database."""
    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


def kannel_settings(kannel: harness.Kannel, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kannel_url": kannel.sendsms_url,
        "kannel_username": harness.USERNAME,
        "kannel_password": harness.PASSWORD,
        "kannel_max_parts": kannel.max_messages,
        **overrides,
    }
    return load_settings(**values)


@pytest.fixture
def sender(kannel: harness.Kannel, bare_engine: Engine) -> Iterator[KannelSender]:
    kannel_sender = KannelSender(kannel_settings(kannel), bare_engine)
    yield kannel_sender
    kannel_sender.close()


def sms(text: str, to: str | None = None, sender_id: str | None = SENDER_ID) -> OutgoingSms:
    return OutgoingSms(notice_id=7, to=to or new_number(), text=text, sender_id=sender_id)


def received_by(kannel: harness.Kannel, number: str, count: int) -> list[harness.ReceivedSms]:
    """Wait until fakesmsc has ``count`` SMS for ``number``; return them."""

    def arrived() -> list[harness.ReceivedSms]:
        mine = [m for m in kannel.received() if m.receiver == number]
        return mine if len(mine) >= count else []

    return list(wait_for(arrived, timeout=10, what=f"{count} SMS to {number} at fakesmsc"))


# --- Sending ------------------------------------------------------------------------------


def test_gsm7_text_reaches_the_operator_exactly(
    kannel: harness.Kannel, sender: KannelSender
) -> None:
    # GSM-7 beyond ASCII: extension characters (€ { } [ ] ~ ^ | \) and the basic table's
    # £ é Ä Δ, all sent as one 7-bit SMS.
    text = "Hello Ivan, 3 Dec 10:30 @ Dr Petrov's. Fee €5 {cash} [card] ~ ^ | \\ £ é Ä Δ 100%"
    message = sms(text)
    accepted = sender.send(message)
    assert re.fullmatch(r"notice-7\.[0-9a-f]{16}", accepted.provider_message_id or "")
    assert accepted.status == "sent"
    [got] = received_by(kannel, message.to, 1)
    assert (got.sender, got.receiver, got.kind) == (SENDER_ID, message.to, "text")
    assert got.decode() == text


def test_cyrillic_is_sent_as_ucs2(kannel: harness.Kannel, sender: KannelSender) -> None:
    text = "Здравейте, Иван! Часът ви е утре в 10:30 ч. Ели"
    message = sms(text)
    sender.send(message)
    [got] = received_by(kannel, message.to, 1)
    assert got.kind == "ucs-2"  # coding=2: without it Kannel would send "?????"
    assert got.decode() == text


@pytest.mark.parametrize(
    ("text", "count", "ucs2"),
    [
        # "+" and "&" would break a careless URL encoding; "%" a careless Kannel template.
        ("Part one + two & 50% off. " * 15, 3, False),
        ("Напомняне: часът ви е в понеделник. " * 5, 3, True),
        ("0123456789" * 153, 10, False),  # exactly max-messages parts: all of them arrive
    ],
    ids=["gsm7-3-parts", "ucs2-3-parts", "gsm7-10-parts"],
)
def test_a_long_message_arrives_whole(
    kannel: harness.Kannel, sender: KannelSender, text: str, count: int, ucs2: bool
) -> None:
    assert parts(text) == count
    message = sms(text)
    sender.send(message)
    received = received_by(kannel, message.to, count)
    assert len(received) == count and {m.kind for m in received} == {"udh"}
    assert harness.reassemble(received, ucs2=ucs2) == text


def test_more_parts_than_kannel_takes_are_refused_before_sending(
    kannel: harness.Kannel, sender: KannelSender
) -> None:
    number = new_number()
    text = "0123456789" * 153 + "!"  # 1531 septets: 11 parts, one past max-messages
    with pytest.raises(SendError) as caught:
        sender.send(sms(text, to=number))
    assert caught.value.permanent is True and caught.value.code == "too_long"
    # Nothing went: a later message to the same number is the only one fakesmsc sees.
    sender.send(sms("after", to=number))
    [only] = received_by(kannel, number, 1)
    assert only.decode() == "after"


def test_kannel_itself_would_cut_the_text_and_still_answer_202(kannel: harness.Kannel) -> None:
    """Why the sender counts parts: past max-messages Kannel drops the rest, silently."""
    number, text = new_number(), "0123456789" * 153 + "LOST"
    params = {
        "username": harness.USERNAME,
        "password": harness.PASSWORD,
        "to": number,
        "from": SENDER_ID,
        "text": text,
    }
    response = httpx.get(kannel.sendsms_url, params=params, timeout=5)
    assert response.status_code == 202
    received = received_by(kannel, number, kannel.max_messages)
    assert harness.reassemble(received) == text[: 153 * kannel.max_messages]


def test_a_wrong_password_is_permanent(kannel: harness.Kannel, bare_engine: Engine) -> None:
    wrong = KannelSender(kannel_settings(kannel, kannel_password="not-it"), bare_engine)
    with pytest.raises(SendError) as caught:
        wrong.send(sms("x"))
    assert caught.value.permanent is True and caught.value.code == "kannel_auth"
    assert "403" in caught.value.message


def test_no_sender_id_and_no_default_in_kannel_is_permanent(sender: KannelSender) -> None:
    with pytest.raises(SendError) as caught:
        sender.send(sms("x", sender_id=None))
    assert caught.value.permanent is True and caught.value.code == "no_sender"


@pytest.mark.parametrize("to", ["+359 888 123 456", "0888123456", "+35988812345x", ""])
def test_a_number_kannel_would_mangle_is_refused(sender: KannelSender, to: str) -> None:
    with pytest.raises(SendError) as caught:
        sender.send(OutgoingSms(notice_id=7, to=to, text="x", sender_id=SENDER_ID))
    assert caught.value.permanent is True and caught.value.code == "invalid_number"


def test_kannel_not_listening_is_transient(kannel: harness.Kannel, bare_engine: Engine) -> None:
    [closed] = harness.free_ports(1)
    url = f"http://127.0.0.1:{closed}/cgi-bin/sendsms"
    down = KannelSender(kannel_settings(kannel, kannel_url=url), bare_engine)
    with pytest.raises(SendError) as caught:
        down.send(sms("x"))
    assert caught.value.permanent is False and caught.value.code == "network"


@pytest.mark.parametrize(
    ("status", "body", "permanent", "code"),
    [
        (503, "", False, "kannel_unavailable"),
        (
            400,
            "Number(s) has/have been denied by white- and/or black-lists.",
            True,
            "invalid_number",
        ),
        (400, "DLR-URL field misformed, rejected", True, "kannel_rejected"),
    ],
)
def test_answers_say_whether_to_retry(
    kannel: harness.Kannel,
    bare_engine: Engine,
    status: int,
    body: str,
    permanent: bool,
    code: str,
) -> None:
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(status, text=body))
    )
    mocked = KannelSender(kannel_settings(kannel), bare_engine, client=client)
    with pytest.raises(SendError) as caught:
        mocked.send(sms("x"))
    assert (caught.value.permanent, caught.value.code) == (permanent, code)


def test_each_sending_thread_has_its_own_client_and_close_ends_them_all(
    kannel: harness.Kannel, bare_engine: Engine
) -> None:
    sender = KannelSender(kannel_settings(kannel), bare_engine)
    numbers = [new_number() for _ in range(4)]
    seen: dict[str, httpx.Client] = {}

    def send(number: str) -> None:
        sender.send(sms("Hi", to=number))
        assert sender.client is sender.client  # the same one within a thread
        seen[number] = sender.client

    threads = [threading.Thread(target=send, args=(n,)) for n in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for number in numbers:
        received_by(kannel, number, 1)
    assert len({id(client) for client in seen.values()}) == 4
    sender.close()
    assert all(client.is_closed for client in seen.values())
    with pytest.raises(RuntimeError, match="closed"):
        sender.send(sms("Hi"))


def test_missing_settings_stop_start_up(bare_engine: Engine) -> None:
    with pytest.raises(SettingsError, match="REMINDERS_KANNEL_URL: the kannel sender needs it"):
        KannelSender(load_settings(), bare_engine)
    with pytest.raises(SettingsError, match="REMINDERS_KANNEL_PASSWORD"):
        KannelSender(load_settings(kannel_url="http://k", kannel_username="u"), bare_engine)


def test_the_password_and_signature_stay_out_of_the_log(
    kannel: harness.Kannel, bare_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    settings = kannel_settings(kannel, public_url="http://127.0.0.1:9", webhook_secret=SECRET)
    logged = KannelSender(settings, bare_engine)
    try:
        with caplog.at_level("INFO", "httpx"):
            logged.send(sms("x"))
    finally:
        logged.close()
    assert "HTTP Request: GET" in caplog.text
    assert harness.PASSWORD not in caplog.text and "password=…" in caplog.text
    # The dlr-url, URL-encoded in the query, holds a signature (shown redacted), no secret.
    assert "sig%3D…" in caplog.text and not re.search("sig%3D[A-Za-z0-9]", caplog.text)
    assert "secret" not in caplog.text


# --- End to end: the service, Kannel and fakesmsc, with Kannel's real callbacks ------------


class StatusLog:
    """An ASGI wrapper that notes each response's status, to see what Kannel was answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, int]] = []  # (query string, status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode()

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((query, message["status"]))
            await send(message)

        await self.app(scope, receive, noting)


@dataclass
class Service:
    base_url: str
    settings: Settings
    log: StatusLog


@pytest.fixture
def live_service(
    kannel: harness.Kannel,
    database_url: str,
    engine: Engine,
) -> Iterator[Service]:
    """The service on a real port, sending through Kannel and getting its callbacks."""
    [port] = harness.free_ports(1)
    base_url = f"http://127.0.0.1:{port}"
    settings = kannel_settings(
        kannel,
        database_url=database_url,
        sender="kannel",
        public_url=base_url,
        webhook_secret=SECRET,
        sender_id=SENDER_ID,
        quiet_hours="off",
    )
    process = build(settings, engine)
    log = StatusLog(process.app)
    server = uvicorn.Server(uvicorn.Config(log, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=10, what="the service to listen")
        yield Service(base_url, settings, log)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive(), "the service did not stop"


def test_end_to_end_a_message_is_delivered_through_kannels_report(
    kannel: harness.Kannel, live_service: Service, engine: Engine
) -> None:
    number = new_number()
    text = "Напомняне: прегледът ви е утре в 10:30 ч."
    with httpx.Client(base_url=live_service.base_url, timeout=10) as api:
        created = api.post(
            "/api/v1/messages",
            json={"to": {"phones": [number]}, "text": text, "priority": "transactional"},
            headers=make_key(engine, "write"),
        )
        assert created.status_code == 201, created.text
        [notice] = created.json()["notices"]
        reader = make_key(engine, "read")

        def delivered() -> dict[str, object] | None:
            detail = api.get(f"/api/v1/notices/{notice['id']}", headers=reader).json()
            return detail if detail["status"] == "delivered" else None

        detail = wait_for(delivered, timeout=15, what="Kannel's delivery report")
        [attempt] = detail["attempts"]
        assert attempt["provider"] == "kannel"
        assert re.fullmatch(
            rf"notice-{notice['id']}\.[0-9a-f]{{16}}", attempt["provider_message_id"]
        )
        assert attempt["delivered_at"] is not None and attempt["error"] is None
        # Kannel's own id for the message (%I, a UUID) or the SMSC's (%F), from its report.
        assert re.fullmatch(
            r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", attempt["gateway_reference"]
        )
        [got] = received_by(kannel, number, 1)
        assert got.sender == SENDER_ID and got.decode() == text

        # Kannel called the signed dlr-url of this send: no secret in it.
        calls = [q for q, _ in live_service.log.seen if q.startswith(f"notice={notice['id']}&")]
        assert calls and all("&sig=" in q and "secret" not in q for q in calls)
        # Its call again, or a late one, changes nothing; Kannel is answered 200.
        assert api.get(f"{DLR_PATH}?{calls[-1]}").text == "ignored"
        late = re.sub(r"&type=\d+", "&type=2", calls[-1])
        assert api.get(f"{DLR_PATH}?{late}").text == "ignored"
        # The secret alone does not move a signed send, nor does a signature of another send.
        assert unsigned_dlr(api, notice["id"], 2).status_code == 403
        other = re.sub(r"&attempt=[0-9a-f]+", "&attempt=0123456789abcdef", late)
        assert api.get(f"{DLR_PATH}?{other}").status_code == 403
        after = api.get(f"/api/v1/notices/{notice['id']}", headers=reader).json()
        assert after["status"] == "delivered" and after["attempts"] == detail["attempts"]


def test_a_report_that_beats_the_record_is_retried_by_kannel(
    kannel: harness.Kannel, live_service: Service, engine: Engine
) -> None:
    """Kannel's report can come before the service has written the attempt: the route answers
    503 and Kannel, with http-request-retry, calls again once it is written."""
    number = new_number()
    notice = new_notice(engine, number)
    with Session(engine) as session:  # as firing leaves it while the sender works
        claimed = session.get(Notice, notice)
        assert claimed is not None
        claimed.status = NoticeStatus.sending
        session.add(claimed)
        session.commit()
    sender = KannelSender(live_service.settings, engine)
    try:
        accepted = sender.send(
            OutgoingSms(notice_id=notice, to=number, text="x", sender_id=SENDER_ID)
        )
    finally:
        sender.close()

    def refused() -> bool:
        mine = f"notice={notice}&"
        return any(q.startswith(mine) and code == 503 for q, code in live_service.log.seen)

    wait_for(refused, what="Kannel's report to be answered 503")
    with Session(engine) as session:  # what firing records once the sender returns
        sent = session.get(Notice, notice)
        assert sent is not None
        sent.status = NoticeStatus.sent
        session.add(sent)
        session.add(
            Attempt(
                account_id=sent.account_id,
                notice_id=notice,
                provider="kannel",
                provider_message_id=accepted.provider_message_id,
                status=NoticeStatus.sent,
            )
        )
        session.commit()
    wait_for(
        lambda: notice_status(engine, notice) == "delivered",
        timeout=10,
        what="Kannel's retried report",
    )
