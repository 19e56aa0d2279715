"""The notice list's filters, paging and bulk actions, apart from the page that shows them.

Newest first, by (send time, id), with a keyset cursor: a page is one index range scan however
many millions of notices came before it (``ix_notices_account_send_at``), where an offset would
read and skip them all.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlmodel import Session, col

from reminders.db import utcnow
from reminders.models import (
    PENDING,
    Anchor,
    GroupMember,
    Notice,
    NoticeKind,
    NoticeStatus,
    Priority,
)
from reminders.pending_jobs import JobScheduler, commit_and_schedule, unschedule_after_commit
from reminders.stats import NO_REPORT

PAGE: Final = 50
CANCELLED_HERE: Final = "cancelled in the control panel"
STATUSES: Final = (*(s.value for s in NoticeStatus), NO_REPORT)
KINDS: Final = tuple(k.value for k in NoticeKind)
LANES: Final = tuple(p.value for p in Priority)


class BadFilter(ValueError):
    """A filter the list cannot use: ``field`` says which, the message why (English; the page
    shows its own words for each field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Filters:
    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    lane: str | None = None
    since: date | None = None  # days on the account's clock, both included
    until: date | None = None
    contact: int | None = None
    group: int | None = None
    message: int | None = None
    policy: str | None = None
    phone: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def query_pairs(self) -> list[tuple[str, str]]:
        """The filters as query parameters, to link to the same list (a page, the CSV)."""
        pairs = [("status", s) for s in self.statuses] + [("kind", k) for k in self.kinds]
        for name, value in (
            ("lane", self.lane),
            ("since", self.since.isoformat() if self.since else None),
            ("until", self.until.isoformat() if self.until else None),
            ("contact", self.contact),
            ("group", self.group),
            ("message", self.message),
            ("policy", self.policy),
            ("phone", self.phone),
        ):
            if value not in (None, ""):
                pairs.append((name, str(value)))
        return pairs

    @property
    def active(self) -> bool:
        return bool(self.query_pairs())


def _id(value: str, name: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 2**31:
        raise BadFilter(name, "must be a positive whole number")
    return int(value)


def _day(value: str, name: str, today: date) -> date:
    if value == "today":
        return today
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadFilter(name, "must be a date such as 2026-12-01") from None


def parse_filters(params: Mapping[str, Sequence[str]], today: date) -> Filters:
    """Filters from the query string (each name to its values); BadFilter names the first
    unusable one. ``day=today`` (the dashboard's links) is since and until today."""

    def one(name: str) -> str | None:
        values = [v.strip() for v in params.get(name, ()) if v.strip()]
        return values[-1] if values else None

    statuses = tuple(dict.fromkeys(v for v in params.get("status", ()) if v))
    for status in statuses:
        if status not in STATUSES:
            raise BadFilter("status", f"is not a notice status: {status!r}")
    kinds = tuple(dict.fromkeys(v for v in params.get("kind", ()) if v))
    for kind in kinds:
        if kind not in KINDS:
            raise BadFilter("kind", f"is not a kind of notice: {kind!r}")
    lane = one("lane")
    if lane is not None and lane not in LANES:
        raise BadFilter("lane", f"is not a lane: {lane!r}")
    day = one("day")
    since = _day(day, "day", today) if day else None
    until = since
    if (text := one("since")) is not None:
        since = _day(text, "since", today)
    if (text := one("until")) is not None:
        until = _day(text, "until", today)
    if since and until and until < since:
        raise BadFilter("until", "must not be before the first day")
    policy = one("policy")
    phone = one("phone")
    if policy is not None and len(policy) > 64:
        raise BadFilter("policy", "is longer than a policy's name can be")
    if phone is not None and len(phone) > 20:
        raise BadFilter("phone", "is longer than a phone number can be")
    return Filters(
        statuses=statuses,
        kinds=kinds,
        lane=lane,
        since=since,
        until=until,
        contact=_id(v, "contact") if (v := one("contact")) else None,
        group=_id(v, "group") if (v := one("group")) else None,
        message=_id(v, "message") if (v := one("message")) else None,
        policy=policy,
        phone=phone,
    )


def _conditions(
    filters: Filters, zone: tzinfo, now: datetime, dlr_timeout: timedelta
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.statuses:
        plain = [s for s in filters.statuses if s != NO_REPORT]
        # "No report": sent, and the report's time is up; "sent" then means still waiting.
        overdue = col(Notice.sent_at) < now - dlr_timeout
        either: list[ColumnElement[bool]] = []
        if plain:
            sent_waiting = [s for s in plain if s == NoticeStatus.sent]
            others = [s for s in plain if s != NoticeStatus.sent]
            if others:
                either.append(col(Notice.status).in_(others))
            if sent_waiting:
                either.append(and_(col(Notice.status) == NoticeStatus.sent, ~overdue))
        if NO_REPORT in filters.statuses:
            either.append(and_(col(Notice.status) == NoticeStatus.sent, overdue))
        conditions.append(or_(*either))
    if filters.kinds:
        conditions.append(col(Notice.kind).in_(filters.kinds))
    if filters.lane:
        conditions.append(col(Notice.priority) == filters.lane)
    if filters.since:
        start = datetime.combine(filters.since, time(0), zone).astimezone(UTC)
        conditions.append(col(Notice.send_at) >= start)
    if filters.until:
        end = datetime.combine(filters.until + timedelta(days=1), time(0), zone).astimezone(UTC)
        conditions.append(col(Notice.send_at) < end)
    if filters.contact:
        conditions.append(col(Notice.contact_id) == filters.contact)
    if filters.message:
        conditions.append(col(Notice.message_id) == filters.message)
    if filters.phone:
        conditions.append(col(Notice.phone) == filters.phone)
    if filters.group:
        member = select(GroupMember.contact_id).where(  # type: ignore[call-overload]
            GroupMember.group_id == filters.group, GroupMember.contact_id == Notice.contact_id
        )
        conditions.append(exists(member))
    if filters.policy:
        anchor = select(Anchor.id).where(  # type: ignore[call-overload]
            Anchor.id == Notice.anchor_id, Anchor.policy == filters.policy
        )
        conditions.append(exists(anchor))
    return conditions


def encode_cursor(notice: Notice) -> str:
    raw = f"{notice.send_at.astimezone(UTC).isoformat()}|{notice.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        at, _, notice_id = raw.partition("|")
        when = datetime.fromisoformat(at)
        if when.utcoffset() is None or not notice_id.isdigit():
            raise ValueError
        return when, int(notice_id)
    except (ValueError, binascii.Error, UnicodeError):
        raise BadFilter("after", "is not a page of this list") from None


@dataclass(frozen=True)
class NoticePage:
    notices: list[Notice]
    next_cursor: str | None


def list_page(
    session: Session,
    filters: Filters,
    *,
    zone: tzinfo,
    dlr_timeout: timedelta,
    after: str | None = None,
    limit: int = PAGE,
    now: datetime | None = None,
) -> NoticePage:
    """One page of the account's notices that match, newest send time first."""
    now = now or utcnow()
    query = select(Notice).where(*_conditions(filters, zone, now, dlr_timeout))
    if after:
        at, notice_id = decode_cursor(after)
        query = query.where(
            or_(
                col(Notice.send_at) < at,
                and_(col(Notice.send_at) == at, col(Notice.id) < notice_id),
            )
        )
    query = query.order_by(col(Notice.send_at).desc(), col(Notice.id).desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return NoticePage(rows, encode_cursor(rows[-1]) if more and rows else None)


def every_match(
    session: Session,
    filters: Filters,
    *,
    zone: tzinfo,
    dlr_timeout: timedelta,
    batch: int = 1000,
) -> Iterator[Notice]:
    """Every matching notice, newest first, read a page at a time (for the CSV)."""
    now = utcnow()
    after: str | None = None
    while True:
        page = list_page(
            session, filters, zone=zone, dlr_timeout=dlr_timeout, after=after, limit=batch, now=now
        )
        yield from page.notices
        if page.next_cursor is None:
            return
        after = page.next_cursor
        session.expunge_all()  # a million rows must not pile up in the session


def cancel_many(session: Session, scheduler: JobScheduler | None, notice_ids: Sequence[int]) -> int:
    """Cancel those of ``notice_ids`` still scheduled (others, and other accounts' ids, are left
    alone); returns how many. Flushed; their jobs go after the caller's commit."""
    if not notice_ids:
        return 0
    result = session.execute(
        update(Notice)
        .where(col(Notice.id).in_(list(notice_ids)), col(Notice.status).in_(PENDING))
        .values(status=NoticeStatus.cancelled, status_reason=CANCELLED_HERE, updated_at=utcnow())
        .returning(col(Notice.id))
    )
    cancelled = [int(row[0]) for row in result]
    unschedule_after_commit(session, scheduler, cancelled)
    return len(cancelled)


def scheduled_of(filters: Filters) -> Filters:
    """The same filters, narrowed to what can still be cancelled."""
    return replace(filters, statuses=(NoticeStatus.scheduled.value, NoticeStatus.due.value))


def count_matching(
    session: Session, filters: Filters, *, zone: tzinfo, dlr_timeout: timedelta
) -> int:
    query = select(func.count()).select_from(Notice)
    query = query.where(*_conditions(filters, zone, utcnow(), dlr_timeout))
    return int(session.scalar(query) or 0)


def cancel_matching(
    session: Session,
    scheduler: JobScheduler | None,
    filters: Filters,
    *,
    zone: tzinfo,
    dlr_timeout: timedelta,
    chunk: int = 1000,
) -> int:
    """Cancel every scheduled notice the filters match, a chunk a transaction (a campaign of
    100,000 holds no lock for long, and what was cancelled stays so if it stops half way)."""
    wanted = scheduled_of(filters)
    total = 0
    while True:
        page = list_page(session, wanted, zone=zone, dlr_timeout=dlr_timeout, limit=chunk)
        ids = [n.id for n in page.notices if n.id is not None]
        if not ids:
            return total
        total += cancel_many(session, scheduler, ids)
        commit_and_schedule(session)
        session.expunge_all()


CSV_COLUMNS: Final = (
    "id", "kind", "status", "status_reason", "priority", "phone", "contact_id", "message_id",
    "send_at", "sent_at", "sender_id", "text",
)  # fmt: skip


def csv_row(notice: Notice, zone: tzinfo) -> list[Any]:
    def local(value: datetime | None) -> str:
        return value.astimezone(zone).isoformat() if value else ""

    return [
        notice.id,
        notice.kind,
        notice.status,
        notice.status_reason or "",
        notice.priority,
        notice.phone,
        notice.contact_id or "",
        notice.message_id or "",
        local(notice.send_at),
        local(notice.sent_at),
        notice.sender_id or "",
        notice.sent_text or ("" if notice.is_template else notice.text),
    ]
