"""Reading and cancelling notices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, exists, func, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from reminders.db import in_chunks, utcnow
from reminders.errors import Conflict, NotFound
from reminders.models import PENDING, Attempt, Notice, NoticeStatus
from reminders.paging import page
from reminders.pending_jobs import JobScheduler, unschedule_after_commit
from reminders.webhooks.notice_events import notice_events


def notices_by_anchor(session: Session, anchor_ids: Sequence[int]) -> dict[int, list[Notice]]:
    """Each anchor's notices in send order, for events and bills as the API shows them."""
    found: dict[int, list[Notice]] = {i: [] for i in anchor_ids}
    for chunk in in_chunks(list(anchor_ids)):
        for notice in session.exec(
            select(Notice)
            .where(col(Notice.anchor_id).in_(chunk))
            .order_by(col(Notice.send_at), col(Notice.id))
        ):
            found[notice.anchor_id or 0].append(notice)
    return found


def list_notices(
    session: Session,
    *,
    status: Sequence[str] = (),
    kind: Sequence[str] = (),
    priority: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    message_id: int | None = None,
    contact_id: int | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Notice], str | None]:
    query = select(Notice)
    if status:
        query = query.where(col(Notice.status).in_(status))
    if kind:
        query = query.where(col(Notice.kind).in_(kind))
    if priority is not None:
        query = query.where(Notice.priority == priority)
    if since is not None:
        query = query.where(col(Notice.send_at) >= since)
    if until is not None:
        query = query.where(col(Notice.send_at) < until)
    if message_id is not None:
        query = query.where(Notice.message_id == message_id)
    if contact_id is not None:
        query = query.where(Notice.contact_id == contact_id)
    return page(session, query, Notice.id, limit=limit, cursor=cursor)


def get_notice(session: Session, notice_id: int) -> Notice:
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(f"no notice with id {notice_id}", field="id")
    return notice


def attempts_of(session: Session, notice_id: int) -> list[Attempt]:
    return list(
        session.exec(
            select(Attempt).where(Attempt.notice_id == notice_id).order_by(col(Attempt.id))
        )
    )


def cancel_notice(
    session: Session,
    scheduler: JobScheduler | None,
    notice_id: int,
    *,
    reason: str = "cancelled through the API",
) -> Notice:
    """Cancel a notice that has not gone out yet; a conditional update, so it races safely.

    Flushed; its job is dropped after the caller's commit."""
    now = utcnow()
    result = session.exec(  # type: ignore[call-overload]
        update(Notice)
        .where(col(Notice.id) == notice_id, col(Notice.status).in_(PENDING))
        .values(status=NoticeStatus.cancelled, status_reason=reason, updated_at=now)
    )
    notice = get_notice(session, notice_id)
    session.refresh(notice)
    if not result.rowcount:
        raise Conflict(
            f"notice {notice_id} is {notice.status}; "
            "only a notice not sent yet (scheduled or due) can be cancelled",
            field="status",
        )
    unschedule_after_commit(session, scheduler, [notice_id])
    return notice


def suppress_pending(session: Session, which: ColumnElement[bool], *, reason: str) -> list[int]:
    """Suppress the scheduled notices ``which`` selects; return their ids (their jobs can go).

    Flushed, not committed, with their ``notice.suppressed`` events. A notice claimed
    meanwhile is left to its sender.
    """
    now = utcnow()
    result = session.execute(
        update(Notice)
        .where(which, col(Notice.status).in_(PENDING))
        .values(status=NoticeStatus.suppressed, status_reason=reason, updated_at=now)
        .returning(col(Notice.id), col(Notice.account_id))
    )
    owners = {int(notice_id): int(account_id) for notice_id, account_id in result}
    changed = {i: (a, NoticeStatus.suppressed.value) for i, a in owners.items()}
    notice_events(session.connection(), changed, now)
    return list(owners)


def move_pending(
    session: Session, contact_id: int, old_phone: str, new_phone: str
) -> tuple[list[int], list[int]]:
    """Give the contact's scheduled notices to its new number; return (moved, cancelled) ids.

    A natural key ends with its phone (``message:<id>:<phone>``, ``anchor:<id>:<step>:<phone>``)
    and moves with it, so planning again finds the notice under the new number. When the new
    number already has that key (it was a recipient of the same message or step, on its own or
    as another contact), the contact's notice is cancelled instead: the number gets it once.
    Notices already claimed or sent stay as they were. Flushed, not committed; a moved notice
    keeps its id, so its job stays valid.
    """
    now = utcnow()
    mine = and_(
        col(Notice.contact_id) == contact_id,
        col(Notice.phone) == old_phone,
        col(Notice.status).in_(PENDING),
    )
    keyed = col(Notice.key).endswith(":" + old_phone, autoescape=True)
    prefix = func.substr(Notice.key, 1, func.length(Notice.key) - len(old_phone), type_=String)
    new_key = prefix.concat(new_phone)
    other = aliased(Notice)
    taken = exists().where(col(other.key) == new_key)
    cancelled = session.execute(
        update(Notice)
        .where(mine, keyed, taken)
        .values(
            status=NoticeStatus.cancelled,
            status_reason=f"the contact's new number {new_phone} already has this notice",
            updated_at=now,
        )
        .returning(col(Notice.id))
    )
    cancelled_ids = [int(row[0]) for row in cancelled]
    # Keys without a phone (a refused payment's) keep their key and change their phone only.
    rekeyed = session.execute(
        update(Notice)
        .where(mine, keyed)
        .values(key=new_key, phone=new_phone, updated_at=now)
        .returning(col(Notice.id))
    )
    moved = [int(row[0]) for row in rekeyed]
    rephoned = session.execute(
        update(Notice).where(mine).values(phone=new_phone, updated_at=now).returning(col(Notice.id))
    )
    moved.extend(int(row[0]) for row in rephoned)
    return moved, cancelled_ids
