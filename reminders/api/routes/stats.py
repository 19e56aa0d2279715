"""Statistics, their live stream, the CSV report and Prometheus metrics."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from reminders.api.deps import ReadKey, SessionDep, SettingsDep
from reminders.db import utcnow
from reminders.errors import InvalidField
from reminders.stats import (
    CSV_COLUMNS,
    Counts,
    notice_rows,
    notice_stats,
    queue_depth,
    status_counts,
)

router = APIRouter(tags=["statistics"])
# /metrics sits at the root, where Prometheus looks; it still needs a key (bearer_token).
metrics_router = APIRouter(tags=["statistics"])
When = Annotated[datetime | None, Query(description="ISO 8601 with an offset.")]


class CountsOut(BaseModel):
    start: str
    statuses: dict[str, int] = Field(description="sent, delivered, undelivered, no_report...")
    kinds: dict[str, int]
    segments: int
    received: int


class StatsOut(BaseModel):
    start: datetime
    end: datetime
    bucket: str
    totals: CountsOut
    buckets: list[CountsOut]


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or utcnow()
    start = start or end - timedelta(days=7)
    for name, value in (("from", start), ("to", end)):
        if value.utcoffset() is None:
            raise InvalidField("must include a UTC offset", field=name)
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
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    bucket: Literal["hour", "day"] = "day",
) -> StatsOut:
    """Notices by status and kind (by their send time), segments used and messages received."""
    start, end = _range(start, end)
    totals, buckets = notice_stats(
        session,
        start=start,
        end=end,
        bucket=bucket,
        dlr_timeout=settings.dlr_timeout_delta,
        now=utcnow(),
    )
    return StatsOut(
        start=start, end=end, bucket=bucket, totals=_out(totals), buckets=[_out(b) for b in buckets]
    )


@router.get("/stats/stream", response_class=StreamingResponse)
def stats_stream(
    request: Request,
    settings: SettingsDep,
    _: ReadKey,
    every: Annotated[float, Query(ge=0.5, le=60, description="Seconds between updates.")] = 2.0,
    limit: Annotated[
        int | None, Query(ge=1, le=100_000, description="Stop after N events.")
    ] = None,
) -> StreamingResponse:
    """Server-sent events: the last 24 hours' totals, every few seconds."""
    engine = request.app.state.runtime.engine

    def events() -> Iterator[str]:
        sent = 0
        while limit is None or sent < limit:
            now = utcnow()
            with Session(engine) as session:
                totals, _ = notice_stats(
                    session,
                    start=now - timedelta(days=1),
                    end=now + timedelta(days=1),
                    bucket="day",
                    dlr_timeout=settings.dlr_timeout_delta,
                    now=now,
                )
            payload: dict[str, Any] = {"at": now.isoformat(), **totals.__dict__}
            yield f"event: stats\ndata: {json.dumps(payload)}\n\n"
            sent += 1
            if limit is None or sent < limit:
                time.sleep(every)

    return StreamingResponse(events(), media_type="text/event-stream")


@router.get("/reports/notices.csv", response_class=StreamingResponse)
def notices_csv(
    request: Request,
    _: ReadKey,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> StreamingResponse:
    """Every notice due in the range with its latest outcome, streamed as CSV."""
    start, end = _range(start, end)
    engine = request.app.state.runtime.engine

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for row in notice_rows(engine, start=start, end=end):
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
def metrics(request: Request, session: SessionDep, _: ReadKey) -> PlainTextResponse:
    """Prometheus text format: notices by status, queue depth per lane, send latency, gateway
    errors, and whether this process fires notices."""
    lines = [
        "# HELP reminders_notices Notices by status.",
        "# TYPE reminders_notices gauge",
    ]
    for status, count in sorted(status_counts(session).items()):
        lines.append(f'reminders_notices{{status="{status}"}} {count}')
    lines += [
        "# HELP reminders_queue_depth Notices due and not yet handed to the gateway, by lane.",
        "# TYPE reminders_queue_depth gauge",
    ]
    for lane, count in sorted(queue_depth(session, utcnow()).items()):
        lines.append(f'reminders_queue_depth{{lane="{lane}"}} {count}')
    lines += request.app.state.runtime.metrics.render()
    scheduler = request.app.state.scheduler
    lines += [
        "# HELP reminders_scheduler_active 1 if this process runs the scheduler now.",
        "# TYPE reminders_scheduler_active gauge",
        f"reminders_scheduler_active {1 if scheduler.state == 'active' else 0}",
    ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
