"""Events: what reminders are about, pushed by booking systems."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from reminders import events
from reminders.api.deps import ReadKey, SchedulerDep, SessionDep, SettingsDep, WriteKey
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, IdPath, Limit
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.common import Page
from reminders.schemas.events import EventCreate, EventOut, EventUpdate

router = APIRouter(prefix="/events", tags=["events"])


@router.post("", status_code=201)
def create_event(
    data: EventCreate,
    session: SessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    _: WriteKey,
) -> EventOut:
    """Store the event and plan its reminders by its policy; the parsed start is echoed back."""
    anchor, report = events.create_event(session, scheduler, data, settings=settings)
    commit_and_schedule(session)
    return events.event_out(session, anchor, report)


@router.get("")
def list_events(
    session: SessionDep,
    _: ReadKey,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    include_cancelled: Annotated[bool, Query()] = False,
) -> Page[EventOut]:
    rows, next_cursor = events.list_events(
        session, limit=limit, cursor=cursor, include_cancelled=include_cancelled
    )
    return Page[EventOut](items=events.events_out(session, rows), next_cursor=next_cursor)


@router.get("/{event_id}")
def get_event(event_id: IdPath, session: SessionDep, _: ReadKey) -> EventOut:
    return events.event_out(session, events.get_event(session, event_id))


@router.patch("/{event_id}")
def update_event(
    event_id: IdPath,
    data: EventUpdate,
    session: SessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    _: WriteKey,
) -> EventOut:
    """Change the event; pending reminders follow (a moved start moves them)."""
    anchor, report = events.update_event(session, scheduler, event_id, data, settings=settings)
    commit_and_schedule(session)
    return events.event_out(session, anchor, report)


@router.delete("/{event_id}")
def cancel_event(
    event_id: IdPath, session: SessionDep, scheduler: SchedulerDep, _: WriteKey
) -> EventOut:
    """Cancel the event and every reminder of it that has not gone out."""
    anchor, report = events.cancel_event(session, scheduler, event_id)
    commit_and_schedule(session)
    return events.event_out(session, anchor, report)
