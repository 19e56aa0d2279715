"""Feed sources: registered, edited and removed through the API and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, func, select

from reminders.db import utcnow
from reminders.errors import InvalidField, NotFound
from reminders.groups import group_contact_ids
from reminders.models import PENDING, Anchor, Contact, Notice, Source
from reminders.pending_jobs import JobScheduler
from reminders.policies import get_policy_or_none
from reminders.scheduler.anchors import cancel_for
from reminders.schemas.sources import SourceCreate, SourceOut, SourceUpdate
from reminders.sources.fetch import Resolver, check_feed_address, redact_url


def _check_refs(
    session: Session, policy: str | None, groups: Sequence[int], contacts: Sequence[int]
) -> None:
    if policy is not None and get_policy_or_none(session, policy) is None:
        raise InvalidField(f"no policy named {policy!r}", field="policy")
    group_contact_ids(session, groups, field="groups")
    if contacts:
        found = set(session.exec(select(Contact.id).where(col(Contact.id).in_(contacts))).all())
        missing = [c for c in contacts if c not in found]
        if missing:
            raise InvalidField(f"no contact with id {missing[0]}", field="contacts")


def _check_address(url: str, allow_private: bool, resolver: Resolver | None) -> None:
    try:
        check_feed_address(url, allow_private=allow_private, resolver=resolver)
    except ValueError as exc:
        raise InvalidField(str(exc), field="url") from None


def create_source(
    session: Session,
    data: SourceCreate,
    *,
    default_zone: str,
    allow_private: bool,
    resolver: Resolver | None = None,
) -> Source:
    """Register a feed (flushed); `allow_private` is REMINDERS_ALLOW_PRIVATE_FEEDS (`resolver`
    for tests). Its sync job is the caller's to write, after the commit."""
    _check_refs(session, data.policy, data.groups, data.contacts)
    _check_address(data.url, allow_private, resolver)
    source = Source(
        name=data.name,
        url=data.url,
        refresh=data.refresh,
        timezone=data.timezone or default_zone,
        policy=data.policy,
        use_alarms=data.use_alarms,
        recipients={"groups": list(data.groups), "contacts": list(data.contacts)},
        next_sync_at=utcnow(),
    )
    session.add(source)
    session.flush()
    return source


def get_source(session: Session, source_id: int) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise NotFound(f"no source with id {source_id}", field="id")
    return source


def list_sources(session: Session) -> list[Source]:
    return list(session.exec(select(Source).order_by(col(Source.id))))


def update_source(
    session: Session,
    source_id: int,
    data: SourceUpdate,
    *,
    allow_private: bool,
    resolver: Resolver | None = None,
) -> Source:
    source = get_source(session, source_id)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    for required in ("name", "url", "refresh", "timezone", "policy", "use_alarms"):
        if required in changes and changes[required] is None:
            raise InvalidField("may not be null", field=required)
    if "url" in changes:
        _check_address(changes["url"], allow_private, resolver)
    recipients = dict(source.recipients)
    for name in ("groups", "contacts"):
        if name in changes:
            recipients[name] = list(changes.pop(name) or [])
    _check_refs(
        session, changes.get("policy"), recipients.get("groups", []), recipients.get("contacts", [])
    )
    for name, value in changes.items():
        setattr(source, name, value)
    source.recipients = recipients
    # Anything that changes what the feed means is re-read in full at the next sync.
    source.content_hash, source.etag, source.last_modified = None, None, None
    source.expanded_until = None
    source.next_sync_at = utcnow()
    source.updated_at = utcnow()
    session.add(source)
    session.flush()
    return source


def delete_source(session: Session, scheduler: JobScheduler | None, source_id: int) -> None:
    """Remove the source and cancel what its events had still to send (flushed; their jobs
    are dropped after the caller's commit)."""
    source = get_source(session, source_id)
    anchors = session.exec(
        select(Anchor.id).where(Anchor.source_id == source_id, col(Anchor.cancelled).is_(False))
    ).all()
    for anchor_id in anchors:
        if anchor_id is not None:
            cancel_for(session, scheduler, anchor_id, reason="its calendar source was removed")
    session.delete(source)
    session.flush()


def source_out(session: Session, source: Source) -> SourceOut:
    assert source.id is not None
    pending = session.exec(
        select(func.count())
        .select_from(Notice)
        .join(Anchor, col(Anchor.id) == col(Notice.anchor_id))
        .where(Anchor.source_id == source.id, col(Notice.status).in_(PENDING))
    ).one()
    return SourceOut(
        id=source.id,
        name=source.name,
        url=redact_url(source.url),
        refresh=source.refresh,
        timezone=source.timezone,
        policy=source.policy,
        use_alarms=source.use_alarms,
        groups=list(source.recipients.get("groups", [])),
        contacts=list(source.recipients.get("contacts", [])),
        last_sync_at=source.last_sync_at,
        last_success_at=source.last_success_at,
        last_error=source.last_error,
        error_count=source.error_count,
        next_sync_at=source.next_sync_at,
        event_count=source.event_count,
        notice_count=int(pending),
        warnings=list(source.warnings),
    )
