"""Delivery reports: what gateways say after they accepted a message.

Reports move a notice forward only: a late "sent" never overwrites "delivered", a final status
(delivered, undelivered, failed) is never changed, and the same report twice changes nothing.
Only a send the gateway took can be reported on: a report moves a notice that is being sent,
was sent or whose send is unknown, and only through its latest send, never an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from reminders.db import utcnow
from reminders.models import Attempt, Notice, NoticeStatus
from reminders.storable import UNREADABLE, storable
from reminders.webhooks.notice_events import notice_events

ReportStatus = Literal["sent", "delivered", "undelivered", "failed"]
# How far along a notice is; a report may only move it to a higher rank. A notice in any other
# status (scheduled for a retry, cancelled, expired...) has no send a report could be about.
RANK = {
    NoticeStatus.sending: 1,
    NoticeStatus.unknown: 1,
    NoticeStatus.sent: 2,
    NoticeStatus.delivered: 3,
    NoticeStatus.undelivered: 3,
    NoticeStatus.failed: 3,
}


@dataclass(frozen=True)
class DeliveryReport:
    provider: str
    provider_message_id: str
    status: ReportStatus
    notice_id: int | None = None  # our own id, when the gateway echoes it back
    error_code: str | None = None
    error: str | None = None
    reference: str | None = None  # the gateway's or network's own id for the message


def apply_report(session: Session, report: DeliveryReport, *, now: datetime | None = None) -> str:
    """Record the report; returns "applied", "ignored" (stale or repeated) or "unknown".

    Flushed, the caller commits: an "ignored" report may still have brought the gateway's
    reference for the attempt, which is kept."""
    now = now or utcnow()
    report = replace(  # a NUL the gateway let through: PostgreSQL cannot even compare it
        report,
        provider_message_id=storable(report.provider_message_id),
        error_code=storable(report.error_code),
        error=storable(report.error, mark=UNREADABLE),
        reference=storable(report.reference),
    )
    query = select(Attempt).where(
        Attempt.provider == report.provider,
        Attempt.provider_message_id == report.provider_message_id,
    )
    if report.notice_id is not None:
        query = query.where(Attempt.notice_id == report.notice_id)
    attempt = session.exec(query.order_by(col(Attempt.id).desc())).first()
    if attempt is None:
        return "unknown"
    notice = session.get(Notice, attempt.notice_id)
    if notice is None:
        return "unknown"
    if report.reference and not attempt.gateway_reference:
        # Kept whatever the status says: the report that carries it may be a stale one.
        attempt.gateway_reference = report.reference[:200]
        session.add(attempt)
    new = NoticeStatus(report.status)
    current = NoticeStatus(notice.status)
    if (
        current not in RANK
        or RANK.get(new, 0) <= RANK[current]
        or attempt.id != _latest_attempt_id(session, notice.id)
    ):
        session.flush()  # the reference, if this report brought one
        return "ignored"
    # Conditional on the status we read: two reports racing cannot both move it.
    result = session.exec(  # type: ignore[call-overload]
        update(Notice)
        .where(col(Notice.id) == notice.id, col(Notice.status) == current)
        .values(
            status=new,
            status_reason=report.error
            if new in (NoticeStatus.undelivered, NoticeStatus.failed)
            else notice.status_reason,
            updated_at=now,
        )
    )
    if not result.rowcount:
        session.flush()  # nothing was updated; the reference, if any, is still worth keeping
        return "ignored"
    attempt.status = new
    if new == NoticeStatus.delivered:
        attempt.delivered_at = now
    if report.error_code or report.error:
        attempt.error_code = report.error_code
        attempt.error = (report.error or "")[:2000] or None
    session.add(attempt)
    session.flush()
    assert notice.id is not None
    notice_events(session.connection(), {notice.id: (notice.account_id, new.value)}, now)
    return "applied"


def _latest_attempt_id(session: Session, notice_id: int | None) -> int | None:
    return session.exec(select(func.max(Attempt.id)).where(Attempt.notice_id == notice_id)).one()
