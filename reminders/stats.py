"""Statistics and reports, counted by the database (one statement per request)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from sqlalchemy import Interval, Select, String, and_, case, func, literal, or_, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from reminders.accounts.scoping import scoped_session
from reminders.models import Attempt, InboundMessage, Notice, NoticeStatus

Bucket = Literal["hour", "day"]
NO_REPORT = "no_report"


def offset_spans(start: datetime, end: datetime, zone: tzinfo) -> list[tuple[datetime, timedelta]]:
    """The UTC offsets `zone` has over [start, end): (from when, offset), in order.

    Transitions are found hour by hour, then to the minute; a 400-day range is under 10,000
    steps. Offsets change on the minute in every zone in use.
    """
    hour, minute = timedelta(hours=1), timedelta(minutes=1)
    at, end = start.astimezone(UTC), end.astimezone(UTC)
    spans = [(at, _offset(at, zone))]
    while at < end:
        step = min(at + hour, end)
        if _offset(step, zone) != spans[-1][1]:
            low, high = at, step  # the change is in (low, high]
            while high - low > minute:
                middle = low + (high - low) / 2
                low, high = (
                    (middle, high) if _offset(middle, zone) == spans[-1][1] else (low, middle)
                )
            change = high.replace(second=0, microsecond=0)  # the one whole minute in (low, high]
            if change < end:
                spans.append((change, _offset(change, zone)))
        at = step
    return spans


def _offset(at: datetime, zone: tzinfo) -> timedelta:
    return at.astimezone(zone).utcoffset() or timedelta(0)


def _bucket(
    column: Any, bucket: Bucket, dialect: str, spans: list[tuple[datetime, timedelta]]
) -> ColumnElement[str]:
    """The start of the hour or day a timestamp falls in on the zone's clock, as ISO 8601 text.

    Hours carry their offset ("2027-10-31T03:00:00+03:00", then "...+02:00" for the repeated
    hour); days are plain local dates, given their midnight's offset by the caller. Neither
    database knows IANA zones in the same way (SQLite not at all), so the UTC timestamp is
    shifted by the offset of its span: a CASE with one branch per offset in the range.
    """
    branches = []
    for index, (_, offset) in enumerate(spans):
        minutes = int(offset.total_seconds() // 60)
        if dialect == "postgresql":
            fmt = 'YYYY-MM-DD"T"HH24:00:00' if bucket == "hour" else "YYYY-MM-DD"
            shift = literal(timedelta(minutes=minutes), Interval())
            local: ColumnElement[str] = func.to_char(
                func.date_trunc(bucket, column + shift), fmt, type_=String
            )
        else:
            fmt = "%Y-%m-%dT%H:00:00" if bucket == "hour" else "%Y-%m-%d"
            local = func.strftime(fmt, column, f"{minutes:+d} minutes", type_=String)
        if bucket == "hour":
            local = local + literal(_written(offset))
        if index + 1 < len(spans):
            branches.append((column < spans[index + 1][0], local))
        else:
            branches.append((literal(True), local))
    if len(branches) == 1:
        return branches[0][1]
    return case(*branches[:-1], else_=branches[-1][1])


def _written(offset: timedelta) -> str:
    """An offset as ISO 8601 writes it: +02:00, -03:30."""
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _label(key: str, bucket: Bucket, zone: tzinfo) -> str:
    """A bucket's start with its offset: a day starts at its local midnight."""
    if bucket == "hour":
        return key
    return datetime.combine(date.fromisoformat(key), time(0), zone).isoformat()


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
    zone: tzinfo = UTC,
) -> tuple[Counts, list[Counts]]:
    """Totals and per-bucket counts of notices by status and kind, segments and inbound.

    Buckets are hours or days on `zone`'s clock, each labelled with its start and offset. A
    notice still "sent" past the delivery-report timeout is counted as "no_report": the
    gateway never said, which is not the same as failed.
    """
    dialect = session.get_bind().dialect.name
    spans = offset_spans(start, end, zone)
    # Each notice's segments, looked up by its id (``ix_attempts_notice_id``) for the notices in
    # the range alone: a subquery summing every attempt first read the account's whole history
    # (1.7 s for the day's counts with a million notices behind them on PostgreSQL).
    segments = (
        select(func.sum(col(Attempt.segments)))
        .where(col(Attempt.notice_id) == col(Notice.id), col(Attempt.status) != NoticeStatus.failed)
        .correlate(Notice)
        .scalar_subquery()
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
    notice_bucket = _bucket(col(Notice.send_at), bucket, dialect, spans)
    notices = (
        select(
            notice_bucket.label("bucket"),
            col(Notice.kind).label("kind"),
            status.label("state"),
            func.count().label("n"),
            func.coalesce(func.sum(segments), 0).label("segments"),
        )
        .select_from(Notice)
        .where(col(Notice.send_at) >= start, col(Notice.send_at) < end)
        .group_by(notice_bucket, col(Notice.kind), status)
    )
    inbound_bucket = _bucket(col(InboundMessage.received_at), bucket, dialect, spans)
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
    totals = Counts(start=start.astimezone(zone).isoformat())
    buckets: dict[str, Counts] = {}
    for key, kind, state, n, used in session.execute(query):
        entry = buckets.setdefault(key, Counts(start=_label(key, bucket, zone)))
        for target in (entry, totals):
            if state == "received":
                target.received += n
                continue
            target.statuses[state] = target.statuses.get(state, 0) + n
            target.kinds[kind] = target.kinds.get(kind, 0) + n
            target.segments += int(used or 0)
    # By instant: the repeated hour of an autumn night sorts by its offset in text.
    return totals, sorted(buckets.values(), key=lambda entry: datetime.fromisoformat(entry.start))


CSV_COLUMNS = (
    "id", "kind", "status", "status_reason", "phone", "contact_id", "send_at", "sent_at",
    "priority", "provider", "provider_message_id", "gateway_reference", "segments", "encoding",
    "error", "text",
)  # fmt: skip


def notice_rows(
    engine: Engine, account_id: int, *, start: datetime, end: datetime
) -> Iterator[list[Any]]:
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
                col(Attempt.text),
            )
            .select_from(Notice)
            .outerjoin(latest, latest.c.notice_id == col(Notice.id))
            .outerjoin(Attempt, col(Attempt.id) == latest.c.id)
            .where(col(Notice.send_at) >= start, col(Notice.send_at) < end)
            .where(col(Notice.id) > last_id)
            .order_by(col(Notice.id))
            .limit(1000)
        )
        with scoped_session(engine, account_id) as session:
            rows = session.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield list(row)
        last_id = rows[-1][0]


@dataclass
class LinkCounts:
    """The attempts one gateway link carried: by their status now, and their segments."""

    link: str | None  # None: the single sender, before REMINDERS_LINKS or SEND_CONCURRENCY
    provider: str
    attempts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    segments: int = 0


def link_counts(session: Session, *, start: datetime, end: datetime) -> list[LinkCounts]:
    """Attempts handed over from ``start`` to ``end``, per link and provider: their status now
    (sent, delivered, undelivered, failed, unknown; a report moves it) and their segments."""
    rows = session.execute(
        select(
            col(Attempt.link),
            col(Attempt.provider),
            col(Attempt.status),
            func.count(),
            func.coalesce(func.sum(col(Attempt.segments)), 0),
        )
        .where(col(Attempt.submitted_at) >= start, col(Attempt.submitted_at) < end)
        .group_by(col(Attempt.link), col(Attempt.provider), col(Attempt.status))
    ).all()
    found: dict[tuple[str | None, str], LinkCounts] = {}
    for link, provider, status, n, segments in rows:
        counts = found.setdefault((link, provider), LinkCounts(link, provider))
        counts.attempts += n
        counts.statuses[status] = n
        if status != NoticeStatus.failed:  # a refused message used no segment
            counts.segments += int(segments)
    return sorted(found.values(), key=lambda c: (c.link is None, c.link or "", c.provider))


def status_counts(session: Session) -> dict[tuple[int, str], int]:
    """Notices by (account, status): every account's, or the one a scoped session acts for."""
    rows = session.execute(
        select(col(Notice.account_id), col(Notice.status), func.count()).group_by(
            col(Notice.account_id), col(Notice.status)
        )
    ).all()
    return {(account_id, status): n for account_id, status, n in rows}


def queue_depth(session: Session, now: datetime) -> dict[tuple[int, str], int]:
    """Notices due and not yet handed to the gateway, by (account, lane): what a backlog looks
    like. Lanes without any are left out."""
    waiting = or_(
        and_(col(Notice.status) == NoticeStatus.scheduled, col(Notice.send_at) <= now),
        col(Notice.status).in_([NoticeStatus.due, NoticeStatus.sending]),
    )
    rows = session.execute(
        select(col(Notice.account_id), col(Notice.priority), func.count())
        .where(waiting)
        .group_by(col(Notice.account_id), col(Notice.priority))
    ).all()
    return {(account_id, lane): n for account_id, lane, n in rows}


# ``/readyz`` counts at most this many due notices a lane: enough to tell a backlog, cheap on
# a table holding millions.
DUE_COUNT_CAP = 100_000


def due_now(session: Session, now: datetime) -> dict[str, dict[str, Any]]:
    """Per lane: notices ``due`` (counted up to ``DUE_COUNT_CAP``) and how long the oldest has
    waited, in seconds. Both read the partial index of due notices."""
    found: dict[str, dict[str, Any]] = {}
    for lane in ("transactional", "bulk"):
        due = and_(col(Notice.status) == NoticeStatus.due, col(Notice.priority) == lane)
        capped = select(col(Notice.id)).where(due).limit(DUE_COUNT_CAP).subquery()
        count = int(session.execute(select(func.count()).select_from(capped)).scalar_one())
        oldest = session.execute(select(func.min(col(Notice.send_at))).where(due)).scalar_one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        found[lane] = {
            "due": count,
            "more": count >= DUE_COUNT_CAP,
            "oldest_seconds": round(max(0.0, (now - oldest).total_seconds()), 1)
            if oldest is not None
            else None,
        }
    return found
