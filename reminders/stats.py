"""Statistics and reports, counted by the database (one statement per request)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, and_, case, func, literal, or_, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from reminders.models import Attempt, InboundMessage, Notice, NoticeStatus, Priority

Bucket = Literal["hour", "day"]
NO_REPORT = "no_report"


def _bucket(column: Any, bucket: Bucket, dialect: str) -> ColumnElement[str]:
    """The start of the hour or day (UTC) a timestamp falls in, as ISO 8601 text."""
    if dialect == "postgresql":
        fmt = 'YYYY-MM-DD"T"HH24:00:00' if bucket == "hour" else "YYYY-MM-DD"
        return func.to_char(func.date_trunc(bucket, column), fmt)
    return func.strftime("%Y-%m-%dT%H:00:00" if bucket == "hour" else "%Y-%m-%d", column)


@dataclass
class Counts:
    start: str
    statuses: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    segments: int = 0
    received: int = 0


def notice_stats(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    bucket: Bucket,
    dlr_timeout: timedelta,
    now: datetime,
) -> tuple[Counts, list[Counts]]:
    """Totals and per-bucket counts of notices by status and kind, segments and inbound.

    A notice still "sent" past the delivery-report timeout is counted as "no_report": the
    gateway never said, which is not the same as failed.
    """
    dialect = session.get_bind().dialect.name
    segments = (
        select(col(Attempt.notice_id), func.sum(col(Attempt.segments)).label("segments"))
        .where(col(Attempt.status) != NoticeStatus.failed)
        .group_by(col(Attempt.notice_id))
        .subquery()
    )
    status = case(
        (
            (col(Notice.status) == NoticeStatus.sent) & (col(Notice.sent_at) < now - dlr_timeout),
            literal(NO_REPORT),
        ),
        else_=col(Notice.status),
    )
    # Grouped by the expressions, not by their labels: "status" would name the table's own
    # column in SQLite's GROUP BY, and every group would take one row's CASE at random.
    notice_bucket = _bucket(col(Notice.send_at), bucket, dialect)
    notices = (
        select(
            notice_bucket.label("bucket"),
            col(Notice.kind).label("kind"),
            status.label("state"),
            func.count().label("n"),
            func.coalesce(func.sum(segments.c.segments), 0).label("segments"),
        )
        .select_from(Notice)
        .outerjoin(segments, segments.c.notice_id == col(Notice.id))
        .where(col(Notice.send_at) >= start, col(Notice.send_at) < end)
        .group_by(notice_bucket, col(Notice.kind), status)
    )
    inbound_bucket = _bucket(col(InboundMessage.received_at), bucket, dialect)
    inbound = (
        select(
            inbound_bucket.label("bucket"),
            literal("inbound").label("kind"),
            literal("received").label("state"),
            func.count().label("n"),
            literal(0).label("segments"),
        )
        .where(col(InboundMessage.received_at) >= start, col(InboundMessage.received_at) < end)
        .group_by(inbound_bucket)
    )
    query: Select[Any] = select(union_all(notices, inbound).subquery())
    totals = Counts(start=start.isoformat())
    buckets: dict[str, Counts] = {}
    for bucket_start, kind, state, n, used in session.execute(query):
        entry = buckets.setdefault(bucket_start, Counts(start=bucket_start))
        for target in (entry, totals):
            if state == "received":
                target.received += n
                continue
            target.statuses[state] = target.statuses.get(state, 0) + n
            target.kinds[kind] = target.kinds.get(kind, 0) + n
            target.segments += int(used or 0)
    return totals, [buckets[key] for key in sorted(buckets)]


CSV_COLUMNS = (
    "id", "kind", "status", "status_reason", "phone", "contact_id", "send_at", "sent_at",
    "priority", "provider", "provider_message_id", "gateway_reference", "segments", "encoding",
    "error",
)  # fmt: skip


def notice_rows(engine: Engine, *, start: datetime, end: datetime) -> Iterator[list[Any]]:
    """Notices due in [start, end) with their latest attempt, a page at a time (keyset)."""
    latest = (
        select(func.max(col(Attempt.id)).label("id"), col(Attempt.notice_id))
        .group_by(col(Attempt.notice_id))
        .subquery()
    )
    last_id = 0
    while True:
        query = (
            select(
                col(Notice.id),
                col(Notice.kind),
                col(Notice.status),
                col(Notice.status_reason),
                col(Notice.phone),
                col(Notice.contact_id),
                col(Notice.send_at),
                col(Notice.sent_at),
                col(Notice.priority),
                col(Attempt.provider),
                col(Attempt.provider_message_id),
                col(Attempt.gateway_reference),
                col(Attempt.segments),
                col(Attempt.encoding),
                col(Attempt.error),
            )
            .select_from(Notice)
            .outerjoin(latest, latest.c.notice_id == col(Notice.id))
            .outerjoin(Attempt, col(Attempt.id) == latest.c.id)
            .where(col(Notice.send_at) >= start, col(Notice.send_at) < end)
            .where(col(Notice.id) > last_id)
            .order_by(col(Notice.id))
            .limit(1000)
        )
        with Session(engine) as session:
            rows = session.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield list(row)
        last_id = rows[-1][0]


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(col(Notice.status), func.count()).group_by(col(Notice.status))
    ).all()
    return {status: n for status, n in rows}


def queue_depth(session: Session, now: datetime) -> dict[str, int]:
    """Notices due and not yet handed to the gateway, by lane: what a backlog looks like."""
    waiting = or_(
        and_(col(Notice.status) == NoticeStatus.scheduled, col(Notice.send_at) <= now),
        col(Notice.status) == NoticeStatus.sending,
    )
    rows = session.execute(
        select(col(Notice.priority), func.count()).where(waiting).group_by(col(Notice.priority))
    ).all()
    depth = {lane.value: 0 for lane in Priority}
    depth.update({lane: n for lane, n in rows})
    return depth
