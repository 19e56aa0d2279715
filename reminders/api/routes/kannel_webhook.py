"""Kannel's delivery reports: a GET on the dlr-url the Kannel sender gave with each message.

Kannel cannot sign a request, so the dlr-url carries ``settings.webhook_secret`` and the
notice id; Kannel fills in ``type`` (%d), ``smsc`` (%i) and ``reply`` (%A, the SMSC's words).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse

from reminders.api.deps import SessionDep, SettingsDep
from reminders.models import Notice, NoticeStatus
from reminders.sender.kannel import DLR_PATH, message_id
from reminders.sender.reports import DeliveryReport, ReportStatus, apply_report

router = APIRouter(prefix=DLR_PATH.removesuffix("/dlr"), tags=["webhooks"])

# Kannel's DLR types; 4 (buffered by the SMSC) says nothing a notice can record.
STATUSES: Final[dict[int, ReportStatus]] = {
    1: "delivered",
    2: "undelivered",
    8: "sent",  # accepted by the SMSC
    16: "failed",  # rejected by the SMSC
}


@router.get("/dlr", response_class=PlainTextResponse)
def kannel_dlr(
    session: SessionDep,
    settings: SettingsDep,
    notice: Annotated[int, Query(gt=0, description="Our notice id, from the dlr-url.")],
    secret: Annotated[str, Query(description="REMINDERS_WEBHOOK_SECRET, from the dlr-url.")],
    type: Annotated[int, Query(description="Kannel's DLR type (%d).")],  # noqa: A002
    smsc: Annotated[str, Query(description="The SMSC id (%i).")] = "",
    reply: Annotated[str, Query(description="The SMSC's reply (%A).")] = "",
) -> PlainTextResponse:
    """Apply one delivery report; the body is for Kannel's log only."""
    expected = settings.webhook_secret
    if expected is None or not expected.get_secret_value():
        raise HTTPException(404, "the kannel delivery reports are not configured")
    if not hmac.compare_digest(secret.encode(), expected.get_secret_value().encode()):
        raise HTTPException(403, "the secret does not match")
    status = STATUSES.get(type)
    if status is None:
        return PlainTextResponse("ignored")
    # The report can beat the sender's own record: Kannel calls back within milliseconds, while
    # the attempt is written only after Kannel answered. The attempt and the notice's new
    # status are written in one transaction, so "sending" means "not yet": a 503 makes Kannel
    # try again later (http-request-retry), where a 200 would lose the report.
    current = session.get(Notice, notice)
    if current is not None and current.status == NoticeStatus.sending:
        raise HTTPException(503, "the notice is still being sent; try again")
    failed = status in ("undelivered", "failed")
    report = DeliveryReport(
        provider="kannel",
        provider_message_id=message_id(notice),
        status=status,
        notice_id=notice,
        error_code=str(type) if failed else None,
        error=(reply or f"Kannel DLR type {type} from {smsc or 'the SMSC'}") if failed else None,
    )
    return PlainTextResponse(apply_report(session, report))
