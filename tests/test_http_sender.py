"""The generic JSON webhook sender, against a real local HTTP server that checks signatures."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from reminders.sender.base import OutgoingSms, SendError
from reminders.sender.http import HttpSender
from reminders.settings import SettingsError, load_settings
from tests.http_gateway import SECRET, Gateway

SMS = OutgoingSms(notice_id=5, to="+359888123456", text="Здравей", sender_id="Clinic",
                  segments=1, encoding="UCS-2")  # fmt: skip


def sender(url: str, engine: Engine, secret: str = SECRET) -> HttpSender:
    settings = load_settings(http_sender_url=url, http_sender_secret=secret)
    return HttpSender(settings, engine)


def test_a_signed_json_request_is_accepted(gateway: Gateway, engine: Engine) -> None:
    accepted = sender(gateway.url, engine).send(SMS)
    assert accepted.provider_message_id == "gw-1"
    assert gateway.received == [
        {"id": "notice-5", "to": "+359888123456", "from": "Clinic", "text": "Здравей",
         "segments": 1, "encoding": "UCS-2"}
    ]  # fmt: skip


def test_a_wrong_secret_is_refused_by_the_gateway(gateway: Gateway, engine: Engine) -> None:
    with pytest.raises(SendError) as caught:
        sender(gateway.url, engine, secret="other").send(SMS)
    assert caught.value.permanent is True and caught.value.code == "401"
    assert gateway.received == []


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (429, False), (503, False)])
def test_answers_say_whether_to_retry(
    gateway: Gateway, engine: Engine, status: int, permanent: bool
) -> None:
    gateway.answer = (status, b"number blocked")
    with pytest.raises(SendError) as caught:
        sender(gateway.url, engine).send(SMS)
    assert caught.value.permanent is permanent
    assert caught.value.message == "number blocked"


def test_an_unreachable_gateway_is_transient(engine: Engine) -> None:
    with pytest.raises(SendError) as caught:
        sender("http://127.0.0.1:9/sms", engine).send(SMS)
    assert caught.value.permanent is False and caught.value.code == "network"


def test_missing_settings_stop_start_up(engine: Engine) -> None:
    with pytest.raises(SettingsError, match="REMINDERS_HTTP_SENDER_URL"):
        HttpSender(load_settings(), engine)
    with pytest.raises(SettingsError, match="REMINDERS_HTTP_SENDER_SECRET"):
        HttpSender(load_settings(http_sender_url="http://127.0.0.1:9/"), engine)
