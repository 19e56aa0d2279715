"""The periodic feed job, at a stable import path (APScheduler stores the path)."""

from __future__ import annotations

from sqlmodel import Session

from reminders import runtime
from reminders.db import utcnow
from reminders.models import Source
from reminders.sources.sync import sync_source


def sync_if_due(source_id: int) -> None:
    """Sync the feed unless it is not due: backing off after errors, or the feed asked to be
    fetched less often (REFRESH-INTERVAL, X-PUBLISHED-TTL) than the source's refresh."""
    rt = runtime.current()
    with Session(rt.engine) as session:
        source = session.get(Source, source_id)
        if source is None:
            return  # deleted: its job is removed with it
        if source.next_sync_at is not None and source.next_sync_at > utcnow():
            return
        sync_source(session, rt.scheduler, source_id, settings=rt.settings)
