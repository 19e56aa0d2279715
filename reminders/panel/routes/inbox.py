"""The inbox: messages received and what they did, and the contacts who opted out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import RedirectResponse, Response

from reminders.errors import NotFound
from reminders.panel.inbox import opted_out, received, waiting
from reminders.panel.pages import Operator, Reader, account_session, check_csrf, render
from reminders.replies import mark_handled
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
        unclear = waiting(db)
    context = {
        "found": found,
        "opted_out": stopped,
        "waiting": unclear,
        "first_page": before is None,
    }
    return render(request, "inbox.html", who, context)


@router.post("/inbox/replies/{reply_id}/handled", dependencies=[Depends(check_csrf)])
def handled(
    request: Request, who: Operator, reply_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> Response:
    """An unclear answer a person dealt with (called the patient, moved the appointment)."""
    with account_session(request, who) as db:
        try:
            mark_handled(db, reply_id, True)
        except NotFound:
            return Response(status_code=404)
        db.commit()
    return RedirectResponse("/inbox", status_code=303)
