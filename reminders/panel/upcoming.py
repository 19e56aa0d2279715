"""What the upcoming screen shows: the events and bills in a week or a month, and the planned
reminders (scheduled notices) that go out in it, day by day on the account's clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Final

from sqlmodel import Session, col, select

from reminders.models import PENDING, Anchor, AnchorKind, Notice
from reminders.panel.calendar import Day, Span, by_day

# A view shows this many of each; a busier week says so and links to the notices' list. More
# rows than a person reads cost the page its speed: 1,000 took 175 ms to lay out (p95, with a
# million notices in the account); 300 keep it well under the 150 ms goal.
MOST: Final = 300


@dataclass(frozen=True)
class Entry:
    at: datetime
    anchor: Anchor | None  # the event or bill: its own entry, or the one a reminder is about
    notice: Notice | None  # a planned reminder

    @property
    def kind(self) -> str:
        if self.notice is not None:
            return "reminder"
        assert self.anchor is not None
        return self.anchor.kind

    @property
    def amount(self) -> tuple[Decimal, str] | None:
        """A bill's amount and currency, as its billing system sent them."""
        if self.anchor is None or self.anchor.kind != AnchorKind.bill:
            return None
        try:
            return Decimal(str(self.anchor.data["amount"])), str(self.anchor.data["currency"])
        except (KeyError, ArithmeticError):
            return None

    @property
    def location(self) -> str:
        if self.anchor is None or self.anchor.kind != AnchorKind.event:
            return ""
        return str(self.anchor.data.get("location") or "")


@dataclass(frozen=True)
class Upcoming:
    days: list[Day[Entry]]
    more: bool  # past MOST anchors or reminders in the span: not all are shown


def upcoming(session: Session, shown: Span, zone: tzinfo) -> Upcoming:
    """The span's events and bills (not cancelled) and its scheduled notices, by day."""
    start, end = shown.bounds(zone)
    anchors = list(
        session.exec(
            select(Anchor)
            .where(col(Anchor.at) >= start, col(Anchor.at) < end, col(Anchor.cancelled).is_(False))
            .order_by(col(Anchor.at), col(Anchor.id))
            .limit(MOST + 1)
        )
    )
    notices = list(
        session.exec(
            select(Notice)
            .where(
                col(Notice.status).in_(PENDING),
                col(Notice.send_at) >= start,
                col(Notice.send_at) < end,
            )
            .order_by(col(Notice.send_at), col(Notice.id))
            .limit(MOST + 1)
        )
    )
    more = len(anchors) > MOST or len(notices) > MOST
    anchors, notices = anchors[:MOST], notices[:MOST]
    about = {a.id: a for a in anchors}
    wanted = {n.anchor_id for n in notices if n.anchor_id is not None} - set(about)
    if wanted:
        for anchor in session.exec(select(Anchor).where(col(Anchor.id).in_(wanted))):
            about[anchor.id] = anchor
    entries = [Entry(a.at, a, None) for a in anchors] + [
        Entry(n.send_at, about.get(n.anchor_id), n) for n in notices
    ]
    return Upcoming(by_day(entries, lambda e: e.at, shown, zone), more)
