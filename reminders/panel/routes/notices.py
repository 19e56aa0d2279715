"""The notice list (filters, keyset pages, bulk cancel, CSV) and a notice's own page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from reminders.db import utcnow
from reminders.panel.notice_list import (
    CSV_COLUMNS,
    KINDS,
    LANES,
    STATUSES,
    BadFilter,
    Filters,
    cancel_many,
    cancel_matching,
    count_matching,
    csv_row,
    every_match,
    list_page,
    parse_filters,
    scheduled_of,
)
from reminders.panel.pages import (
    Operator,
    Reader,
    Viewer,
    account_session,
    check_csrf,
    render,
    state_of,
)
from reminders.panel.timeline import story
from reminders.pending_jobs import commit_and_schedule

router = APIRouter(include_in_schema=False)


def _filters(request: Request, who: Viewer) -> Filters:
    """The list's filters from the request's query string."""
    return _read({key: request.query_params.getlist(key) for key in request.query_params}, who)


def _read(params: Mapping[str, Sequence[str]], who: Viewer) -> Filters:
    """Filters from query parameters, "today" on the account's clock."""
    return parse_filters(params, utcnow().astimezone(who.formats.zone).date())


def _list(
    request: Request, who: Viewer, filters: Filters, *, status_code: int = 200, **extra: object
) -> Response:
    settings = state_of(request).settings
    after = request.query_params.get("after")
    try:
        with account_session(request, who) as db:
            page = list_page(
                db, filters, zone=who.formats.zone, dlr_timeout=settings.dlr_timeout, after=after
            )
    except BadFilter as bad:
        return _refused(request, who, bad)
    context = {
        "page": page,
        "filters": filters,
        "statuses": STATUSES,
        "kinds": KINDS,
        "lanes": LANES,
        "query": filters.query_pairs(),
        "error": None,
        "cancelled": None,
        **extra,
    }
    return render(request, "notices.html", who, context, status_code=status_code)


def _refused(request: Request, who: Viewer, bad: BadFilter) -> Response:
    context: dict[str, object] = {
        "page": None,
        "filters": Filters(),
        "statuses": STATUSES,
        "kinds": KINDS,
        "lanes": LANES,
        "query": [],
        "error": bad,
        "cancelled": None,
    }
    return render(request, "notices.html", who, context, status_code=422)


@router.get("/notices")
def notices(request: Request, who: Reader) -> Response:
    try:
        filters = _filters(request, who)
    except BadFilter as bad:
        return _refused(request, who, bad)
    done = request.query_params.get("cancelled", "")
    return _list(request, who, filters, cancelled=int(done) if done.isdigit() else None)


@router.post("/notices/cancel", dependencies=[Depends(check_csrf)])
def cancel(
    request: Request,
    who: Operator,
    notice: Annotated[list[int], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    back: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Cancel the ticked notices that are still scheduled; back to the list they came from."""
    scheduler = request.app.state.scheduler
    with account_session(request, who) as db:
        count = cancel_many(db, scheduler, [n for n in notice if 0 < n < 2**31][:1000])
        commit_and_schedule(db)
    # Back to the same filters, read again rather than echoed: nothing else gets into the URL.
    try:
        kept = _read(parse_qs(back), who).query_pairs()
    except BadFilter:
        kept = []
    query = urlencode([*kept, ("cancelled", str(count))])
    return RedirectResponse(f"/notices?{query}", status_code=303)


@router.get("/notices/cancel-all")
def cancel_all_form(request: Request, who: Operator) -> Response:
    """How many scheduled notices the filter holds, and the button that cancels them all."""
    try:
        filters = _filters(request, who)
    except BadFilter as bad:
        return _refused(request, who, bad)
    settings = state_of(request).settings
    with account_session(request, who) as db:
        count = count_matching(
            db, scheduled_of(filters), zone=who.formats.zone, dlr_timeout=settings.dlr_timeout
        )
    context = {"count": count, "query": filters.query_pairs()}
    return render(request, "notices_cancel_all.html", who, context)


@router.post("/notices/cancel-all", dependencies=[Depends(check_csrf)])
def cancel_all(
    request: Request,
    who: Operator,
    back: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Cancel every scheduled notice of the filter (``back``, read again as the list reads it)."""
    try:
        filters = _read(parse_qs(back), who)
    except BadFilter as bad:
        return _refused(request, who, bad)
    settings = state_of(request).settings
    with account_session(request, who) as db:
        count = cancel_matching(
            db,
            request.app.state.scheduler,
            filters,
            zone=who.formats.zone,
            dlr_timeout=settings.dlr_timeout,
        )
    query = urlencode([*filters.query_pairs(), ("cancelled", str(count))])
    return RedirectResponse(f"/notices?{query}", status_code=303)


@router.get("/notices.csv")
def notices_csv(request: Request, who: Reader) -> Response:
    """Every notice of the current filter, as CSV (times on the account's clock)."""
    try:
        filters = _filters(request, who)
    except BadFilter as bad:
        return _refused(request, who, bad)
    settings = state_of(request).settings
    zone = who.formats.zone

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        with account_session(request, who) as db:
            for n, notice in enumerate(
                every_match(db, filters, zone=zone, dlr_timeout=settings.dlr_timeout), 1
            ):
                writer.writerow(csv_row(notice, zone))
                if n % 500 == 0:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="notices.csv"'},
    )


@router.get("/notices/{notice_id}")
def notice_page(request: Request, notice_id: str, who: Reader) -> Response:
    if not notice_id.isdigit() or not 0 < int(notice_id) < 2**31:
        return render(request, "not_found.html", who, status_code=404)
    with account_session(request, who) as db:
        found = story(db, int(notice_id), state_of(request).settings)
    if found is None:  # another account's notice is not found either: nothing tells them apart
        return render(request, "not_found.html", who, status_code=404)
    return render(request, "notice.html", who, {"story": found})
