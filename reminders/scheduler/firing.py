"""Firing a notice: claim it, hand it to the sender once, record what happened."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reminders.db import utcnow
from reminders.models import Attempt, Contact, Notice, NoticeStatus
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError

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


def fire(engine: Engine, sender: Sender, notice_id: int, *, default_sender_id: str | None) -> str | None:
    """Send one notice if it is still due to go; return its final status, or None if not ours."""
    with Session(engine, expire_on_commit=False) as session:
        if not claim(session, notice_id, utcnow()):
            return None
        notice = session.get(Notice, notice_id)
        assert notice is not None  # we just claimed it
        contact = session.get(Contact, notice.contact_id) if notice.contact_id else None
        if contact is not None and contact.opted_out:
            _finish(session, notice, NoticeStatus.suppressed, "the contact opted out")
            return notice.status
        sms = OutgoingSms(
            notice_id=notice_id,
            to=notice.phone,
            text=notice.text,
            sender_id=notice.sender_id or default_sender_id,
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
