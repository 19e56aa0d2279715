"""Messages recipients sent us."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from reminders import inbound
from reminders.api.deps import ReadKey, SessionDep
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, Limit
from reminders.schemas import Page

router = APIRouter(prefix="/inbound", tags=["inbound"])


class InboundOut(BaseModel):
    id: int
    provider: str
    provider_message_id: str | None
    from_phone: str
    to: str | None
    text: str
    action: str | None
    contact_id: int | None
    received_at: datetime


@router.get("")
def list_inbound(
    session: SessionDep, _: ReadKey, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Page[InboundOut]:
    rows, next_cursor = inbound.list_inbound(session, limit=limit, cursor=cursor)
    items = [InboundOut.model_validate(r, from_attributes=True) for r in rows]
    return Page[InboundOut](items=items, next_cursor=next_cursor)
