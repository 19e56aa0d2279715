"""The dashboard: today's counters, live, and the last 24 hours by hour."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from reminders.api.stopping import Stopping
from reminders.db import utcnow
from reminders.panel.dashboard import COUNTERS, counters, dashboard
from reminders.panel.pages import Reader, account_session, render, state_of

router = APIRouter(include_in_schema=False)
TICK = 2.0  # seconds between two updates of a live dashboard


def counter_links() -> dict[str, str]:
    """Each counter's notice list, filtered to it (received messages are in the inbox)."""
    links = {
        name: "/notices?" + urlencode([("status", s) for s in statuses] + [("day", "today")])
        for name, statuses in COUNTERS.items()
        if statuses
    }
    links["received"] = "/inbox"
    return links


@router.get("/")
def home(request: Request, who: Reader) -> Response:
    settings = state_of(request).settings
    with account_session(request, who) as db:
        board = dashboard(db, now=utcnow(), zone=settings.zone, dlr_timeout=settings.dlr_timeout)
    return render(request, "dashboard.html", who, {"board": board, "links": counter_links()})


@router.get("/dashboard/hours")
def hours(request: Request, who: Reader) -> Response:
    """The last 24 hours alone, for the dashboard to swap in when its counters change."""
    settings = state_of(request).settings
    with account_session(request, who) as db:
        board = dashboard(db, now=utcnow(), zone=settings.zone, dlr_timeout=settings.dlr_timeout)
    return render(request, "_hours.html", who, {"board": board})


@router.get("/live")
async def live(request: Request, who: Reader) -> Response:
    """Server-sent events: today's counters every ``TICK`` seconds, formatted for the viewer.

    A browser's EventSource sends the session cookie (it cannot send a header); the counts are
    shared by every viewer of the account (``api/live.py``), and between ticks the stream holds
    no thread and no connection."""
    totals = state_of(request).live_today
    assert totals is not None  # made by install()
    account_id = who.account.id
    assert account_id is not None

    stopping: Stopping = request.app.state.stopping

    async def events() -> AsyncIterator[str]:
        # A client that left is noticed by the response, and ends it; a stopping server ends
        # it here (api/stopping.py), and the browser's EventSource reconnects.
        while not stopping.begun:
            snapshot = await totals.latest(account_id)
            shown = {k: who.formats.number(v) for k, v in counters(snapshot.totals).items()}
            yield f"data: {json.dumps(shown)}\n\n"
            if await stopping.wait(TICK):
                return

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
