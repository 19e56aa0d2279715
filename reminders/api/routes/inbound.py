"""Messages recipients sent us: read, or handed in by a customer's own system."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter
from sqlmodel import select

from reminders import inbound
from reminders.api.deps import ReadKey, SchedulerDep, SessionDep, SettingsDep, WriteKey
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, Limit
from reminders.models import Reply, ReplyState
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.common import Page
from reminders.schemas.inbound import InboundCreate, InboundOut, InboundReceived

router = APIRouter(prefix="/inbound", tags=["inbound"])
# The provider of messages handed in through the API.
API_PROVIDER = "api"


@router.get("")
def list_inbound(
    session: SessionDep, _: ReadKey, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Page[InboundOut]:
    rows, next_cursor = inbound.list_inbound(session, limit=limit, cursor=cursor)
    items = [InboundOut.model_validate(r, from_attributes=True) for r in rows]
    return Page[InboundOut](items=items, next_cursor=next_cursor)


@router.post("", status_code=201)
def hand_in(
    data: InboundCreate,
    session: SessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    _: WriteKey,
) -> InboundReceived:
    """An SMS a recipient sent, received by your own system: kept and acted on as a gateway's
    (STOP opts out, START opts in, an answer to a reminder confirms or cancels). The same one
    handed in again (the same `id`, or the same phone, text and `received_at`) is kept once."""
    message = inbound.receive(
        session,
        scheduler,
        provider=API_PROVIDER,
        from_phone=data.from_,
        to=data.to,
        text=data.text,
        provider_message_id=_identity(data),
        received_at=data.received_at,
        settings=settings,
    )
    commit_and_schedule(session)
    reply = session.exec(select(Reply.state).where(Reply.inbound_id == message.id)).first()
    return InboundReceived(
        **InboundOut.model_validate(message, from_attributes=True).model_dump(),
        reply=ReplyState(reply) if reply else None,
    )


def _identity(data: InboundCreate) -> str | None:
    """What makes a handed-in message the same one again: its id, else (with a time given)
    who sent what when. Without either, two "1"s from one phone are two messages."""
    if data.id is not None:
        return f"id:{data.id}"
    if data.received_at is None:
        return None
    seen = f"{data.from_}\n{data.to or ''}\n{data.text}\n{data.received_at.timestamp()}"
    return "sha256:" + hashlib.sha256(seen.encode()).hexdigest()[:48]
