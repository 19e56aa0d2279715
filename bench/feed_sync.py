"""Feed sync: a 5,000-event feed with recurring series, synced from scratch, then re-synced.

A local HTTP server serves the feed. Timed: the first sync (every occurrence planned), a re-sync
answered 304 (ETag), a re-sync answered 200 in which one event's SUMMARY was edited, and one in
which only every DTSTAMP changed (both without validators and with new DTSTAMPs everywhere, as
Google sends). The floor, printed alongside: recurring-ical-events expanding the same feed,
without any of our work.

    .venv/bin/python -m bench.feed_sync [--events 5000] [--db sqlite|postgresql]
Prints two JSON lines, each against the first sync as baseline (ratio = value/baseline; the
goal: under 0.05): the re-sync with one event edited, then the DTSTAMP-only re-sync.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import icalendar
import recurring_ical_events

from bench.common import database, report
from reminders.accounts.scoping import scoped_session
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.schemas.sources import SourceCreate
from reminders.settings import load_settings
from reminders.sources.feeds import create_source
from reminders.sources.resync import window_end
from reminders.sources.sync import SyncReport, sync_source


def make_feed(events: int, stamp: str, now: datetime, edited: int | None = None) -> bytes:
    """The feed, every DTSTAMP `stamp`; event number `edited`, if any, with another SUMMARY."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//feed//EN"]
    for i in range(events):
        start = (now + timedelta(days=1 + i % 30, hours=i % 9)).replace(minute=0, second=0)
        local = start.strftime("%Y%m%dT%H%M%S")
        lines += [
            "BEGIN:VEVENT",
            f"UID:event-{i}@bench",
            f"DTSTAMP:{stamp}",
            f"DTSTART;TZID=Europe/Sofia:{local}",
            "DURATION:PT30M",
            f"SUMMARY:Преглед {i}" + (" (пренасрочен)" if i == edited else ""),
            f"DESCRIPTION:Пациент {i}\\, тел. 0888 {i // 1000:03d} {i % 1000:03d}",
        ]
        if i % 5 == 0:  # a fifth are weekly series
            lines.append("RRULE:FREQ=WEEKLY;COUNT=8")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


class Server:
    def __init__(self) -> None:
        self.body = b""
        self.etag: str | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if owner.etag and self.headers.get("If-None-Match") == owner.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                if owner.etag:
                    self.send_header("ETag", owner.etag)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feed.ics"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    server = Server()
    now = datetime.now(UTC)  # once: every export of the feed has the same events
    server.body, server.etag = make_feed(args.events, "20261101T000000Z", now), '"v1"'

    started = time.perf_counter()
    calendar = icalendar.Calendar.from_ical(server.body)
    until = window_end(now, timedelta(days=35))  # the window a sync expands
    floor_count = len(recurring_ical_events.of(calendar).between(now, until))
    floor = time.perf_counter() - started

    with database(args.db) as engine:
        settings = load_settings(database_url=str(engine.url), allow_private_feeds=True)
        scheduler = NoticeScheduler(engine)
        with scoped_session(engine, 1) as session:
            source = create_source(
                session,
                SourceCreate(name="bench", url=server.url),
                default_zone="Europe/Sofia",
                allow_private=True,
            )
            session.commit()
            assert source.id is not None
            timings: dict[str, float] = {}

            def resync(name: str) -> SyncReport:
                started = time.perf_counter()
                result = sync_source(session, scheduler, source.id or 0, settings=settings)
                timings[name] = time.perf_counter() - started
                print(f"{name}: {result}", file=sys.stderr)
                return result

            resync("first")
            assert resync("not_modified").status == "not_modified"
            # One appointment renamed, in an export with a new DTSTAMP everywhere.
            server.body = make_feed(args.events, "20261125T101010Z", now, edited=1)
            server.etag = None
            edited = resync("edited")
            assert (edited.status, edited.moved, edited.created) == ("synced", 1, 0), edited
            server.body = make_feed(args.events, "20261126T111111Z", now, edited=1)
            assert resync("dtstamp_only").status == "unchanged"
    server.httpd.shutdown()
    print(
        f"first sync {timings['first']:.2f} s ({floor_count} occurrences); "
        f"304 re-sync {timings['not_modified'] * 1000:.1f} ms; "
        f"one event edited {timings['edited'] * 1000:.1f} ms; "
        f"only DTSTAMPs changed {timings['dtstamp_only'] * 1000:.1f} ms; "
        f"raw recurring-ical-events expansion {floor:.2f} s",
        file=sys.stderr,
    )
    for name in ("edited", "dtstamp_only"):
        report(
            f"feed_resync_{name}_{args.db}",
            timings[name],
            "s",
            timings["first"],
            timings[name] / timings["first"],
        )


if __name__ == "__main__":
    main()
