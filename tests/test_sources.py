"""Feeds kept in sync, fetched from a real local HTTP server that changes between syncs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.process import Process
from reminders.settings import Settings, load_settings
from tests.conftest import account_session

Headers = dict[str, str]
SOFIA = ZoneInfo("Europe/Sofia")


class FeedServer:
    """Serves ``body`` at /feed.ics with an ETag, answering 304 when it still matches."""

    def __init__(self) -> None:
        self.body = b""
        self.etag: str | None = None
        self.content_type = "text/calendar"
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                server.requests.append(dict(self.headers))
                if server.etag and self.headers.get("If-None-Match") == server.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", server.content_type)
                if server.etag:
                    self.send_header("ETag", server.etag)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feed.ics?token=secret123"
        # A short poll, so that ``stop`` does not wait half a second for the loop to notice.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.stop()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, allow_private_feeds=True, quiet_hours="off")


def day(offset: int) -> str:
    return (datetime.now(SOFIA) + timedelta(days=offset)).strftime("%Y%m%d")


def calendar(*events: str, stamp: str = "20261101T000000Z") -> bytes:
    body = "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//feed//EN", *events, "END:VCALENDAR", ""]
    )
    return body.replace("DTSTAMP:X", f"DTSTAMP:{stamp}").encode()


def vevent(uid: str, start: str, summary: str, *extra: str) -> str:
    return "\r\n".join(
        [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:X",
            f"DTSTART;TZID=Europe/Sofia:{start}",
            f"SUMMARY:{summary}",
            *extra,
            "END:VEVENT",
        ]
    )


def first_feed() -> bytes:
    return calendar(
        vevent(
            "a@clinic",
            f"{day(5)}T100000",
            "Преглед",
            "DESCRIPTION:Пациент: Иван Петров\\, тел. 0888 900 001",
        ),
        vevent(
            "b@clinic",
            f"{day(6)}T110000",
            "Контролен преглед",
            "ATTENDEE;CN=Мария:tel:+359888900002",
        ),
        vevent(
            "weekly@clinic",
            f"{day(2)}T090000",
            "Рехабилитация",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            "LOCATION:зала 2\\, тел. 0888 900 003",
        ),
    )


def create_source(client: TestClient, headers: Headers, url: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/sources", json={"name": "Clinic", "url": url, **extra}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def add_source(engine: Engine, url: str, **extra: Any) -> dict[str, Any]:
    """A source made without its periodic job, so that only the test's own syncs run."""

    from reminders.schemas.sources import SourceCreate
    from reminders.sources.feeds import create_source as make_source

    with account_session(engine) as session:
        made = make_source(
            session,
            SourceCreate(name="Clinic", url=url, **extra),
            default_zone="Europe/Sofia",
            allow_private=True,
        )
        session.commit()
        return {"id": made.id}


def sync(client: TestClient, headers: Headers, source_id: int) -> dict[str, Any]:
    response = client.post(f"/api/v1/sources/{source_id}/sync", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def jobs(engine: Engine) -> dict[str, bytes]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, job_state FROM apscheduler_jobs WHERE id LIKE 'notice:%'")
        )
        return {r[0]: bytes(r[1]) for r in rows}


def anchors(engine: Engine) -> dict[str, tuple[str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, title, cancelled FROM anchors")).all()
    return {key.split(":", 2)[2]: (title, bool(cancelled)) for key, title, cancelled in rows}


def test_feed_sync_follows_every_change(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    feed.body, feed.etag = first_feed(), '"v1"'
    source = create_source(client, writer, feed.url)
    assert source["url"].startswith("http://127.0.0.1:") and "secret123" not in source["url"]

    first = sync(client, writer, source["id"])
    assert first["status"] == "synced", first
    assert first["created"] == 6  # two single events and four weekly instances
    keys = anchors(engine)
    assert {k.split("|")[0] for k in keys} == {"a@clinic", "b@clinic", "weekly@clinic"}
    with engine.connect() as conn:
        phones = {r[0] for r in conn.execute(text("SELECT DISTINCT phone FROM anchor_recipients"))}
    # Numbers found in the description, an ATTENDEE tel: URI and the location.
    assert phones == {"+359888900001", "+359888900002", "+359888900003"}
    before = jobs(engine)
    assert before

    # Nothing changed: the server answers 304 and no job is rewritten.
    again = sync(client, writer, source["id"])
    assert again["status"] == "not_modified"
    assert feed.requests[-1].get("If-None-Match") == '"v1"'
    assert jobs(engine) == before

    # Only the DTSTAMP changed and the server sends no validator: the content hash notices.
    feed.body, feed.etag = first_feed().replace(b"20261101T000000Z", b"20261124T101010Z"), None
    assert sync(client, writer, source["id"])["status"] == "unchanged"
    assert jobs(engine) == before

    # The calendar changes: one moved, one cancelled, one instance excluded, one added.
    feed.body = calendar(
        vevent("a@clinic", f"{day(7)}T100000", "Преглед", "DESCRIPTION:тел. 0888 900 001"),
        vevent(
            "weekly@clinic",
            f"{day(2)}T090000",
            "Рехабилитация",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            f"EXDATE;TZID=Europe/Sofia:{day(9)}T090000",
            "LOCATION:зала 2\\, тел. 0888 900 003",
        ),
        "\r\n".join(
            [
                "BEGIN:VEVENT",
                "UID:weekly@clinic",
                "DTSTAMP:X",
                f"RECURRENCE-ID;TZID=Europe/Sofia:{day(16)}T090000",
                f"DTSTART;TZID=Europe/Sofia:{day(16)}T090000",
                "SUMMARY:Рехабилитация",
                "STATUS:CANCELLED",
                "END:VEVENT",
            ]
        ),
        vevent("c@clinic", f"{day(8)}T120000", "Нов пациент", "DESCRIPTION:0888 900 004"),
    )
    changed = sync(client, writer, source["id"])
    assert changed["status"] == "synced", changed
    assert changed["created"] == 1  # c@clinic
    assert changed["moved"] == 1  # a@clinic moved two days later
    assert changed["cancelled"] == 3  # b@clinic gone, one instance excluded, one cancelled
    live = {k for k, (_, cancelled) in anchors(engine).items() if not cancelled}
    assert {k.split("|")[0] for k in live} == {"a@clinic", "weekly@clinic", "c@clinic"}
    assert len([k for k in live if k.startswith("weekly@clinic")]) == 2

    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                text(
                    "SELECT a.title, count(*) FROM notices n JOIN anchors a ON a.id = n.anchor_id "
                    "WHERE n.status = 'scheduled' GROUP BY a.title"
                )
            ).all()
        )
    assert "Контролен преглед" not in statuses
    status = client.get(f"/api/v1/sources/{source['id']}", headers=writer).json()
    assert status["last_error"] is None and status["event_count"] == 4
    assert status["notice_count"] == sum(statuses.values())


def test_a_broken_feed_is_recorded_and_changes_nothing(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    feed.body = first_feed()
    source = create_source(client, writer, feed.url)
    sync(client, writer, source["id"])
    before = jobs(engine)

    feed.body, feed.content_type = b"<html><body>Sign in</body></html>", "text/html"
    broken = sync(client, writer, source["id"])
    assert broken["status"] == "error"
    assert broken["error"]
    state = client.get(f"/api/v1/sources/{source['id']}", headers=writer).json()
    assert state["last_error"] == broken["error"] and state["error_count"] == 1
    assert jobs(engine) == before  # what the feed planned before stays as it was
    assert client.get("/healthz").status_code == 200


def test_loopback_urls_are_refused_unless_allowed(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine, database_url: str
) -> None:

    from reminders.sources.sync import sync_source

    feed.body = first_feed()
    source = create_source(client, writer, feed.url)
    strict = load_settings(database_url=database_url, allow_private_feeds=False)
    with account_session(engine) as session:
        report = sync_source(session, None, source["id"], settings=strict)
    assert report.status == "error"
    assert "secret123" not in (report.error or "")
    assert feed.requests == []  # refused before connecting


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/cal.ics", "http"),
        ("not a url", "http"),
        ("https://user:pw@example.com/c.ics", ""),
    ],
)
def test_bad_urls_are_refused(client: TestClient, writer: Headers, url: str, message: str) -> None:
    response = client.post("/api/v1/sources", json={"name": "x", "url": url}, headers=writer)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "url"
    assert message in response.json()["errors"][0]["message"]


def test_webcal_is_read_as_https(client: TestClient, writer: Headers) -> None:
    source = create_source(client, writer, "webcal://calendar.example.com/private/abc.ics")
    assert source["url"].startswith("https://calendar.example.com")
    assert "abc" not in source["url"]
    assert client.delete(f"/api/v1/sources/{source['id']}", headers=writer).status_code == 204


@pytest.mark.slow  # the scheduler's own clock: seconds
def test_a_new_feed_syncs_on_its_own(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    """The periodic job, not a request, syncs a newly registered feed within seconds."""
    from tests.conftest import wait_for

    feed.body = first_feed()
    source = create_source(client, writer, feed.url)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM apscheduler_jobs WHERE id = :id"),
                {"id": f"source:{source['id']}"},
            ).scalar()
            == 1
        )

    def synced() -> bool:
        state = client.get(f"/api/v1/sources/{source['id']}", headers=writer).json()
        return state["last_success_at"] is not None and state["event_count"] == 6

    wait_for(synced, timeout=30, what="the periodic sync")
    assert client.delete(f"/api/v1/sources/{source['id']}", headers=writer).status_code == 204
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM apscheduler_jobs WHERE id LIKE 'source:%'")
            ).scalar()
            == 0
        )
        assert (
            conn.execute(text("SELECT count(*) FROM notices WHERE status = 'scheduled'")).scalar()
            == 0
        )


def test_cli_sync(
    engine: Engine, feed: FeedServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from reminders.cli import app

    feed.body = first_feed()
    source = add_source(engine, feed.url)
    monkeypatch.setenv("REMINDERS_DATABASE_URL", database_url)
    monkeypatch.setenv("REMINDERS_ALLOW_PRIVATE_FEEDS", "true")
    result = CliRunner().invoke(app, ["sources", "sync", str(source["id"])])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"source {source['id']}: synced, 6 new, 0 changed, 0 restored, 0 cancelled, 0 unchanged"
    )
    missing = CliRunner().invoke(app, ["sources", "sync", "999999"])
    assert missing.exit_code == 2
    assert "no source with id 999999" in missing.output


def test_the_feeds_own_refresh_interval_is_a_lower_bound(
    client: TestClient, writer: Headers, feed: FeedServer
) -> None:
    feed.body = first_feed().replace(b"VERSION:2.0", b"VERSION:2.0\r\nX-PUBLISHED-TTL:PT2H")
    source = create_source(client, writer, feed.url, refresh="PT15M")
    synced_at = datetime.now(SOFIA)
    sync(client, writer, source["id"])
    state = client.get(f"/api/v1/sources/{source['id']}", headers=writer).json()
    not_before = datetime.fromisoformat(state["next_sync_at"])
    # Two hours, less the slack left for the periodic job's jitter (a fifth of the refresh).
    assert not_before - synced_at > timedelta(hours=1, minutes=50)
    assert not_before - synced_at < timedelta(hours=2)


def test_the_feeds_alarms_become_extra_reminders_when_asked(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    alarm = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT30M\r\nEND:VALARM"
    feed.body = calendar(
        vevent("alarm@clinic", f"{day(5)}T100000", "Преглед", "DESCRIPTION:0888 900 011", alarm)
    )
    plain = create_source(client, writer, feed.url)
    with_alarms = create_source(client, writer, feed.url, use_alarms=True)
    assert sync(client, writer, plain["id"])["notices"]["created"] == 2
    assert sync(client, writer, with_alarms["id"])["notices"]["created"] == 3
    from sqlmodel import col, select

    from reminders.models import Anchor, Notice

    with account_session(engine) as session:
        rows = session.exec(
            select(Notice.send_at, Anchor.at)
            .join(Anchor, col(Anchor.id) == col(Notice.anchor_id))
            .where(Anchor.source_id == with_alarms["id"], Notice.step == 2)
        ).all()
    [(send_at, start)] = rows
    assert start - send_at == timedelta(minutes=30)


def notices_of(engine: Engine, uid: str) -> dict[int, tuple[str, datetime]]:
    """The notices of a feed event's occurrence, by step: (status, send time)."""
    from sqlmodel import col, select

    from reminders.models import Anchor, Notice

    with account_session(engine) as session:
        rows = session.exec(
            select(Notice.step, Notice.status, Notice.send_at)
            .join(Anchor, col(Anchor.id) == col(Notice.anchor_id))
            .where(col(Anchor.key).like(f"source:%:{uid}|%"))
        ).all()
    return {step or 0: (status, send_at) for step, status, send_at in rows}


def event_id(engine: Engine, uid: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT id FROM anchors WHERE key LIKE :key"), {"key": f"source:%:{uid}|%"}
        ).scalar_one()
    return int(found)


def appointment(start: str, *extra: str) -> str:
    return vevent("a@clinic", start, "Преглед", "DESCRIPTION:тел. 0888 900 001", *extra)


def test_an_event_cancelled_then_restored_in_the_calendar_gets_its_reminders_back(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    other = vevent("b@clinic", f"{day(6)}T110000", "Контролен преглед", "DESCRIPTION:0888900002")
    feed.body = calendar(appointment(f"{day(5)}T100000"), other)
    source = add_source(engine, feed.url)
    assert sync(client, writer, source["id"])["created"] == 2
    # The day-before reminder went out already; the two-hours-before one is still to come.
    with engine.connect() as conn:
        conn.execute(
            text("UPDATE notices SET status = 'sent' WHERE step = 0 AND anchor_id = :id"),
            {"id": event_id(engine, "a@clinic")},
        )
        conn.commit()

    feed.body = calendar(appointment(f"{day(5)}T100000", "STATUS:CANCELLED"), other)
    assert sync(client, writer, source["id"])["cancelled"] == 1
    assert {s for s, _ in notices_of(engine, "a@clinic").values()} == {"sent", "cancelled"}

    feed.body = calendar(appointment(f"{day(5)}T100000"), other)
    restored = sync(client, writer, source["id"])
    assert restored["status"] == "synced", restored
    assert restored["restored"] == 1 and restored["created"] == 0
    assert restored["notices"]["restored"] == 1  # the cancelled reminder is planned again
    assert {s for s, _ in notices_of(engine, "a@clinic").values()} == {"sent", "scheduled"}
    assert notices_of(engine, "a@clinic")[0][0] == "sent"  # never sent twice
    event = client.get(f"/api/v1/events/{event_id(engine, 'a@clinic')}", headers=writer).json()
    assert event["cancelled"] is False
    with engine.connect() as conn:
        again = conn.execute(
            text("SELECT id FROM notices WHERE step = 1 AND anchor_id = :id"),
            {"id": event_id(engine, "a@clinic")},
        ).scalar_one()
    assert f"notice:{again}" in jobs(engine)  # and its job is written again

    # Later changes of the feed still reach the event: moved two days later.
    feed.body = calendar(appointment(f"{day(7)}T100000"), other)
    moved = sync(client, writer, source["id"])
    assert moved["moved"] == 1, moved
    _, send_at = notices_of(engine, "a@clinic")[1]
    expected = datetime.strptime(f"{day(7)}T080000", "%Y%m%dT%H%M%S").replace(tzinfo=SOFIA)
    assert send_at == expected
    state = client.get(f"/api/v1/sources/{source['id']}", headers=writer).json()
    assert state["last_error"] is None


def test_an_event_removed_then_back_in_the_calendar_is_restored(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    other = vevent("b@clinic", f"{day(6)}T110000", "Контролен преглед", "DESCRIPTION:0888900002")
    feed.body = calendar(appointment(f"{day(5)}T100000"), other)
    source = add_source(engine, feed.url)
    sync(client, writer, source["id"])
    feed.body = calendar(other)
    assert sync(client, writer, source["id"])["cancelled"] == 1
    feed.body = calendar(appointment(f"{day(5)}T100000"), other)
    restored = sync(client, writer, source["id"])
    assert restored["restored"] == 1 and restored["notices"]["restored"] == 2, restored
    assert {s for s, _ in notices_of(engine, "a@clinic").values()} == {"scheduled"}


def test_a_feed_event_cancelled_through_the_api_stays_cancelled_while_the_calendar_has_it(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    def other(start: int) -> str:
        return vevent("b@clinic", f"{day(start)}T110000", "Контролен", "DESCRIPTION:0888900002")

    feed.body = calendar(appointment(f"{day(5)}T100000"), other(6))
    source = add_source(engine, feed.url)
    sync(client, writer, source["id"])
    a = event_id(engine, "a@clinic")
    cancelled = client.delete(f"/api/v1/events/{a}", headers=writer)
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True

    # The calendar still has it unchanged while another event moves: the sync goes on, and the
    # patient who called to cancel is not reminded after all.
    feed.body = calendar(appointment(f"{day(5)}T100000"), other(8))
    changed = sync(client, writer, source["id"])
    assert changed["status"] == "synced" and changed["moved"] == 1, changed
    assert {s for s, _ in notices_of(engine, "a@clinic").values()} == {"cancelled"}
    assert {s for s, _ in notices_of(engine, "b@clinic").values()} == {"scheduled"}
    assert client.get(f"/api/v1/events/{a}", headers=writer).json()["cancelled"] is True

    # Moved in the calendar afterwards: a new decision there, so it is reminded of again.
    feed.body = calendar(appointment(f"{day(7)}T100000"), other(8))
    rebooked = sync(client, writer, source["id"])
    assert rebooked["restored"] == 1, rebooked
    assert {s for s, _ in notices_of(engine, "a@clinic").values()} == {"scheduled"}
    assert client.get(f"/api/v1/events/{a}", headers=writer).json()["cancelled"] is False


def test_a_feed_event_cancelled_through_the_api_comes_back_after_the_calendar_drops_it(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    feed.body = calendar(appointment(f"{day(5)}T100000"))
    source = add_source(engine, feed.url)
    sync(client, writer, source["id"])
    client.delete(f"/api/v1/events/{event_id(engine, 'a@clinic')}", headers=writer)
    feed.body = calendar()
    assert sync(client, writer, source["id"])["status"] == "synced"
    feed.body = calendar(appointment(f"{day(5)}T100000"))
    assert sync(client, writer, source["id"])["restored"] == 1
    assert {s for s, _ in notices_of(engine, "a@clinic").values()} == {"scheduled"}


def test_a_feed_event_cannot_be_patched_through_the_api(
    client: TestClient, writer: Headers, feed: FeedServer, engine: Engine
) -> None:
    feed.body = calendar(appointment(f"{day(5)}T100000"))
    source = add_source(engine, feed.url)
    sync(client, writer, source["id"])
    a = event_id(engine, "a@clinic")
    before = notices_of(engine, "a@clinic")
    response = client.patch(f"/api/v1/events/{a}", json={"title": "Друго"}, headers=writer)
    assert response.status_code == 409, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "id"
    assert f"calendar feed source {source['id']}" in error["message"]
    assert "calendar" in error["message"]
    event = client.get(f"/api/v1/events/{a}", headers=writer).json()
    assert event["title"] == "Преглед" and event["source_id"] == source["id"]
    assert notices_of(engine, "a@clinic") == before


def lose_policy(engine: Engine, source_id: int) -> None:
    """As if its policy was deleted: nothing stops that while none of its events uses it."""
    with engine.connect() as conn:
        conn.execute(text("UPDATE sources SET policy = 'gone' WHERE id = :id"), {"id": source_id})
        conn.commit()


def test_an_unexpected_failure_of_a_sync_is_recorded_on_the_source_not_a_500(
    client: TestClient,
    writer: Headers,
    feed: FeedServer,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from reminders.sources import sync as sync_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug of ours")

    feed.body = first_feed()
    source = add_source(engine, feed.url)
    # It breaks after the occurrences are stored and before their notices are planned.
    monkeypatch.setattr(sync_module, "plan_many", broken)
    failed = sync(client, writer, source["id"])
    assert failed["status"] == "error"
    message = "the sync failed unexpectedly (RuntimeError); see the log for details"
    assert failed["error"] == message
    assert failed["source"]["last_error"] == message and failed["source"]["error_count"] == 1
    logged = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert len(logged) == 1 and logged[0].exc_info is not None  # once, with the traceback
    assert "secret123" not in caplog.text

    monkeypatch.undo()
    again = sync(client, writer, source["id"])
    assert again["status"] == "synced", again
    assert again["notices"]["created"] == 12  # nothing half-done is left unplanned
    assert again["source"]["last_error"] is None and again["source"]["notice_count"] == 12


def test_the_periodic_sync_records_every_failure_and_goes_on(
    client: TestClient,
    feed: FeedServer,
    engine: Engine,
    process: Process,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reminders.sources import sync as sync_module
    from reminders.sources.jobs import sync_source_if_due

    feed.body = first_feed()
    lost, broken, fine = (add_source(engine, feed.url)["id"] for _ in range(3))
    lose_policy(engine, lost)
    real = sync_module.default_recipients

    def fails_for_one(session: Any, source: Any, settings: Any) -> Any:
        if source.id == broken:
            raise RuntimeError("a bug of ours")
        return real(session, source, settings)

    monkeypatch.setattr(sync_module, "default_recipients", fails_for_one)
    for source_id in (lost, broken, fine):
        sync_source_if_due(process.scheduler, source_id)  # raises nothing
    with engine.connect() as conn:
        state = dict(conn.execute(text("SELECT id, last_error FROM sources")).all())
    assert state[lost] == "no policy named 'gone'"
    assert state[broken].startswith("the sync failed unexpectedly (RuntimeError)")
    assert state[fine] is None
    with engine.connect() as conn:
        synced = conn.execute(
            text("SELECT event_count FROM sources WHERE id = :id"), {"id": fine}
        ).scalar()
    assert synced == 6


@pytest.mark.slow  # the real command, in its own processes
def test_cli_sync_reports_each_failed_feed_on_one_line_and_syncs_the_others(
    engine: Engine, feed: FeedServer, database_url: str
) -> None:
    import os
    import subprocess
    import sys

    feed.body = first_feed()
    lost, broken, fine = (add_source(engine, feed.url)["id"] for _ in range(3))
    lose_policy(engine, lost)
    # The real command in its own process, with a bug planted in the sync of one source.
    program = (
        "import reminders.sources.sync as s\n"
        "real = s.default_recipients\n"
        "def broken(session, source, settings):\n"
        f"    if source.id == {broken}:\n"
        "        raise RuntimeError('a bug of ours')\n"
        "    return real(session, source, settings)\n"
        "s.default_recipients = broken\n"
        "from reminders.cli import main\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    env.update(
        REMINDERS_DATABASE_URL=database_url,
        REMINDERS_ALLOW_PRIVATE_FEEDS="true",
        REMINDERS_QUIET_HOURS="off",
    )

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", program, "sources", "sync"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    result = run()
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"source {lost}: error: no policy named 'gone'",
        f"source {broken}: error: the sync failed unexpectedly (RuntimeError); "
        "see the log for details",
    ]
    assert result.stdout.splitlines() == [
        f"source {fine}: synced, 6 new, 0 changed, 0 restored, 0 cancelled, 0 unchanged"
    ]
    # Asked for, the log comes too, with the traceback of the unexpected failure.
    debug = run(REMINDERS_LOG_LEVEL="DEBUG")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "RuntimeError: a bug of ours" in debug.stderr
    assert "secret123" not in debug.stderr + debug.stdout
