"""Answers to reminders that asked for one: confirmed, cancelled, or unclear for a person."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from reminders import replies
from reminders.api.deps import ReadKey, SessionDep, WriteKey
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, IdPath, Limit
from reminders.models import Reply, ReplyState
from reminders.schemas.common import Page
from reminders.schemas.replies import ReplyOut, ReplyUpdate

router = APIRouter(prefix="/replies", tags=["replies"])


def reply_out(reply: Reply) -> ReplyOut:
    return ReplyOut(
        **reply.model_dump(exclude={"account_id", "anchor_id"}), event_id=reply.anchor_id
    )


@router.get("")
def list_replies(
    session: SessionDep,
    _: ReadKey,
    state: Annotated[ReplyState | None, Query()] = None,
    handled: Annotated[bool | None, Query(description="false: those waiting for a person.")] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Page[ReplyOut]:
    """Oldest first; `?state=unclear&handled=false` is the inbox of answers nobody read yet."""
    rows, next_cursor = replies.list_replies(
        session, state=state, handled=handled, limit=limit, cursor=cursor
    )
    return Page[ReplyOut](items=[reply_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/{reply_id}")
def get_reply(reply_id: IdPath, session: SessionDep, _: ReadKey) -> ReplyOut:
    return reply_out(replies.get_reply(session, reply_id))


@router.patch("/{reply_id}")
def update_reply(reply_id: IdPath, data: ReplyUpdate, session: SessionDep, _: WriteKey) -> ReplyOut:
    """Mark it handled (a person read it and did what it asked), or not."""
    reply = replies.mark_handled(session, reply_id, data.handled)
    session.commit()
    return reply_out(reply)
