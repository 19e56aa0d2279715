"""The Kannel sender writes its sendsms query itself: the same bytes httpx would send."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from reminders.sender.base import OutgoingSms
from reminders.sender.kannel import KannelSender
from reminders.sender.kannel_dlr import new_attempt
from reminders.settings import load_settings

URLS = [
    "http://127.0.0.1:13013/cgi-bin/sendsms",
    "http://kannel.example:13013/cgi-bin/sendsms?smsc=mtel&username=overridden",
]


def kannel(url: str) -> KannelSender:
    settings = load_settings(
        kannel_url=url,
        kannel_username="user name+&",
        kannel_password="p@ss%20wörd",
        public_url="https://reminders.example/a%20b",
        webhook_secret="secret",
    )
    return KannelSender(settings, create_engine("sqlite://"))


def as_httpx_sends(sender: KannelSender, params: dict[str, str | int]) -> bytes:
    with httpx.Client() as client:
        return client.build_request("GET", str(sender.url), params=params).url.raw_path


@pytest.mark.parametrize("url", URLS)
# No deadline: a loaded machine took an example past Hypothesis's 200 ms; speed is not the point.
@settings(deadline=None)
@given(text=st.text(min_size=1), sender_id=st.none() | st.text(min_size=1, max_size=11))
def test_the_query_is_what_httpx_would_send(url: str, text: str, sender_id: str | None) -> None:
    sender = kannel(url)
    sms = OutgoingSms(notice_id=42, to="+359888123456", text=text, sender_id=sender_id)
    params = sender.params(sms, new_attempt()) if len(text) < 300 else {"text": text, "x": 2}
    assert sender.request_url(params).raw_path == as_httpx_sends(sender, params)
