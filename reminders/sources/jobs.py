"""The periodic feed job, at a stable import path (APScheduler stores the path)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session

from reminders.db import utcnow
from reminders.models import Source
from reminders.scheduler.jobs import worker_scheduler
from reminders.sources.sync import sync_source

if TYPE_CHECKING:
    from reminders.scheduler.notice_scheduler import NoticeScheduler


def sync_if_due(source_id: int) -> None:
    """The stored job: run by the leading scheduler's default executor, whose thread knows
    that scheduler and its process (see ``reminders.scheduler.jobs``)."""
    sync_source_if_due(worker_scheduler(), source_id)


def sync_source_if_due(scheduler: NoticeScheduler, source_id: int) -> None:
    """Sync the feed unless it is not due: backing off after errors, or the feed asked to be
    fetched less often (REFRESH-INTERVAL, X-PUBLISHED-TTL) than the source's refresh."""
    rt = scheduler.firing_runtime()
    with Session(rt.engine) as session:
        source = session.get(Source, source_id)
        if source is None:
            return  # deleted: its job is removed with it
        if source.next_sync_at is not None and source.next_sync_at > utcnow():
            return
        sync_source(session, scheduler, source_id, settings=rt.settings)
