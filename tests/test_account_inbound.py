"""What gateways bring back, per account: inbound SMS and opt-outs, and delivery reports.

An inbound SMS belongs to the account that owns the number it was sent to, else to the account
that last sent to its phone; it is kept, and its STOP acts, there alone. A delivery report
finds its notice by id, and cannot be made to move another account's.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from reminders.accounts.scoping import scoped_session
from reminders.messages import create_message
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.firing import fire
from reminders.schemas.messages import MessageCreate
from reminders.sender.kannel_dlr import new_attempt
from reminders.sender.twilio import TwilioSender, signature
from reminders.settings import Settings, load_settings
from reminders.webhook_keys import inbound_token
from tests.conftest import fall_due, wait_for
from tests.test_kannel_dlr import fire_through_kannel, kannel_calls, with_param

Headers = dict[str, str]
SECRET = "account-inbound-secret"
TOKEN, PUBLIC = "twilio-token", "http://127.0.0.1:9"
PHONE, STORED = "0888 500 001", "+359888500001"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Kannel's callbacks (and a Kannel to fire through, mocked) and Twilio's."""
    return load_settings(
        database_url=database_url,
        quiet_hours="off",
        webhook_secret=SECRET,
        public_url=PUBLIC,
        kannel_url="http://127.0.0.1:9/cgi-bin/sendsms",
        kannel_username="reminders",
        kannel_password="kannel-test-password",
        twilio_account_sid="AC1",
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
    )


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def texted(client: TestClient, headers: Headers, **fields: Any) -> int:
    """A message to the phone (now, unless ``send_at``); its notice's id, once sent if now."""
    body = {"to": {"phones": [PHONE]}, "text": "x", **fields}
    notice = ok(client.post("/api/v1/messages", json=body, headers=headers), 201)["notices"][0]
    if "send_at" not in fields:
        wait_for(lambda: status(client, headers, notice["id"]) == "sent", what="the SMS to go")
    return int(notice["id"])


def status(client: TestClient, headers: Headers, notice_id: int) -> str:
    return str(ok(client.get(f"/api/v1/notices/{notice_id}", headers=headers))["status"])


def tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def sms_in(client: TestClient, text: str, *, to: str = "") -> None:
    """An SMS from the phone, through Kannel's inbound callback."""
    params = {"token": inbound_token(SECRET), "from": STORED, "text": text, "coding": 0}
    params |= {"charset": "UTF-8", "to": to, "id": uuid.uuid4().hex}
    response = client.get(f"/webhooks/kannel/inbound?{urlencode(params)}")
    assert response.status_code == 200, response.text


def received(client: TestClient, headers: Headers) -> list[tuple[str, str | None]]:
    items = ok(client.get("/api/v1/inbound", headers=headers))["items"]
    return [(m["text"], m["action"]) for m in items]


def contact(client: TestClient, headers: Headers) -> int:
    body = {"name": "Мария", "phone": PHONE}
    return int(ok(client.post("/api/v1/contacts", json=body, headers=headers), 201)["id"])


def opted_out(client: TestClient, headers: Headers, contact_id: int) -> bool:
    return bool(ok(client.get(f"/api/v1/contacts/{contact_id}", headers=headers))["opted_out"])


def test_stop_in_answer_to_one_account_opts_out_there_alone(
    client: TestClient, two: tuple[Headers, Headers]
) -> None:
    clinic, bank = two
    patient, customer = contact(client, clinic), contact(client, bank)
    # The bank texted first, the clinic last: the answer is the clinic's.
    texted(client, bank)
    bank_later = texted(client, bank, send_at=tomorrow())
    texted(client, clinic)
    clinic_later = texted(client, clinic, send_at=tomorrow())

    sms_in(client, "СТОП")
    assert received(client, clinic) == [("СТОП", "opt_out")]
    assert opted_out(client, clinic, patient)
    assert status(client, clinic, clinic_later) == "suppressed"
    clinic_new = ok(
        client.post(
            "/api/v1/messages", json={"to": {"phones": [PHONE]}, "text": "x"}, headers=clinic
        ),
        201,
    )
    assert clinic_new["notices"][0]["status"] == "suppressed"

    # The bank's card alerts still go: its pending notice waits, a new one is sent.
    assert received(client, bank) == []
    assert not opted_out(client, bank, customer)
    assert status(client, bank, bank_later) == "scheduled"
    texted(client, bank, text="Плащане с карта 12.50 лв.", priority="transactional")


def test_an_sms_to_a_number_an_account_owns_is_that_accounts(
    client: TestClient, provider: Headers, two: tuple[Headers, Headers]
) -> None:
    clinic, bank = two
    numbers = {"inbound_numbers": ["+359 888 999 000", "1851"]}
    patched = ok(client.patch("/api/v1/accounts/bank-b", json=numbers, headers=provider))
    assert patched["inbound_numbers"] == ["+359888999000", "1851"]
    patient, customer = contact(client, clinic), contact(client, bank)
    bank_later = texted(client, bank, send_at=tomorrow())
    texted(client, clinic)  # the last to text the phone: the rule the number overrides

    # Kannel may give our number in the national form: it is still the bank's.
    sms_in(client, "STOP", to="0888999000")
    assert received(client, bank) == [("STOP", "opt_out")]
    assert opted_out(client, bank, customer)
    assert status(client, bank, bank_later) == "suppressed"
    assert received(client, clinic) == [] and not opted_out(client, clinic, patient)

    sms_in(client, "START", to="1851")  # its short code
    assert received(client, bank)[-1] == ("START", "opt_in")
    sms_in(client, "Благодаря", to="+359888999111")  # a number no account owns
    assert received(client, clinic) == [("Благодаря", None)]


@pytest.mark.parametrize(
    ("numbers", "code", "field"),
    [
        (["0888 999 000"], 422, "inbound_numbers.0"),  # national: which country?
        (["+359888999000", "abc"], 422, "inbound_numbers.1"),
        (["12"], 422, "inbound_numbers.0"),
        (["00359888999000"], 409, "inbound_numbers"),  # the bank's already
    ],
)
def test_a_number_is_written_in_full_and_belongs_to_one_account(
    client: TestClient,
    provider: Headers,
    two: tuple[Headers, Headers],
    numbers: list[str],
    code: int,
    field: str,
) -> None:
    mine = {"inbound_numbers": ["+359888999000"]}
    ok(client.patch("/api/v1/accounts/bank-b", json=mine, headers=provider))
    response = client.patch(
        "/api/v1/accounts/clinic-a", json={"inbound_numbers": numbers}, headers=provider
    )
    assert response.status_code == code, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    # The bank may list its own number again.
    ok(client.patch("/api/v1/accounts/bank-b", json=mine, headers=provider))


def account_notice(engine: Engine, account: str, phone: str) -> int:
    """A notice of ``account`` due in an hour: only the test fires it."""
    from reminders.accounts.crud import account_id_of

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    data = MessageCreate.model_validate({"to": {"phones": [phone]}, "text": "x", "send_at": later})
    with scoped_session(engine, None) as lookup:
        account_id = account_id_of(lookup, account)
    with scoped_session(engine, account_id, expire_on_commit=False) as session:
        _, [notice] = create_message(session, None, data, region="BG")
        commit_and_schedule(session)
    assert notice.id is not None
    return notice.id


def test_a_delivery_report_cannot_move_another_accounts_notice(
    client: TestClient, engine: Engine, settings: Settings, two: tuple[Headers, Headers]
) -> None:
    clinic, bank = two
    mine, theirs = (
        account_notice(engine, "clinic-a", PHONE),
        account_notice(engine, "bank-b", PHONE),
    )
    clinic_url = kannel_calls(fire_through_kannel(settings, engine, mine), 2)
    bank_url = kannel_calls(fire_through_kannel(settings, engine, theirs), 1)
    bank_attempt = bank_url.split("attempt=")[1][:16]

    # The clinic's signed URL (smsbox logs it) turned on the bank's notice, or its send.
    for forged in (
        with_param(clinic_url, "notice", str(theirs)),
        with_param(with_param(clinic_url, "notice", str(theirs)), "attempt", bank_attempt),
        with_param(clinic_url, "attempt", new_attempt()),
    ):
        response = client.get(forged)
        assert response.status_code == 403, (forged, response.text)
    assert (status(client, clinic, mine), status(client, bank, theirs)) == ("sent", "sent")

    # Each genuine report moves its own notice alone.
    assert client.get(bank_url).text == "applied"
    assert (status(client, clinic, mine), status(client, bank, theirs)) == ("sent", "delivered")
    assert client.get(clinic_url).text == "applied"
    assert status(client, clinic, mine) == "undelivered"
    assert status(client, bank, theirs) == "delivered"


def test_a_twilio_report_names_its_notice_and_its_message_both(
    client: TestClient, engine: Engine, settings: Settings, two: tuple[Headers, Headers]
) -> None:
    """Twilio signs what it sends, but the notice id in its URL is ours: a report about the
    bank's message, sent with the clinic's notice id, moves nothing."""
    clinic, bank = two
    mine, theirs = (
        account_notice(engine, "clinic-a", PHONE),
        account_notice(engine, "bank-b", PHONE),
    )
    for notice_id, sid in ((mine, "SM-clinic"), (theirs, "SM-bank")):
        answer = httpx.Response(201, json={"sid": sid})
        transport = httpx.MockTransport(lambda _, answer=answer: answer)
        twilio = TwilioSender(
            settings,
            engine,
            client=httpx.Client(base_url="https://api.twilio.com", transport=transport),
        )
        fall_due(engine, notice_id)
        assert fire(engine, twilio, notice_id, settings=settings) == "sent"

    def report(notice_id: int, sid: str) -> None:
        params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
        path = f"/webhooks/twilio/status?notice={notice_id}"
        header = signature(TOKEN, PUBLIC + path, params)
        response = client.post(path, data=params, headers={"X-Twilio-Signature": header})
        assert response.status_code == 204, response.text

    report(mine, "SM-bank")
    report(theirs, "SM-clinic")
    assert (status(client, clinic, mine), status(client, bank, theirs)) == ("sent", "sent")
    report(theirs, "SM-bank")
    assert (status(client, clinic, mine), status(client, bank, theirs)) == ("sent", "undelivered")
