"""A feed URL that reaches into our own network is refused when the source is registered or
edited, not only when it is first synced (the default settings: private feeds not allowed)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from reminders.errors import InvalidField
from reminders.schemas.sources import SourceCreate, SourceUpdate
from reminders.sources.feeds import create_source, update_source
from tests.conftest import account_session

Headers = dict[str, str]
SECRET = "tok3n-s3cret"
REFUSED = [
    f"http://127.0.0.1:8080/feed.ics?token={SECRET}",
    f"http://localhost/feed.ics?token={SECRET}",
    f"https://[::1]/{SECRET}.ics",
    f"http://10.1.2.3/{SECRET}.ics",
    f"webcal://192.168.1.20/{SECRET}.ics",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.1]/",
]


def assert_refused_url(response: Any) -> None:
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "url"
    assert "private or local network address" in error["message"]
    assert "REMINDERS_ALLOW_PRIVATE_FEEDS" in error["message"]
    assert SECRET not in response.text


@pytest.mark.parametrize("url", REFUSED)
def test_a_private_feed_url_is_refused_at_creation(
    client: TestClient, writer: Headers, url: str
) -> None:
    response = client.post("/api/v1/sources", json={"name": "x", "url": url}, headers=writer)
    assert_refused_url(response)
    assert client.get("/api/v1/sources", headers=writer).json() == []


def test_a_private_feed_url_is_refused_on_edit(client: TestClient, writer: Headers) -> None:
    # An IP literal: accepted without asking a name server, which this machine may not have.
    made = client.post(
        "/api/v1/sources", json={"name": "x", "url": "https://93.184.215.14/c.ics"}, headers=writer
    )
    assert made.status_code == 201, made.text
    source_id = made.json()["id"]
    response = client.patch(
        f"/api/v1/sources/{source_id}", json={"url": REFUSED[0]}, headers=writer
    )
    assert_refused_url(response)
    shown = client.get(f"/api/v1/sources/{source_id}", headers=writer).json()
    assert shown["url"] == "https://93.184.215.14/…"


def only(*addresses: str) -> Any:
    def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


def nowhere(host: str, port: int) -> list[str]:
    raise OSError("Name or service not known")


@pytest.mark.parametrize(
    ("resolver", "refused"),
    [
        (only("10.0.0.7"), True),
        (only("127.0.0.1", "::1"), True),
        (only("93.184.215.14", "192.168.0.10"), True),  # any private address is enough
        (only("93.184.215.14"), False),
        (nowhere, False),  # left for the sync to report, should it stay so
    ],
)
def test_the_host_name_is_resolved_and_checked_at_creation(
    engine: Engine, resolver: Any, refused: bool
) -> None:
    data = SourceCreate(name="x", url=f"https://calendar.clinic.example/{SECRET}.ics")
    with account_session(engine) as session:
        if refused:
            with pytest.raises(InvalidField) as caught:
                create_source(
                    session, data, default_zone="UTC", allow_private=False, resolver=resolver
                )
            assert caught.value.field == "url"
            assert SECRET not in caught.value.message
        else:
            made = create_source(
                session, data, default_zone="UTC", allow_private=False, resolver=resolver
            )
            assert made.id is not None


def test_private_feeds_are_accepted_when_the_setting_allows_them(engine: Engine) -> None:
    data = SourceCreate(name="x", url="http://127.0.0.1:8080/feed.ics")
    with account_session(engine) as session:
        made = create_source(session, data, default_zone="UTC", allow_private=True)
        assert made.id is not None
        changed = update_source(
            session, made.id, SourceUpdate(url="http://localhost/other.ics"), allow_private=True
        )
        assert changed.url == "http://localhost/other.ics"
