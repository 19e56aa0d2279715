"""Messages recipients sent us."""

from __future__ import annotations

from fastapi import APIRouter

from reminders import inbound
from reminders.api.deps import ReadKey, SessionDep
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, Limit
from reminders.schemas.common import Page
from reminders.schemas.inbound import InboundOut

router = APIRouter(prefix="/inbound", tags=["inbound"])


@router.get("")
def list_inbound(
    session: SessionDep, _: ReadKey, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Page[InboundOut]:
    rows, next_cursor = inbound.list_inbound(session, limit=limit, cursor=cursor)
    items = [InboundOut.model_validate(r, from_attributes=True) for r in rows]
    return Page[InboundOut](items=items, next_cursor=next_cursor)
