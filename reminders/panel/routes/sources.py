"""The sources screen: calendar feeds with their last sync, last error and next sync; adding
one (the API's rules, the private-address refusal included); "sync now" and what it changed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from reminders import policies
from reminders.errors import DomainError, NotFound
from reminders.models import Source
from reminders.panel.forms import messages_of, optional, row_id
from reminders.panel.pages import (
    Operator,
    Reader,
    Viewer,
    account_session,
    check_csrf,
    render,
    state_of,
)
from reminders.schemas.sources import SourceCreate
from reminders.sources import feeds
from reminders.sources.sync import SyncReport, refresh_delta, sync_source

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=2000)]


def _list_page(
    request: Request,
    who: Viewer,
    db: Session,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    settings = state_of(request).settings
    context = {
        "sources": [feeds.source_out(db, s) for s in feeds.list_sources(db)],
        "policies": [p.name for p in policies.list_policies(db)],
        "values": values
        or {"name": "", "url": "", "policy": "appointment", "refresh": "PT15M", "timezone": ""},
        "errors": errors or {},
        "default_zone": settings.timezone,
    }
    return render(request, "sources/list.html", who, context, status_code=status_code)


@router.get("/sources")
def source_list(request: Request, who: Reader) -> Response:
    with account_session(request, who) as db:
        return _list_page(request, who, db)


@router.post("/sources", dependencies=[Depends(check_csrf)])
def add_source(
    request: Request,
    who: Operator,
    name: Text = "",
    url: Text = "",
    policy: Text = "appointment",
    refresh: Text = "PT15M",
    timezone: Text = "",
) -> Response:
    """Register a feed as POST /sources does; its periodic sync is written after the commit."""
    settings = state_of(request).settings
    values = {"name": name, "url": url, "policy": policy, "refresh": refresh, "timezone": timezone}
    with account_session(request, who) as db:
        try:
            data = SourceCreate.model_validate(
                {
                    "name": name.strip(),
                    "url": url.strip(),
                    "policy": policy,
                    "refresh": refresh.strip(),
                    "timezone": optional(timezone),
                }
            )
            source = feeds.create_source(
                db,
                data,
                default_zone=settings.timezone,
                allow_private=settings.allow_private_feeds,
            )
        except (ValidationError, DomainError) as exc:
            db.rollback()
            errors = messages_of(exc, SourceCreate)
            return _list_page(request, who, db, values=values, errors=errors, status_code=422)
        db.commit()  # before its job: the job store writes in a transaction of its own
        assert source.id is not None
        request.app.state.scheduler.schedule_source(source.id, refresh_delta(source))
        return RedirectResponse(f"/sources/{source.id}", status_code=303)


def _source_page(
    request: Request,
    who: Viewer,
    db: Session,
    source_id: int,
    report: SyncReport | None = None,
) -> Response:
    source = db.get(Source, source_id)
    if source is None:
        return render(request, "not_found.html", who, {"back": "/sources"}, status_code=404)
    context: dict[str, Any] = {"source": feeds.source_out(db, source), "report": report}
    return render(request, "sources/detail.html", who, context)


@router.get("/sources/{source_id}")
def source_page(request: Request, who: Reader, source_id: str) -> Response:
    with account_session(request, who) as db:
        return _source_page(request, who, db, row_id(source_id))


@router.post("/sources/{source_id}/sync", dependencies=[Depends(check_csrf)])
def sync_now(request: Request, who: Operator, source_id: str) -> Response:
    """Sync now, as POST /sources/{id}/sync does, and show what changed (or the error)."""
    settings = state_of(request).settings
    with account_session(request, who) as db:
        key = row_id(source_id)
        if db.get(Source, key) is None:
            return _source_page(request, who, db, key)
        try:
            report = sync_source(db, request.app.state.scheduler, key, settings=settings)
        except NotFound:
            return _source_page(request, who, db, key)
        return _source_page(request, who, db, key, report)
