"""The dashboard's numbers: today's counters on the account's clock, and the last 24 hours by
hour. Plain functions over ``stats.notice_stats``; the page and its live stream show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Final

from sqlmodel import Session

from reminders.models import NoticeStatus
from reminders.stats import NO_REPORT, Counts, notice_stats

# Handed to the gateway, whatever it said since: what a person means by "sent".
SENT_STATES: Final = (
    NoticeStatus.sent,
    NoticeStatus.delivered,
    NoticeStatus.undelivered,
    NO_REPORT,
)
# Each counter, and the notice statuses its link filters by.
COUNTERS: Final[dict[str, tuple[str, ...]]] = {
    "sent": SENT_STATES,
    "delivered": (NoticeStatus.delivered,),
    "undelivered": (NoticeStatus.undelivered,),
    "failed": (NoticeStatus.failed,),
    "no_report": (NO_REPORT,),
    "received": (),
}


def today_span(now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """Today on ``zone``'s clock, midnight to midnight, as UTC instants (23 or 25 hours long
    on the days the clocks change)."""
    local = now.astimezone(zone).date()
    start = datetime.combine(local, time(0), zone)
    end = datetime.combine(local + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def counters(totals: Counts) -> dict[str, int]:
    """Counts ``totals`` as the dashboard's counters."""
    out = {
        name: sum(totals.statuses.get(status, 0) for status in statuses)
        for name, statuses in COUNTERS.items()
    }
    out["received"] = totals.received
    return out


@dataclass(frozen=True)
class Hour:
    start: datetime
    sent: int
    failed: int


@dataclass(frozen=True)
class Dashboard:
    counters: dict[str, int]
    hours: list[Hour]

    @property
    def busiest(self) -> int:
        return max([h.sent + h.failed for h in self.hours] + [1])


def dashboard(
    session: Session, *, now: datetime, zone: tzinfo, dlr_timeout: timedelta
) -> Dashboard:
    """Today's counters and the 24 hours before ``now``, one entry per hour, none left out."""
    start, end = today_span(now, zone)
    totals, _ = notice_stats(
        session, start=start, end=end, bucket="day", dlr_timeout=dlr_timeout, now=now, zone=zone
    )
    # Hours of the local clock (a zone may be half an hour off UTC), counted as instants.
    this_hour = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    first = this_hour.astimezone(UTC) - timedelta(hours=23)
    _, buckets = notice_stats(
        session,
        start=first,
        end=now,
        bucket="hour",
        dlr_timeout=dlr_timeout,
        now=now,
        zone=zone,
    )
    by_start = {datetime.fromisoformat(b.start).astimezone(UTC): b for b in buckets}
    hours = []
    for i in range(24):
        at = first + timedelta(hours=i)
        bucket = by_start.get(at)
        sent = sum(bucket.statuses.get(s, 0) for s in SENT_STATES) if bucket else 0
        failed = bucket.statuses.get(NoticeStatus.failed, 0) if bucket else 0
        hours.append(Hour(at, sent, failed))
    return Dashboard(counters(totals), hours)
