"""The Twilio sender against httpx.MockTransport speaking Twilio's documented wire format."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from reminders.messages import create_message
from reminders.models import Notice
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.firing import fire
from reminders.schemas.messages import MessageCreate
from reminders.sender.base import OutgoingSms, SendError
from reminders.sender.twilio import TwilioSender, signature
from reminders.settings import Settings, SettingsError, load_settings
from tests.conftest import account_session

SID, TOKEN, PUBLIC = "AC0123456789abcdef0123456789abcdef", "secret-token", "https://sms.example.bg"
SMS = OutgoingSms(notice_id=7, to="+359888123456", text="Здравейте", sender_id=None)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
        public_url=PUBLIC,
        quiet_hours="off",
    )


def sender(
    settings: Settings, engine: Engine, handler: Callable[[httpx.Request], httpx.Response]
) -> TwilioSender:
    client = httpx.Client(base_url="https://api.twilio.com", transport=httpx.MockTransport(handler))
    return TwilioSender(settings, engine, client=client)


def test_a_message_is_posted_as_twilio_documents(settings: Settings, engine: Engine) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM0001", "status": "queued", "error_code": None})

    accepted = sender(settings, engine, handler).send(SMS)
    assert accepted.provider_message_id == "SM0001" and accepted.status == "sent"
    [request] = seen
    assert request.method == "POST"
    assert request.url.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    )
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "To": "+359888123456",
        "From": "+15005550006",
        "Body": "Здравейте",
        "StatusCallback": f"{PUBLIC}/webhooks/twilio/status?notice=7",
    }


@pytest.mark.parametrize(
    ("status", "body", "permanent", "code"),
    [
        (
            400,
            {"code": 21211, "message": "The 'To' number is not a valid phone number."},
            True,
            "21211",
        ),
        (400, {"code": 21606, "message": "The 'From' phone number is not valid."}, True, "21606"),
        (429, {"code": 20429, "message": "Too Many Requests"}, False, "20429"),
        (500, {}, False, "500"),
        (503, {"code": 20503, "message": "Service unavailable"}, False, "20503"),
    ],
)
def test_errors_say_whether_to_retry(
    settings: Settings,
    engine: Engine,
    status: int,
    body: dict[str, object],
    permanent: bool,
    code: str,
) -> None:
    twilio = sender(settings, engine, lambda request: httpx.Response(status, json=body))
    with pytest.raises(SendError) as caught:
        twilio.send(SMS)
    assert caught.value.permanent is permanent
    assert caught.value.code == code
    if "message" in body:
        assert caught.value.message == body["message"]


def test_a_connect_timeout_is_retried_a_read_timeout_is_not(
    settings: Settings, engine: Engine
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no route", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(SendError) as never_sent:
        sender(settings, engine, refuse).send(SMS)
    assert never_sent.value.permanent is False and never_sent.value.ambiguous is False
    # The request went out and no answer came: Twilio may have taken it. Retrying could send
    # it twice, so it is neither retried nor called failed.
    with pytest.raises(SendError) as maybe_sent:
        sender(settings, engine, slow).send(SMS)
    assert maybe_sent.value.ambiguous is True and maybe_sent.value.code == "timeout"


def test_an_ambiguous_outcome_leaves_the_notice_unknown(settings: Settings, engine: Engine) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    data = MessageCreate.model_validate({"to": {"phones": ["0888 123 458"]}, "text": "x"})
    with account_session(engine, expire_on_commit=False) as session:
        _, [notice] = create_message(session, None, data, region="BG")
        commit_and_schedule(session)
    assert notice.id is not None
    assert fire(engine, sender(settings, engine, slow), notice.id, settings=settings) == "unknown"
    assert fire(engine, sender(settings, engine, slow), notice.id, settings=settings) is None


def test_missing_settings_stop_start_up(database_url: str, engine: Engine) -> None:
    with pytest.raises(SettingsError, match="REMINDERS_TWILIO_ACCOUNT_SID"):
        TwilioSender(load_settings(database_url=database_url), engine)


def test_status_callbacks_move_the_notice_forward_only(
    settings: Settings, engine: Engine, client: TestClient
) -> None:
    data = MessageCreate.model_validate(
        {
            "to": {"phones": ["0888 123 456"]},
            "text": "x",
            "send_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }
    )
    with account_session(engine, expire_on_commit=False) as session:
        _, [notice] = create_message(session, None, data, region="BG")
        commit_and_schedule(session)
    assert notice.id is not None
    twilio = sender(settings, engine, lambda r: httpx.Response(201, json={"sid": "SM42"}))
    with account_session(engine) as session:
        stored = session.get(Notice, notice.id)
        assert stored is not None
        stored.send_at = datetime.now(UTC)
        session.add(stored)
        session.commit()
    assert fire(engine, twilio, notice.id, settings=settings) == "sent"

    def callback(status: str, *, sign: bool = True, **extra: str) -> int:
        params = {"MessageSid": "SM42", "MessageStatus": status, "AccountSid": SID, **extra}
        path = f"/webhooks/twilio/status?notice={notice.id}"
        header = signature(TOKEN, PUBLIC + path, params) if sign else "forged"
        response = client.post(path, data=params, headers={"X-Twilio-Signature": header})
        return response.status_code

    def status() -> str:
        with account_session(engine) as session:
            current = session.get(Notice, notice.id)
            assert current is not None
            return current.status

    assert callback("delivered", sign=False) == 403
    assert status() == "sent"
    assert callback("delivered") == 204
    assert status() == "delivered"
    assert callback("delivered") == 204  # the same report twice changes nothing
    assert callback("sent") == 204  # a late "sent" never overwrites "delivered"
    assert callback("undelivered", ErrorCode="30003") == 204
    assert status() == "delivered"
    detail = client.get(f"/api/v1/notices/{notice.id}", headers=_key(engine)).json()
    assert detail["attempts"][0]["provider"] == "twilio"
    assert detail["attempts"][0]["provider_message_id"] == "SM42"
    assert detail["attempts"][0]["delivered_at"] is not None


def test_undelivered_report_records_the_error(
    settings: Settings, engine: Engine, client: TestClient
) -> None:
    data = MessageCreate.model_validate({"to": {"phones": ["0888 123 457"]}, "text": "x"})
    with account_session(engine, expire_on_commit=False) as session:
        _, [notice] = create_message(session, None, data, region="BG")
        commit_and_schedule(session)
    assert notice.id is not None
    twilio = sender(settings, engine, lambda r: httpx.Response(201, json={"sid": "SM43"}))
    assert fire(engine, twilio, notice.id, settings=settings) == "sent"
    params = {"MessageSid": "SM43", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    path = "/webhooks/twilio/status"
    response = client.post(
        path, data=params, headers={"X-Twilio-Signature": signature(TOKEN, PUBLIC + path, params)}
    )
    assert response.status_code == 204
    detail = client.get(f"/api/v1/notices/{notice.id}", headers=_key(engine)).json()
    assert detail["status"] == "undelivered"
    assert detail["attempts"][0]["error_code"] == "30003"


def _key(engine: Engine) -> dict[str, str]:
    from tests.conftest import make_key

    return make_key(engine, "read")


@pytest.mark.parametrize(
    ("service", "sender_id", "expected"),
    [
        (None, None, {"From": "+15005550006"}),
        (None, "MyClinic", {"From": "MyClinic"}),
        ("MG1", None, {"MessagingServiceSid": "MG1"}),
        ("MG1", "MyClinic", {"MessagingServiceSid": "MG1", "From": "MyClinic"}),
    ],
)
def test_the_sender_id_reaches_twilio(
    settings: Settings,
    engine: Engine,
    service: str | None,
    sender_id: str | None,
    expected: dict[str, str],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM0002", "status": "queued"})

    configured = settings.model_copy(update={"twilio_messaging_service_sid": service})
    sms = OutgoingSms(notice_id=8, to="+359888123456", text="Hi", sender_id=sender_id)
    sender(configured, engine, handler).send(sms)
    form = {k: v[0] for k, v in parse_qs(seen[0].content.decode()).items()}
    assert {k: form[k] for k in ("From", "MessagingServiceSid") if k in form} == expected
