"""iCalendar feeds kept in sync."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from reminders.api.deps import ReadKey, SessionDep, SettingsDep, WriteKey
from reminders.api.routes.common import IdPath
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.schemas.sources import SourceCreate, SourceOut, SourceUpdate, SyncOut
from reminders.sources import feeds
from reminders.sources.sync import refresh_delta, sync_source

router = APIRouter(prefix="/sources", tags=["sources"])


def _scheduler(request: Request) -> NoticeScheduler:
    scheduler: NoticeScheduler = request.app.state.scheduler
    return scheduler


@router.post("", status_code=201)
def create_source(
    data: SourceCreate, request: Request, session: SessionDep, settings: SettingsDep, _: WriteKey
) -> SourceOut:
    """Register a feed; it syncs within seconds, then every `refresh`."""
    source = feeds.create_source(
        session, data, default_zone=settings.timezone, allow_private=settings.allow_private_feeds
    )
    session.commit()  # before its job: the job store writes in a transaction of its own
    assert source.id is not None
    _scheduler(request).schedule_source(source.id, refresh_delta(source))
    return feeds.source_out(session, source)


@router.get("")
def list_sources(session: SessionDep, _: ReadKey) -> list[SourceOut]:
    return [feeds.source_out(session, s) for s in feeds.list_sources(session)]


@router.get("/{source_id}")
def get_source(source_id: IdPath, session: SessionDep, _: ReadKey) -> SourceOut:
    return feeds.source_out(session, feeds.get_source(session, source_id))


@router.patch("/{source_id}")
def update_source(
    source_id: IdPath,
    data: SourceUpdate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: WriteKey,
) -> SourceOut:
    source = feeds.update_source(
        session, source_id, data, allow_private=settings.allow_private_feeds
    )
    session.commit()
    _scheduler(request).schedule_source(source_id, refresh_delta(source))
    return feeds.source_out(session, source)


@router.delete("/{source_id}", status_code=204)
def delete_source(
    source_id: IdPath, request: Request, session: SessionDep, _: WriteKey
) -> Response:
    """Remove the feed; the reminders of its events that had not gone out are cancelled."""
    scheduler = _scheduler(request)
    feeds.delete_source(session, scheduler, source_id)
    commit_and_schedule(session)
    scheduler.unschedule_source(source_id)
    return Response(status_code=204)


@router.post("/{source_id}/sync")
def sync_now(
    source_id: IdPath, request: Request, session: SessionDep, settings: SettingsDep, _: WriteKey
) -> SyncOut:
    """Sync now and say what changed. A feed error is reported here and on the source (200)."""
    report = sync_source(session, _scheduler(request), source_id, settings=settings)
    source = feeds.get_source(session, source_id)
    values: dict[str, Any] = dict(report.__dict__)
    return SyncOut(**values, source=feeds.source_out(session, source))
