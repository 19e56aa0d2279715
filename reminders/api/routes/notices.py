"""Notices: every SMS the service sends or will send, with its delivery attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from reminders import notices
from reminders.api.deps import ReadKey, SchedulerDep, SessionDep, WriteKey
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, IdPath, Limit
from reminders.errors import InvalidField
from reminders.models import Notice, NoticeKind, NoticeStatus, Priority
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.common import MAX_ID, Page
from reminders.schemas.notices import AttemptOut, NoticeDetail, NoticeOut

router = APIRouter(prefix="/notices", tags=["notices"])


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise InvalidField("must include a UTC offset", field=field)
    return value


@router.get("")
def list_notices(
    session: SessionDep,
    _: ReadKey,
    status: Annotated[
        list[NoticeStatus] | None, Query(description="Repeat to match several.")
    ] = None,
    kind: Annotated[list[NoticeKind] | None, Query()] = None,
    priority: Annotated[Priority | None, Query(description="The lane.")] = None,
    since: Annotated[datetime | None, Query(description="send_at at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="send_at before (ISO 8601).")] = None,
    message_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    contact_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Page[NoticeOut]:
    rows, next_cursor = notices.list_notices(
        session,
        status=status or (),
        kind=kind or (),
        priority=priority,
        since=_aware(since, "since"),
        until=_aware(until, "until"),
        message_id=message_id,
        contact_id=contact_id,
        limit=limit,
        cursor=cursor,
    )
    items = [NoticeOut.model_validate(n, from_attributes=True) for n in rows]
    return Page[NoticeOut](items=items, next_cursor=next_cursor)


def _detail(session: SessionDep, notice: Notice) -> NoticeDetail:
    attempts = [
        AttemptOut.model_validate(a, from_attributes=True)
        for a in notices.attempts_of(session, notice.id or 0)
    ]
    return NoticeDetail(
        **NoticeOut.model_validate(notice, from_attributes=True).model_dump(), attempts=attempts
    )


@router.get("/{notice_id}")
def get_notice(notice_id: IdPath, session: SessionDep, _: ReadKey) -> NoticeDetail:
    return _detail(session, notices.get_notice(session, notice_id))


@router.post("/{notice_id}/cancel")
def cancel_notice(
    notice_id: IdPath, session: SessionDep, scheduler: SchedulerDep, _: WriteKey
) -> NoticeDetail:
    """Cancel a notice that is still scheduled; 409 if it already went out or ended."""
    notice = notices.cancel_notice(session, scheduler, notice_id)
    commit_and_schedule(session)
    return _detail(session, notice)
