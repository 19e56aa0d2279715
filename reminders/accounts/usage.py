"""What each account used in a month: what a provider bills from.

A month is read on the service's clock (``months.py``). In it, per account:

* **segments**: those of the account's attempts handed to the gateway in the month, all but the
  ``failed`` ones (what the quota counts, ``quota.py``: the two always agree), filed under
  their notice's status and lane;
* **messages**: notices, by status and lane. A notice counts once, in the month of its latest
  hand-over to the gateway, or, never handed over (still scheduled, expired, suppressed,
  cancelled, failed before sending), in the month of its send time;
* **received**: inbound messages received in the month.

One statement for all the accounts asked about, on the indexes that lead with the account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Select, case, exists, func, literal, select, union_all
from sqlmodel import Session, col

from reminders.accounts.months import Month
from reminders.accounts.quota import billable
from reminders.models import Account, Attempt, InboundMessage, Notice

# The statistics' own bucketing by local day: the same SQL on both databases, in any zone.
from reminders.stats import _bucket as day_bucket
from reminders.stats import offset_spans

RECEIVED = "received"  # the status under which the CSV lists inbound messages
CSV_COLUMNS = ("account", "month", "status", "lane", "messages", "segments")


@dataclass
class Tally:
    messages: int = 0
    segments: int = 0

    def add(self, other: Tally) -> None:
        self.messages += other.messages
        self.segments += other.segments


@dataclass
class Usage:
    """Notices by (status, lane), and messages received."""

    cells: dict[tuple[str, str], Tally] = field(default_factory=dict)  # (status, lane)
    received: int = 0

    @property
    def total(self) -> Tally:
        total = Tally()
        for tally in self.cells.values():
            total.add(tally)
        return total

    def by(self, index: int) -> dict[str, Tally]:
        """Tallies by status (0) or lane (1)."""
        grouped: dict[str, Tally] = {}
        for key, tally in sorted(self.cells.items()):
            grouped.setdefault(key[index], Tally()).add(tally)
        return grouped


@dataclass(kw_only=True)
class AccountUsage(Usage):
    slug: str
    name: str
    monthly_segments: int | None

    @property
    def segments_left(self) -> int | None:
        if self.monthly_segments is None:
            return None
        return max(self.monthly_segments - self.total.segments, 0)


def usage(
    session: Session, accounts: Sequence[Account], month: Month, zone: tzinfo
) -> list[AccountUsage]:
    """The month's usage of each of ``accounts``, in their order."""
    found = {
        a.id: AccountUsage(slug=a.slug, name=a.name, monthly_segments=a.monthly_segments)
        for a in accounts
        if a.id is not None
    }
    if not found:
        return []
    start, end = month.bounds(zone)
    for account_id, status, lane, messages, segments in session.execute(
        _query(list(found), start, end)
    ):
        entry = found[account_id]
        if status == RECEIVED and lane is None:
            entry.received += int(messages)
            continue
        tally = entry.cells.setdefault((status, lane), Tally())
        tally.add(Tally(int(messages or 0), int(segments or 0)))
    for entry in found.values():  # a notice whose latest hand-over came after the month
        entry.cells = {k: t for k, t in entry.cells.items() if t.messages or t.segments}
    return [found[a.id] for a in accounts if a.id is not None]


def _query(account_ids: list[int], start: datetime, end: datetime) -> Select[Any]:
    handed_over = (
        select(
            col(Attempt.notice_id).label("notice_id"),
            func.sum(case((billable(), func.coalesce(col(Attempt.segments), 0)), else_=0)).label(
                "segments"
            ),
        )
        .where(
            col(Attempt.account_id).in_(account_ids),
            col(Attempt.submitted_at) >= start,
            col(Attempt.submitted_at) < end,
        )
        .group_by(col(Attempt.notice_id))
        .subquery()
    )
    later = (
        select(col(Attempt.notice_id).label("notice_id"))
        .where(col(Attempt.account_id).in_(account_ids), col(Attempt.submitted_at) >= end)
        .distinct()
        .subquery()
    )
    # Notices handed over in the month: counted here when that was their latest hand-over;
    # their segments are the month's whatever came after.
    sent = (
        select(
            col(Notice.account_id),
            col(Notice.status),
            col(Notice.priority),
            func.sum(case((later.c.notice_id.is_(None), 1), else_=0)).label("messages"),
            func.sum(handed_over.c.segments).label("segments"),
        )
        .select_from(handed_over)
        .join(Notice, col(Notice.id) == handed_over.c.notice_id)
        .outerjoin(later, later.c.notice_id == handed_over.c.notice_id)
        .group_by(col(Notice.account_id), col(Notice.status), col(Notice.priority))
    )
    never = (
        select(
            col(Notice.account_id),
            col(Notice.status),
            col(Notice.priority),
            func.count().label("messages"),
            literal(0).label("segments"),
        )
        .where(
            col(Notice.account_id).in_(account_ids),
            col(Notice.send_at) >= start,
            col(Notice.send_at) < end,
            ~exists().where(col(Attempt.notice_id) == col(Notice.id)),
        )
        .group_by(col(Notice.account_id), col(Notice.status), col(Notice.priority))
    )
    received = (
        select(
            col(InboundMessage.account_id),
            literal(RECEIVED).label("status"),
            literal(None).label("priority"),
            func.count().label("messages"),
            literal(0).label("segments"),
        )
        .where(
            col(InboundMessage.account_id).in_(account_ids),
            col(InboundMessage.received_at) >= start,
            col(InboundMessage.received_at) < end,
        )
        .group_by(col(InboundMessage.account_id))
    )
    return select(union_all(sent, never, received).subquery())


@dataclass(kw_only=True)
class DayUsage(Usage):
    day: date


def usage_by_day(session: Session, account_id: int, month: Month, zone: tzinfo) -> list[DayUsage]:
    """The month's usage of one account day by day on ``zone``'s clock, every day listed.

    The month's rules, a day at a time: segments in the day they were handed to the gateway,
    a notice in the day of its latest hand-over (or, never handed over, of its send time), so
    the days add up to the month's ``usage``. One statement.
    """
    start, end = month.bounds(zone)
    days: dict[date, DayUsage] = {}
    day = start.astimezone(zone).date()
    while day < end.astimezone(zone).date():
        days[day] = DayUsage(day=day)
        day += timedelta(days=1)
    for key, status, lane, messages, segments in session.execute(
        _by_day_query(session, account_id, start, end, zone)
    ):
        entry = days.get(date.fromisoformat(key))
        if entry is None:  # cannot be: every timestamp counted lies in the month
            continue
        if status == RECEIVED and lane is None:
            entry.received += int(messages)
            continue
        entry.cells.setdefault((status, lane), Tally()).add(
            Tally(int(messages or 0), int(segments or 0))
        )
    for entry in days.values():  # a refused hand-over, the message counted another day
        entry.cells = {k: t for k, t in entry.cells.items() if t.messages or t.segments}
    return list(days.values())


def _by_day_query(
    session: Session, account_id: int, start: datetime, end: datetime, zone: tzinfo
) -> Select[Any]:
    dialect = session.get_bind().dialect.name
    spans = offset_spans(start, end, zone)

    def local_day(column: Any) -> Any:
        return day_bucket(column, "day", dialect, spans)

    handed_day = local_day(col(Attempt.submitted_at))
    segments = (
        select(
            handed_day.label("day"),
            col(Notice.status),
            col(Notice.priority),
            literal(0).label("messages"),
            func.sum(case((billable(), func.coalesce(col(Attempt.segments), 0)), else_=0)).label(
                "segments"
            ),
        )
        .select_from(Attempt)
        .join(Notice, col(Notice.id) == col(Attempt.notice_id))
        .where(
            col(Attempt.account_id) == account_id,
            col(Attempt.submitted_at) >= start,
            col(Attempt.submitted_at) < end,
        )
        .group_by(handed_day, col(Notice.status), col(Notice.priority))
    )
    latest = (
        select(
            col(Attempt.notice_id).label("notice_id"),
            func.max(col(Attempt.submitted_at)).label("at"),
        )
        # From the month's start on: a notice whose latest hand-over lies in the month has it
        # among these, and the account's older history is not read.
        .where(col(Attempt.account_id) == account_id, col(Attempt.submitted_at) >= start)
        .group_by(col(Attempt.notice_id))
        .subquery()
    )
    latest_day = local_day(latest.c.at)
    sent = (
        select(
            latest_day.label("day"),
            col(Notice.status),
            col(Notice.priority),
            func.count().label("messages"),
            literal(0).label("segments"),
        )
        .select_from(latest)
        .join(Notice, col(Notice.id) == latest.c.notice_id)
        .where(latest.c.at >= start, latest.c.at < end)
        .group_by(latest_day, col(Notice.status), col(Notice.priority))
    )
    due_day = local_day(col(Notice.send_at))
    never = (
        select(
            due_day.label("day"),
            col(Notice.status),
            col(Notice.priority),
            func.count().label("messages"),
            literal(0).label("segments"),
        )
        .where(
            col(Notice.account_id) == account_id,
            col(Notice.send_at) >= start,
            col(Notice.send_at) < end,
            ~exists().where(col(Attempt.notice_id) == col(Notice.id)),
        )
        .group_by(due_day, col(Notice.status), col(Notice.priority))
    )
    received_day = local_day(col(InboundMessage.received_at))
    received = (
        select(
            received_day.label("day"),
            literal(RECEIVED).label("status"),
            literal(None).label("priority"),
            func.count().label("messages"),
            literal(0).label("segments"),
        )
        .where(
            col(InboundMessage.account_id) == account_id,
            col(InboundMessage.received_at) >= start,
            col(InboundMessage.received_at) < end,
        )
        .group_by(received_day)
    )
    return select(union_all(segments, sent, never, received).subquery())


def csv_rows(month: Month, usages: Iterable[AccountUsage]) -> Iterator[list[Any]]:
    """One row per account, status and lane, then the account's messages received (always, so
    that every account asked about appears)."""
    for entry in usages:
        for (status, lane), tally in sorted(entry.cells.items()):
            yield [entry.slug, str(month), status, lane, tally.messages, tally.segments]
        yield [entry.slug, str(month), RECEIVED, "", entry.received, 0]
