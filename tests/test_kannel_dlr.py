"""Kannel's delivery reports at the API: each send's dlr-url is signed for it alone.

Kannel is mocked here (``httpx.MockTransport``) to take the message and hand back the dlr-url
it was given; ``kannel_calls`` fills that URL's escapes in as Kannel does when it calls back.
tests/test_kannel.py does the same through a real Kannel.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from reminders.messages import create_message
from reminders.models import Attempt, Notice, NoticeStatus
from reminders.pending_jobs import commit_and_schedule
from reminders.process import Process
from reminders.scheduler.firing import fire
from reminders.schemas.messages import MessageCreate
from reminders.sender.kannel import KannelSender
from reminders.sender.kannel_dlr import (
    DLR_PATH,
    dlr_url,
    new_attempt,
    report_status,
    signature,
    signature_valid,
)
from reminders.settings import Settings, load_settings
from reminders.webhook_keys import inbound_token
from tests.conftest import account_session, fall_due, make_key

SECRET = "dlr-secret-ü/%A&x"  # what Kannel would mangle if sent as is: non-ASCII, "%A", "&"
PUBLIC_URL = "http://127.0.0.1:9"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The conftest's settings with Kannel and a webhook secret, for the ``client``."""
    return load_settings(
        database_url=database_url,
        quiet_hours="off",
        webhook_secret=SECRET,
        public_url=PUBLIC_URL,
        kannel_url="http://127.0.0.1:9/cgi-bin/sendsms",
        kannel_username="reminders",
        kannel_password="kannel-test-password",
    )


def new_notice(engine: Engine, phone: str = "0888 123 456") -> int:
    """A scheduled notice that is due in an hour: only the test fires it, never the scheduler."""
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    data = MessageCreate.model_validate({"to": {"phones": [phone]}, "text": "x", "send_at": later})
    with account_session(engine, expire_on_commit=False) as session:
        _, [notice] = create_message(session, None, data, region="BG")
        commit_and_schedule(session)
    assert notice.id is not None
    return notice.id


def notice_status(engine: Engine, notice_id: int) -> str:
    with account_session(engine) as session:
        notice = session.get(Notice, notice_id)
        assert notice is not None
        return notice.status


def fire_through_kannel(
    settings: Settings, engine: Engine, notice_id: int, *, answer: int = 202
) -> str:
    """Fire the notice through a mocked Kannel answering ``answer``; the dlr-url it was given."""
    given: list[str] = []

    def kannel(request: httpx.Request) -> httpx.Response:
        given.append(request.url.params["dlr-url"])
        return httpx.Response(answer, text="0: Accepted for delivery" if answer == 202 else "")

    mocked = KannelSender(
        settings, engine, client=httpx.Client(transport=httpx.MockTransport(kannel))
    )
    fall_due(engine, notice_id)
    # A 503 is transient: the notice goes back to "scheduled" for another try.
    expected = "sent" if answer == 202 else "scheduled"
    assert fire(engine, mocked, notice_id, settings=settings) == expected
    [url] = given
    return url


def kannel_calls(url: str, kind: int, *, reply: str = "", fid: str = "", kid: str = "") -> str:
    """The path and query Kannel calls for a dlr-url: its escapes filled in, URL-encoded."""
    values = {"d": str(kind), "i": "fake", "A": reply, "F": fid, "I": kid}
    called = re.sub(r"%(.)", lambda m: "%" if m[1] == "%" else quote(values[m[1]], safe=""), url)
    assert called.startswith(PUBLIC_URL + DLR_PATH + "?"), called
    return called.removeprefix(PUBLIC_URL)


def unsigned_dlr(
    client: TestClient | httpx.Client, notice: int | str, kind: int, **extra: str
) -> httpx.Response:
    """A report in the old form, the secret in the URL, as sends before signing were given."""
    params = {"notice": notice, "secret": SECRET, "type": kind, "smsc": "fake", **extra}
    return client.get(DLR_PATH, params=params)


def with_param(path: str, name: str, value: str) -> str:
    """``path`` with one query parameter's value replaced (or added)."""
    if f"&{name}=" not in path and f"?{name}=" not in path:
        return f"{path}&{name}={value}"
    return re.sub(rf"([?&]{name}=)[^&]*", lambda m: m[1] + value, path)


def test_the_signed_url_holds_no_secret_and_survives_kannels_escapes() -> None:
    # A "%" of ours (here in the public URL) is doubled, so Kannel does not take it for an escape.
    url = dlr_url("https://sms.example.bg/r%C3%A9", SECRET, 42, "0123456789abcdef")
    assert url.endswith("&type=%d&smsc=%i&reply=%A&fid=%F&kid=%I")
    ours = url.removesuffix("&type=%d&smsc=%i&reply=%A&fid=%F&kid=%I").replace("%%", "%")
    sig = signature(SECRET, 42, "0123456789abcdef")
    assert ours == (
        f"https://sms.example.bg/r%C3%A9{DLR_PATH}?notice=42&attempt=0123456789abcdef&sig={sig}"
    )
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", sig)  # 128 bits, nothing Kannel would expand
    assert "secret" not in url and quote(SECRET, safe="") not in url
    # Bound to the notice, the send and the secret.
    assert signature_valid(SECRET, 42, "0123456789abcdef", sig)
    assert not signature_valid(SECRET, 43, "0123456789abcdef", sig)
    assert not signature_valid(SECRET, 42, "0123456789abcdeg", sig)
    assert not signature_valid("another secret", 42, "0123456789abcdef", sig)
    assert new_attempt() != new_attempt()
    # URLs in flight survive an upgrade only if the derivation never drifts.
    assert signature("x", 42, "0123456789abcdef") == "jM8keQ34HmoiG5FpjTJBsQ"


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (1, "delivered"),
        (2, "undelivered"),
        (4, "sent"),  # buffered: the SMSC holds it
        (8, "sent"),  # accepted by the SMSC
        (16, "failed"),  # rejected by the SMSC
        (9, "delivered"),
        (18, "failed"),  # a failure outranks whatever came with it
        (0, None),
        (32, None),
        (-1, None),
    ],
)
def test_kannels_dlr_types(kind: int, status: str | None) -> None:
    assert report_status(kind) == status


def test_a_signed_report_moves_its_notice_once_and_forward_only(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    delivered, rejected = new_notice(engine, "0888 123 001"), new_notice(engine, "0888 123 002")
    url = fire_through_kannel(settings, engine, delivered)
    assert client.get(kannel_calls(url, 8)).text == "ignored"  # already "sent"
    assert client.get(kannel_calls(url, 4)).text == "ignored"
    response = client.get(kannel_calls(url, 1, kid="k-1"))
    assert (response.status_code, response.text) == (200, "applied")
    assert notice_status(engine, delivered) == "delivered"
    # The same URL again, whatever type it is given, moves nothing; Kannel gets a 200.
    for kind in (1, 2, 8, 16):
        again = client.get(kannel_calls(url, kind, reply="NACK/late"))
        assert (again.status_code, again.text) == (200, "ignored")
    assert notice_status(engine, delivered) == "delivered"

    url = fire_through_kannel(settings, engine, rejected)
    reply = "NACK/0x0000000b/Invalid Destination"
    assert client.get(kannel_calls(url, 16, reply=reply)).text == "applied"
    assert client.get(kannel_calls(url, 1)).text == "ignored"  # failed stays failed
    detail = client.get(f"/api/v1/notices/{rejected}", headers=make_key(engine, "read")).json()
    assert (detail["status"], detail["status_reason"]) == ("failed", reply)
    [attempt] = detail["attempts"]
    assert attempt["provider"] == "kannel" and attempt["error_code"] == "16"
    attempt_id = url.split("attempt=")[1].split("&")[0]
    assert attempt["provider_message_id"] == f"notice-{rejected}.{attempt_id}"


def test_a_forged_or_borrowed_signature_is_refused(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    mine, other = new_notice(engine, "0888 123 003"), new_notice(engine, "0888 123 004")
    path = kannel_calls(fire_through_kannel(settings, engine, mine), 2)
    fire_through_kannel(settings, engine, other)
    sig = path.split("sig=")[1].split("&")[0]
    forged = [
        with_param(path, "sig", ("A" if sig[0] != "A" else "B") + sig[1:]),  # one character off
        with_param(path, "notice", str(other)),  # my URL, another notice
        with_param(path, "attempt", new_attempt()),  # my notice, another send
        with_param(
            path, "sig", signature("a guessed secret", mine, path.split("attempt=")[1][:16])
        ),
        with_param(path, "sig", ""),
        re.sub(r"&sig=[^&]*", "", path),
        re.sub(r"&attempt=[^&]*&sig=[^&]*", "", path),  # neither a signature nor a secret
    ]
    for bad in forged:
        response = client.get(bad)
        assert response.status_code == 403, bad
        assert response.json()["detail"] == "the signature does not match"
    # The secret itself no longer moves a notice that was sent with a signed URL.
    assert unsigned_dlr(client, mine, 2, secret="wrong").status_code == 403
    refused = unsigned_dlr(client, mine, 2)
    assert refused.status_code == 403 and "signed" in refused.json()["detail"]
    assert (notice_status(engine, mine), notice_status(engine, other)) == ("sent", "sent")
    for bad_id in ("0", "-3", "abc", "2147483648"):
        response = client.get(with_param(path, "notice", bad_id))
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "notice"
    assert client.get(path).text == "applied"  # the genuine one still works


def test_the_inbound_get_urls_token_signs_no_report(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    """Whoever reads the inbound get-url in smsbox's log holds its token: no report with it."""
    notice = new_notice(engine, "0888 123 008")
    path = kannel_calls(fire_through_kannel(settings, engine, notice), 16)
    attempt = path.split("attempt=")[1][:16]
    token = inbound_token(SECRET)
    for bad in (
        with_param(path, "sig", signature(token, notice, attempt)),  # the token as the key
        with_param(path, "sig", token),
        with_param(path, "sig", token[:22]),
    ):
        assert client.get(bad).status_code == 403, bad
    # Nor as the secret of the old, unsigned form.
    assert unsigned_dlr(client, notice, 16, secret=token).status_code == 403
    assert notice_status(engine, notice) == "sent"
    assert client.get(path).text == "applied"


def test_a_report_about_an_earlier_send_moves_nothing(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    notice = new_notice(engine, "0888 123 005")
    refused = fire_through_kannel(settings, engine, notice, answer=503)  # Kannel busy: retried
    # Kannel never took that send, so no report can be about it.
    assert client.get(kannel_calls(refused, 1)).text == "unknown"
    assert notice_status(engine, notice) == "scheduled"
    first = fire_through_kannel(settings, engine, notice)
    assert client.get(kannel_calls(refused, 1)).text == "unknown"
    # Sent again (as a resend would): the first send's reports no longer move the notice.
    with account_session(engine) as session:
        session.exec(  # type: ignore[call-overload]
            update(Notice).where(col(Notice.id) == notice).values(status=NoticeStatus.scheduled)
        )
        session.commit()
    second = fire_through_kannel(settings, engine, notice)
    assert len({refused, first, second}) == 3
    for kind in (1, 2, 16):
        assert client.get(kannel_calls(first, kind)).text == "ignored"
    assert notice_status(engine, notice) == "sent"
    assert client.get(kannel_calls(second, 1)).text == "applied"
    assert notice_status(engine, notice) == "delivered"


def unsigned_send(engine: Engine, notice_id: int, submitted: datetime) -> None:
    """A send as the service recorded it before dlr-urls were signed."""
    with account_session(engine) as session:
        session.exec(  # type: ignore[call-overload]
            update(Notice)
            .where(col(Notice.id) == notice_id)
            .values(status=NoticeStatus.sent, sent_at=submitted)
        )
        session.add(
            Attempt(
                notice_id=notice_id,
                provider="kannel",
                provider_message_id=f"notice-{notice_id}",
                status=NoticeStatus.sent,
                submitted_at=submitted,
            )
        )
        session.commit()


def test_the_old_unsigned_form_still_settles_sends_made_before_signing(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    """Kannel keeps the dlr-urls of messages it took before the upgrade, secret and all."""
    now = datetime.now(UTC)
    in_flight, stale = new_notice(engine, "0888 123 006"), new_notice(engine, "0888 123 007")
    unsigned_send(engine, in_flight, now - timedelta(hours=47))
    # Sent longer ago than REMINDERS_DLR_TIMEOUT (48 h): the old form no longer moves it, and
    # Kannel is answered 200 so that it stops calling.
    unsigned_send(engine, stale, now - timedelta(hours=49))
    assert unsigned_dlr(client, in_flight, 8).text == "ignored"
    assert unsigned_dlr(client, in_flight, 1, kid="k-9").text == "applied"
    assert unsigned_dlr(client, in_flight, 2).text == "ignored"  # final stays final
    assert notice_status(engine, in_flight) == "delivered"
    stale_answer = unsigned_dlr(client, stale, 2)
    assert (stale_answer.status_code, stale_answer.text) == (200, "ignored")
    assert notice_status(engine, stale) == "sent"
    assert unsigned_dlr(client, in_flight, 1, secret="wrong").status_code == 403
    assert unsigned_dlr(client, 999_999, 1).text == "unknown"


def test_dlr_is_not_found_without_a_webhook_secret(
    client: TestClient, settings: Settings, process: Process
) -> None:
    rt = process.runtime
    rt.settings = settings.model_copy(update={"webhook_secret": None})
    response = unsigned_dlr(client, 1, 1)
    assert response.status_code == 404 and "not configured" in response.json()["detail"]


def test_the_smscs_own_id_is_kept_from_whichever_report_brings_it(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    notice = new_notice(engine, "0888 123 008")
    url = fire_through_kannel(settings, engine, notice)
    reader = make_key(engine, "read")

    def reference(notice_id: int) -> str | None:
        detail = client.get(f"/api/v1/notices/{notice_id}", headers=reader).json()
        return detail["attempts"][0]["gateway_reference"]

    # Delivered first, without the SMSC's id: Kannel's own is kept meanwhile.
    assert client.get(kannel_calls(url, 1, kid="k-1")).text == "applied"
    assert reference(notice) == "k-1"
    # A later, stale report changes no status and no reference already known.
    assert client.get(kannel_calls(url, 8, fid="smsc-77", kid="k-1")).text == "ignored"
    assert reference(notice) == "k-1"
    other = new_notice(engine, "0888 123 009")
    url = fire_through_kannel(settings, engine, other)
    assert client.get(kannel_calls(url, 8, fid="smsc-78", kid="k-2")).text == "ignored"
    assert reference(other) == "smsc-78"  # the SMSC's id first


def test_a_report_before_the_send_is_recorded_asks_kannel_to_retry(
    client: TestClient, engine: Engine
) -> None:
    notice = new_notice(engine)
    with account_session(engine) as session:
        stored = session.get(Notice, notice)
        assert stored is not None
        stored.status = NoticeStatus.sending  # claimed, Kannel called, attempt not yet written
        session.add(stored)
        session.commit()
    url = dlr_url(PUBLIC_URL, SECRET, notice, new_attempt())
    assert client.get(kannel_calls(url, 1)).status_code == 503
    assert notice_status(engine, notice) == "sending"
