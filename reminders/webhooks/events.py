"""The event types an endpoint may subscribe to, and the JSON each delivery carries.

A payload is ``{"type", "timestamp", "data"}``; ``data`` holds the ids (and ``external_id``s) the
customer's own system knows: the notice, its message or event or bill, its contact, the phone,
the status and the error, whichever apply.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final


class EventType(StrEnum):
    notice_sent = "notice.sent"
    notice_delivered = "notice.delivered"
    notice_undelivered = "notice.undelivered"
    notice_failed = "notice.failed"
    notice_expired = "notice.expired"
    notice_suppressed = "notice.suppressed"
    inbound_received = "inbound.received"
    contact_opted_out = "contact.opted_out"
    contact_opted_in = "contact.opted_in"
    # Answers to reminders that asked for one (confirm or cancel by reply); defined now so
    # that endpoints can subscribe before replies are built.
    reply_confirmed = "reply.confirmed"
    reply_cancelled = "reply.cancelled"
    reply_unclear = "reply.unclear"


# An endpoint's ``events`` holding this alone: every type, those added later included.
ALL: Final = "*"

# The notice statuses that are events, and theirs.
NOTICE_EVENTS: Final[dict[str, EventType]] = {
    "sent": EventType.notice_sent,
    "delivered": EventType.notice_delivered,
    "undelivered": EventType.notice_undelivered,
    "failed": EventType.notice_failed,
    "expired": EventType.notice_expired,
    "suppressed": EventType.notice_suppressed,
}


def subscribed(events: list[str], event_type: str) -> bool:
    """Whether an endpoint with these ``events`` gets ``event_type``."""
    return ALL in events or event_type in events


def payload(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The body of the delivery: compact JSON, UTF-8 kept (a name in Cyrillic stays readable)."""
    document = {"type": event_type, "timestamp": iso(at), "data": data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def iso(at: datetime | None) -> str | None:
    """A UTC instant as ``2026-12-10T08:30:00.123Z``; None stays None."""
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
