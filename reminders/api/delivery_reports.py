"""What the gateways' delivery-report callbacks share."""

from __future__ import annotations

from fastapi import HTTPException
from sqlmodel import Session

from reminders.models import Notice, NoticeStatus


def refuse_while_sending(session: Session, notice_id: int) -> None:
    """Answer 503 to a report about a notice still ``sending``, so the gateway tries again.

    A report can beat our own record of the send: the gateway calls back within milliseconds,
    while the attempt is written only once the gateway has answered. The attempt and the
    notice's new status are written in one transaction, so ``sending`` means "not yet"; a 200
    would lose the report, a 503 makes the gateway call again later.
    """
    notice = session.get(Notice, notice_id)
    if notice is not None and notice.status == NoticeStatus.sending:
        raise HTTPException(503, "the notice is still being sent; try again")
