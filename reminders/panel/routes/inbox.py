"""The inbox: messages received and what they did, and the contacts who opted out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from reminders.panel.inbox import opted_out, received
from reminders.panel.pages import Reader, account_session, render
from reminders.schemas.common import MAX_ID

router = APIRouter(include_in_schema=False)


@router.get("/inbox")
def inbox(
    request: Request,
    who: Reader,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    with account_session(request, who) as db:
        found = received(db, before=before)
        stopped = opted_out(db)
    context = {"found": found, "opted_out": stopped, "first_page": before is None}
    return render(request, "inbox.html", who, context)
