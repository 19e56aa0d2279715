"""Upcoming: a week or a month of events, bills and their planned reminders; an operator
cancels one planned reminder as the API's notice cancel does."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from reminders import notices
from reminders.api.routes.common import IdPath
from reminders.db import utcnow
from reminders.errors import Conflict, NotFound
from reminders.panel.calendar import VIEWS, DayNames, Span, View, parse_day, span
from reminders.panel.errors import not_found
from reminders.panel.notice_list import CANCELLED_HERE
from reminders.panel.pages import (
    Operator,
    Reader,
    Viewer,
    account_session,
    check_csrf,
    render,
)
from reminders.panel.upcoming import upcoming
from reminders.pending_jobs import commit_and_schedule

router = APIRouter(include_in_schema=False)


def _link(view: str, day: str) -> str:
    return "/upcoming?" + urlencode({"view": view, "day": day})


def _page(
    request: Request,
    who: Viewer,
    shown: Span,
    *,
    error: str | None = None,
    asked: str | None = None,
    cancelled: bool = False,
    status_code: int = 200,
) -> Response:
    with account_session(request, who) as db:
        found = upcoming(db, shown, who.formats.zone)
    context = {
        "shown": shown,
        "found": found,
        "today": utcnow().astimezone(who.formats.zone).date(),
        "link": _link,
        "names": DayNames(who.formats.locale),
        "error": error,  # "day": the day asked for is not one; "gone": no longer planned
        "asked": asked if asked is not None else shown.first.isoformat(),
        "cancelled": cancelled,
    }
    return render(request, "upcoming.html", who, context, status_code=status_code)


@router.get("/upcoming")
def upcoming_page(
    request: Request,
    who: Reader,
    view: Annotated[str, Query(max_length=10)] = "week",
    day: Annotated[str | None, Query(max_length=20)] = None,
    cancelled: Annotated[bool, Query()] = False,
) -> Response:
    today = utcnow().astimezone(who.formats.zone).date()
    chosen: View = "month" if view == "month" else "week"
    try:
        if view not in VIEWS:
            raise ValueError(view)
        picked = parse_day(day, today)
    except ValueError:
        shown = span(chosen, today)
        return _page(request, who, shown, error="day", asked=day or "", status_code=422)
    return _page(request, who, span(chosen, picked), asked=day, cancelled=cancelled)


@router.post("/upcoming/notices/{notice_id}/cancel", dependencies=[Depends(check_csrf)])
def cancel_reminder(
    request: Request,
    notice_id: IdPath,
    who: Operator,
    view: Annotated[str, Form(max_length=10)] = "week",
    day: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Cancel one planned reminder (a scheduled notice), as ``POST /notices/{id}/cancel``."""
    scheduler = request.app.state.scheduler
    today = utcnow().astimezone(who.formats.zone).date()
    try:
        picked = parse_day(day, today)
    except ValueError:
        picked = today
    chosen: View = "month" if view == "month" else "week"
    with account_session(request, who) as db:
        try:
            notices.cancel_notice(db, scheduler, notice_id, reason=CANCELLED_HERE)
            commit_and_schedule(db)
        except NotFound:
            db.rollback()
            return not_found(request, who)
        except Conflict:
            db.rollback()
            conflict = True
        else:
            conflict = False
    if request.headers.get("hx-request"):
        # htmx swaps the row for its outcome; a refusal is shown in the row too (htmx swaps
        # nothing on a 4xx), and the page without JavaScript answers 409 below.
        context = {"notice_id": notice_id, "gone": conflict}
        return render(request, "upcoming_row.html", who, context)
    if conflict:
        return _page(request, who, span(chosen, picked), error="gone", status_code=409)
    target = _link(chosen, picked.isoformat()) + "&cancelled=true"
    return RedirectResponse(target, status_code=303)
