"""The control panel's sources screen over HTTP: the feeds with their last sync, last error and
next sync; adding one by the API's rules; "sync now" and what it changed. Feeds are served by a
real local HTTP server (tests/test_sources.py's), so private addresses are allowed here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders.models import Source
from reminders.process import build
from reminders.settings import Settings, load_settings
from tests.test_panel import add_user, csrf, sign_in
from tests.test_sources import FeedServer, add_source, calendar, day, first_feed, vevent

Headers = dict[str, str]


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.stop()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, allow_private_feeds=True, quiet_hours="off")


def as_role(client: TestClient, engine: Engine, role: str) -> str:
    add_user(engine, f"{role}@clinic.bg", role=role)
    assert sign_in(client, f"{role}@clinic.bg").status_code == 303
    return csrf(client.get("/sources").text)


def sources(engine: Engine) -> list[Source]:
    with Session(engine) as session:
        return list(session.exec(select(Source)).all())


def source_jobs(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM apscheduler_jobs WHERE id LIKE 'source:%'"))
        return set(found.scalars())


def error_of(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error"[^>]*>([^<]+)<', html)
    assert found is not None, html
    return unescape(found.group(1))


def test_an_operator_adds_a_feed_and_it_gets_its_sync_job(
    client: TestClient, engine: Engine, feed: FeedServer
) -> None:
    token = as_role(client, engine, "operator")
    form = {"name": "Кабинет 5", "url": feed.url, "policy": "appointment", "refresh": "PT30M"}
    added = client.post("/sources", data={**form, "csrf": token}, follow_redirects=False)
    assert added.status_code == 303
    [source] = sources(engine)
    assert added.headers["location"] == f"/sources/{source.id}"
    assert (source.name, source.url, source.refresh, source.timezone) == (
        "Кабинет 5",
        feed.url,
        "PT30M",
        "Europe/Sofia",
    )
    assert source_jobs(engine) == {f"source:{source.id}"}
    page = client.get(f"/sources/{source.id}")
    assert page.status_code == 200
    assert "http://127.0.0.1:" in page.text and "secret123" not in page.text
    listing = client.get("/sources")
    assert "Кабинет 5" in listing.text and "secret123" not in listing.text


def test_bad_feeds_are_refused_beside_their_field(client: TestClient, engine: Engine) -> None:
    token = as_role(client, engine, "operator")
    good = {"name": "Feed", "url": "https://example.com/c.ics", "policy": "appointment",
            "refresh": "PT15M", "csrf": token}  # fmt: skip
    cases = [
        ({"url": "ftp://example.com/c.ics"}, "url", "http"),
        ({"url": ""}, "url", "at least 1 character"),
        ({"refresh": "PT1M"}, "refresh", "at least PT5M"),
        ({"refresh": "often"}, "refresh", "ISO 8601"),
        ({"policy": "no-such"}, "policy", "no policy named 'no-such'"),
        ({"name": ""}, "name", "at least 1 character"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
    ]
    for changes, field, words in cases:
        refused = client.post("/sources", data={**good, **changes})
        assert refused.status_code == 422, (changes, refused.text)
        assert words in error_of(refused.text, field), changes
    assert sources(engine) == [] and source_jobs(engine) == set()


def test_a_private_address_is_refused_unless_allowed(
    database_url: str, engine: Engine, feed: FeedServer
) -> None:
    strict = load_settings(database_url=database_url, quiet_hours="off")
    process = build(strict, engine, run_scheduler=False)
    with TestClient(process.app) as client:
        token = as_role(client, engine, "operator")
        form = {"name": "Local", "url": feed.url, "policy": "appointment", "refresh": "PT15M"}
        refused = client.post("/sources", data={**form, "csrf": token})
        assert refused.status_code == 422
        message = error_of(refused.text, "url")
        assert "private or local" in message and "REMINDERS_ALLOW_PRIVATE_FEEDS" in message
        assert "secret123" not in refused.text.replace(f'value="{feed.url}"', "")
    assert sources(engine) == [] and feed.requests == []


def test_sync_now_shows_what_changed_and_the_last_error(
    client: TestClient, engine: Engine, feed: FeedServer
) -> None:
    feed.body = first_feed()
    source_id = add_source(engine, feed.url)["id"]
    token = as_role(client, engine, "operator")
    first = client.post(f"/sources/{source_id}/sync", data={"csrf": token})
    assert first.status_code == 200
    assert "New: 6" in first.text and "Moved: 0" in first.text
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM anchors")).scalar() == 6

    feed.body = calendar(
        vevent("a@clinic", f"{day(7)}T100000", "Преглед", "DESCRIPTION:тел. 0888 900 001"),
        vevent(
            "weekly@clinic",
            f"{day(2)}T090000",
            "Рехабилитация",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            "LOCATION:зала 2\\, тел. 0888 900 003",
        ),
        vevent("c@clinic", f"{day(8)}T120000", "Нов пациент", "DESCRIPTION:0888 900 004"),
    )
    changed = client.post(f"/sources/{source_id}/sync", data={"csrf": token})
    assert "New: 1" in changed.text and "Moved: 1" in changed.text
    assert "Cancelled: 1" in changed.text and "Unchanged: 4" in changed.text
    same = client.post(f"/sources/{source_id}/sync", data={"csrf": token})
    assert "has the same events" in same.text

    feed.body, feed.content_type = b"<html><body>Sign in</body></html>", "text/html"
    broken = client.post(f"/sources/{source_id}/sync", data={"csrf": token})
    assert broken.status_code == 200 and "The sync failed:" in broken.text
    [stored] = sources(engine)
    assert stored.last_error and stored.error_count == 1
    shown = re.search(r'id="last-error">([^<]+)<', broken.text)
    assert shown is not None and unescape(shown.group(1)) == stored.last_error
    listing = client.get("/sources")
    assert 'class="error"' in listing.text and "secret123" not in listing.text


def test_roles_csrf_and_other_accounts(
    client: TestClient, engine: Engine, feed: FeedServer, provider: Headers
) -> None:
    feed.body = first_feed()
    source_id = add_source(engine, feed.url)["id"]
    made = client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    assert made.status_code == 201
    theirs = client.post(
        "/api/v1/sources",
        json={"name": "Чужд", "url": "https://example.com/b.ics"},
        headers={**provider, "Reminders-Account": "bank-b"},
    )
    assert theirs.status_code == 201, theirs.text
    their_id = theirs.json()["id"]
    token = as_role(client, engine, "viewer")
    page = client.get(f"/sources/{source_id}")
    assert page.status_code == 200 and "Sync now" not in page.text
    assert "Add a calendar feed" not in client.get("/sources").text
    form = {"name": "X", "url": feed.url, "policy": "appointment", "refresh": "PT15M"}
    assert client.post("/sources", data={**form, "csrf": token}).status_code == 403
    assert client.post(f"/sources/{source_id}/sync", data={"csrf": token}).status_code == 403
    assert feed.requests == [] and len(sources(engine)) == 2
    client.cookies.clear()
    token = as_role(client, engine, "operator")
    assert client.post(f"/sources/{source_id}/sync").status_code == 403
    assert client.post("/sources", data={**form, "csrf": "guess"}).status_code == 403
    assert feed.requests == [] and len(sources(engine)) == 2
    assert client.get(f"/sources/{their_id}").status_code == 404
    assert client.post(f"/sources/{their_id}/sync", data={"csrf": token}).status_code == 404
    assert "Чужд" not in client.get("/sources").text
    assert client.get("/sources/nonsense").status_code == 404
    assert client.post("/sources/0/sync", data={"csrf": token}).status_code == 404
    with Session(engine) as session:
        stored = session.get(Source, their_id)
        assert stored is not None and stored.last_sync_at is None


def test_the_sources_screen_speaks_bulgarian(
    client: TestClient, engine: Engine, feed: FeedServer
) -> None:
    feed.body = first_feed()
    source_id = add_source(engine, feed.url)["id"]
    token = as_role(client, engine, "operator")
    bg = {"Accept-Language": "bg"}
    listing = client.get("/sources", headers=bg)
    assert "Календарни източници" in listing.text and "Add a calendar feed" not in listing.text
    synced = client.post(f"/sources/{source_id}/sync", data={"csrf": token}, headers=bg)
    assert "Нови: 6" in synced.text and "Синхронизиране сега" in synced.text
