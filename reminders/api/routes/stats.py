"""Statistics, their live stream, the CSV report and Prometheus metrics."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from reminders.api.deps import AccountIdDep, CallerDep, ReadKey, SessionDep, SettingsDep
from reminders.api.live import LiveTotals
from reminders.api.stopping import Stopping
from reminders.db import utcnow
from reminders.errors import InvalidField
from reminders.metrics import NoticeMetrics, Scrape
from reminders.schemas.stats import CountsOut, LinkCountsOut, LinkStatsOut, StatsOut
from reminders.settings import Settings
from reminders.stats import (
    CSV_COLUMNS,
    Counts,
    link_counts,
    notice_rows,
    notice_stats,
)

router = APIRouter(tags=["statistics"])
# /metrics sits at the root, where Prometheus looks; it still needs a key (bearer_token).
metrics_router = APIRouter(tags=["statistics"])
When = Annotated[
    str | None,
    Query(
        max_length=40,
        description="ISO 8601: a date (its midnight in `tz`) or a date-time (read in `tz` if it"
        " has no offset).",
    ),
]
Zone = Annotated[
    str | None,
    Query(max_length=64, description="IANA zone of the buckets; default REMINDERS_TIMEZONE."),
]
# Far enough for any real report, and far from the ends of Python's datetime range, where
# moving a value to another zone overflows.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


def _zone(name: str | None, settings: Settings) -> ZoneInfo:
    if name is None:
        return settings.zone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidField(
            f"{name!r} is not an IANA time zone such as Europe/Sofia", field="tz"
        ) from None


def _when(text: str | None, field: str, zone: ZoneInfo) -> datetime | None:
    """A range end: a plain date is its midnight in `zone`, a time without an offset is local."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)  # a plain date is its midnight, naive
    except ValueError:
        raise InvalidField(
            f"{text!r} is not ISO 8601; write e.g. 2026-11-30 or 2026-11-30T00:00:00+02:00",
            field=field,
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    if not EARLIEST <= value < LATEST:
        raise InvalidField(f"must fall between {EARLIEST:%Y} and {LATEST:%Y}", field=field)
    return value


def _range(
    start_text: str | None, end_text: str | None, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    start, end = _when(start_text, "from", zone), _when(end_text, "to", zone)
    end = end or utcnow()
    start = start or end - timedelta(days=7)
    if start >= end:
        raise InvalidField("must be before 'to'", field="from")
    if end - start > timedelta(days=400):
        raise InvalidField("the range may span at most 400 days", field="from")
    return start, end


def _out(counts: Counts) -> CountsOut:
    return CountsOut(**counts.__dict__)


@router.get("/stats")
def stats(
    session: SessionDep,
    settings: SettingsDep,
    _: ReadKey,
    start_text: Annotated[When, Query(alias="from")] = None,
    end_text: Annotated[When, Query(alias="to")] = None,
    bucket: Literal["hour", "day"] = "day",
    tz: Zone = None,
) -> StatsOut:
    """Notices by status and kind (by their send time), segments used and messages received,
    in hours or days on the clock of `tz`."""
    zone = _zone(tz, settings)
    start, end = _range(start_text, end_text, zone)
    totals, buckets = notice_stats(
        session,
        start=start,
        end=end,
        bucket=bucket,
        dlr_timeout=settings.dlr_timeout,
        now=utcnow(),
        zone=zone,
    )
    return StatsOut(
        start=start.astimezone(zone),
        end=end.astimezone(zone),
        bucket=bucket,
        timezone=zone.key,
        totals=_out(totals),
        buckets=[_out(b) for b in buckets],
    )


@router.get("/stats/links")
def link_stats(
    session: SessionDep,
    settings: SettingsDep,
    _: ReadKey,
    start_text: Annotated[When, Query(alias="from")] = None,
    end_text: Annotated[When, Query(alias="to")] = None,
    tz: Zone = None,
) -> LinkStatsOut:
    """What each gateway link carried in the range (by hand-over time): attempts by their status
    now, and segments."""
    zone = _zone(tz, settings)
    start, end = _range(start_text, end_text, zone)
    counts = link_counts(session, start=start, end=end)
    return LinkStatsOut(
        start=start.astimezone(zone),
        end=end.astimezone(zone),
        links=[LinkCountsOut(**c.__dict__) for c in counts],
    )


@router.get("/stats/stream", response_class=StreamingResponse)
async def stats_stream(
    request: Request,
    account_id: AccountIdDep,
    _: ReadKey,
    every: Annotated[float, Query(ge=0.5, le=60, description="Seconds between updates.")] = 2.0,
    limit: Annotated[
        int | None, Query(ge=1, le=100_000, description="Stop after N events.")
    ] = None,
) -> StreamingResponse:
    """Server-sent events: every few seconds, the totals of the notices due in the 24 hours up
    to now (not those still to come) and of the messages received in them."""
    live: LiveTotals = request.app.state.live_totals
    stopping: Stopping = request.app.state.stopping

    async def events() -> AsyncIterator[str]:
        # Between ticks the stream only waits: no thread, no connection (see api/live.py).
        # It ends when the server stops (api/stopping.py); the client reconnects elsewhere.
        sent = 0
        while (limit is None or sent < limit) and not stopping.begun:
            snapshot = await live.latest(account_id)
            payload: dict[str, Any] = {"at": snapshot.at.isoformat(), **snapshot.totals.__dict__}
            yield f"event: stats\ndata: {json.dumps(payload)}\n\n"
            sent += 1
            if (limit is None or sent < limit) and await stopping.wait(every):
                return

    return StreamingResponse(events(), media_type="text/event-stream")


@router.get("/reports/notices.csv", response_class=StreamingResponse)
def notices_csv(
    request: Request,
    settings: SettingsDep,
    account_id: AccountIdDep,
    _: ReadKey,
    start_text: Annotated[When, Query(alias="from")] = None,
    end_text: Annotated[When, Query(alias="to")] = None,
    tz: Zone = None,
) -> StreamingResponse:
    """Every notice due in the range with its latest outcome, streamed as CSV."""
    start, end = _range(start_text, end_text, _zone(tz, settings))
    engine = request.app.state.engine

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for row in notice_rows(engine, account_id, start=start, end=end):
            writer.writerow(
                [value.isoformat() if isinstance(value, datetime) else value for value in row]
            )
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    filename = f"notices-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@metrics_router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, caller: CallerDep, _: ReadKey) -> PlainTextResponse:
    """Prometheus text format: notices by status and queue depth per lane, labelled with their
    account (the key's own; every account for a provider key that names none), send latency,
    gateway errors, the API's callers in progress and refused, and whether this process fires
    notices."""
    notices: NoticeMetrics = request.app.state.notice_metrics
    text = generate_latest(Scrape(request.app.state.metrics, notices.visible_to(caller.account_id)))
    return PlainTextResponse(text, media_type=CONTENT_TYPE_PLAIN_0_0_4)
