"""Firing a notice: claim it, hand it to the sender once, record what happened."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reminders.db import utcnow
from reminders.models import Anchor, Attempt, Contact, Notice, NoticeKind, NoticeStatus
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError
from reminders.settings import Settings
from reminders.templates import RenderError, render

log = logging.getLogger(__name__)


def claim(session: Session, notice_id: int, now: datetime) -> bool:
    """Move the notice from ``scheduled`` to ``sending``; False if someone else got there first.

    The conditional update is what makes a notice go out at most once: a second firing (a retry,
    a restart, a second scheduler) finds it no longer ``scheduled`` and does nothing.
    """
    result = session.exec(  # type: ignore[call-overload]
        update(Notice)
        .where(col(Notice.id) == notice_id, col(Notice.status) == NoticeStatus.scheduled)
        .values(status=NoticeStatus.sending, updated_at=now)
    )
    session.commit()
    return bool(result.rowcount)


BILL_GRACE = timedelta(days=1)


def lateness(notice: Notice, anchor: Anchor | None, now: datetime, grace: timedelta) -> str | None:
    """Why a notice that fires at ``now`` is no longer worth sending, or None if it still is.

    A notice fires late when the service was down or busy when it came due. An event reminder
    is useful until the event starts and within the grace period; a bill notice for a day.
    """
    late_by = now - notice.send_at
    if notice.kind == NoticeKind.event_reminder and anchor is not None and now >= anchor.at:
        return "the event had already started when the reminder could be sent"
    limit = BILL_GRACE if notice.kind in (NoticeKind.bill_due, NoticeKind.bill_overdue) else grace
    if late_by > limit:
        return f"it came due {_human(late_by)} earlier, past the {_human(limit)} it may be late"
    return None


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def template_context(
    notice: Notice, contact: Contact | None, anchor: Anchor | None, zone: ZoneInfo
) -> dict[str, Any]:
    """What a policy's template can use; times are on the recipient's clock."""
    context: dict[str, Any] = {
        "phone": notice.phone,
        "lang": contact.language if contact else "bg",
        "name": contact.name if contact else "",
        "first_name": contact.name.split()[0] if contact and contact.name.split() else "",
        "contact": dict(contact.attributes) if contact else {},
    }
    if anchor is not None:
        start = anchor.at.astimezone(zone)
        data = dict(anchor.data)
        context.update(
            {
                "title": anchor.title,
                "start": start,
                "date": start.strftime("%d.%m.%Y"),
                "time": "" if anchor.all_day else start.strftime("%H:%M"),
                "location": data.get("location", ""),
                "amount": data.get("amount", ""),
                "currency": data.get("currency", ""),
                "data": data,
            }
        )
    return context


def fire(engine: Engine, sender: Sender, notice_id: int, *, settings: Settings) -> str | None:
    """Send one notice if it is still due to go; return its final status, or None if not ours."""
    with Session(engine, expire_on_commit=False) as session:
        now = utcnow()
        if not claim(session, notice_id, now):
            return None
        notice = session.get(Notice, notice_id)
        assert notice is not None  # we just claimed it
        contact = session.get(Contact, notice.contact_id) if notice.contact_id else None
        anchor = session.get(Anchor, notice.anchor_id) if notice.anchor_id else None
        late = lateness(notice, anchor, now, settings.late_grace_delta)
        if late is not None:
            _finish(session, notice, NoticeStatus.expired, late)
            return notice.status
        if contact is not None and contact.opted_out:
            _finish(session, notice, NoticeStatus.suppressed, "the contact opted out")
            return notice.status
        text = notice.text
        if notice.is_template:
            zone = ZoneInfo(
                (anchor.timezone if anchor and anchor.all_day else None)
                or (contact.timezone if contact else None)
                or settings.timezone
            )
            try:
                text = render(notice.text, template_context(notice, contact, anchor, zone))
            except RenderError as exc:
                session.add(
                    Attempt(
                        notice_id=notice_id,
                        provider=sender.name,
                        status="failed",
                        error_code="template",
                        error=str(exc)[:2000],
                        submitted_at=now,
                    )
                )
                _finish(session, notice, NoticeStatus.failed, str(exc)[:500])
                return notice.status
        sms = OutgoingSms(
            notice_id=notice_id,
            to=notice.phone,
            text=text,
            sender_id=notice.sender_id or settings.sender_id,
        )

    try:
        accepted: Accepted | None = sender.send(sms)
        error: SendError | None = None
    except SendError as exc:
        accepted, error = None, exc
    except Exception as exc:  # a sender bug must not leave the notice in "sending" forever
        log.exception("sender %s raised while sending notice %s", sender.name, notice_id)
        accepted, error = None, SendError(f"{type(exc).__name__}: {exc}", permanent=False)

    with Session(engine, expire_on_commit=False) as session:
        notice = session.get(Notice, notice_id)
        assert notice is not None
        now = utcnow()
        if accepted is not None:
            session.add(
                Attempt(
                    notice_id=notice_id,
                    provider=sender.name,
                    provider_message_id=accepted.provider_message_id,
                    status=accepted.status,
                    submitted_at=now,
                    delivered_at=now if accepted.status == "delivered" else None,
                )
            )
            notice.sent_at = now
            _finish(session, notice, NoticeStatus(accepted.status), None)
        else:
            assert error is not None
            session.add(
                Attempt(
                    notice_id=notice_id,
                    provider=sender.name,
                    status=NoticeStatus.failed,
                    error_code=error.code,
                    error=error.message[:2000],
                    submitted_at=now,
                )
            )
            _finish(session, notice, NoticeStatus.failed, error.message[:500])
        return notice.status


def _finish(session: Session, notice: Notice, status: NoticeStatus, reason: str | None) -> None:
    notice.status = status
    notice.status_reason = reason
    notice.updated_at = utcnow()
    session.add(notice)
    session.commit()
