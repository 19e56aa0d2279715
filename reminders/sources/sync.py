"""Keeping a feed's events in step with the feed: fetch, parse, diff, plan.

Each occurrence is an anchor keyed by (source, UID, original start). A sync creates anchors for
new occurrences, re-plans the changed ones (a moved start moves its notices), cancels the ones
that vanished or were cancelled, revives the ones that come back (the same anchor, so a notice
that went out is never sent again), and leaves the unchanged alone: no notice or job is
rewritten. A feed that cannot be fetched or parsed, or any other failure of a sync, is recorded
on the source; what it planned before stays. A sync parses, expands and diffs only the series
that changed since the last one, with the same result as reading the whole feed
(`reminders.sources.resync`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, or_, select

from reminders.accounts.scoping import acting_for
from reminders.db import in_chunks, utcnow
from reminders.durations import Offset
from reminders.errors import DomainError, NotFound
from reminders.models import Anchor, AnchorKind, Source
from reminders.pending_jobs import JobScheduler, commit_and_schedule
from reminders.scheduler.anchors import cancel_for, plan_many, set_recipients
from reminders.settings import Settings
from reminders.sources.fetch import FetchError, FetchResult, fetch_feed, redact_url
from reminders.sources.ical import (
    FeedError,
    Occurrence,
    ParsedFeed,
    content_hash,
    feed_text,
    parse_feed,
)
from reminders.sources.recipients import Known, default_recipients, recipients_of, written_in
from reminders.sources.resync import Scope, choose_scope, record, window_end

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=6)
# In a feed anchor's data: the start it had when it was cancelled through the API.
HELD = "cancelled_through_api_at"
Fetcher = Callable[..., FetchResult]


@dataclass
class SyncReport:
    status: str  # synced, not_modified, unchanged, error
    created: int = 0
    moved: int = 0
    cancelled: int = 0
    restored: int = 0  # cancelled or dropped by the calendar before, back in it now
    unchanged: int = 0
    notices: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def count(self, planned: dict[str, int]) -> None:
        for name, value in planned.items():
            self.notices[name] = self.notices.get(name, 0) + value


def anchor_key(source_id: int, occurrence: Occurrence) -> str:
    return f"source:{source_id}:{occurrence.key}"


def refresh_delta(source: Source) -> timedelta:
    return Offset.parse(source.refresh).as_timedelta()


def sync_source(
    session: Session,
    scheduler: JobScheduler | None,
    source_id: int,
    *,
    settings: Settings,
    now: datetime | None = None,
    fetcher: Fetcher = fetch_feed,
) -> SyncReport:
    """Fetch the feed and bring its anchors and notices in step with it; commit.

    A sync is a caller that commits, as a route is: its changes are one transaction, committed
    with the outcome recorded on the source, and the jobs written after it
    (``pending_jobs.commit_and_schedule``). Raises NotFound for an unknown source, and nothing
    else: once the source is found, whatever goes wrong (the feed, a policy deleted since, a
    bug of ours) rolls the sync back, is recorded on the source and reported, so that one
    feed's trouble never crashes the caller nor stops the other feeds.
    """
    now = now or utcnow()
    source = session.get(Source, source_id)
    if source is None:
        raise NotFound(f"no source with id {source_id}", field="id")
    shown = redact_url(source.url)
    # A sync run by the scheduler or the CLI sees every account; the feed's own is the one its
    # contacts, policies and anchors are looked up and written in.
    with acting_for(session, source.account_id):
        return _sync_or_record(session, scheduler, source, now, shown, settings, fetcher)


def _sync_or_record(
    session: Session,
    scheduler: JobScheduler | None,
    source: Source,
    now: datetime,
    shown: str,
    settings: Settings,
    fetcher: Fetcher,
) -> SyncReport:
    source_id = source.id
    assert source_id is not None
    try:
        return _sync(session, scheduler, source, settings=settings, now=now, fetcher=fetcher)
    except DomainError as exc:
        # Our own data no longer fits the feed (its policy was deleted): the user can fix it.
        # (The field named is the one of the lookup that failed, not one of the source's.)
        return _interrupted(session, source_id, now, exc.message, shown, logged=False)
    except Exception as exc:
        # The whole traceback once, here; the source gets a sentence without internals.
        log.exception("sync of source %s (%s) failed unexpectedly", source_id, shown)
        message = f"the sync failed unexpectedly ({type(exc).__name__}); see the log for details"
        return _interrupted(session, source_id, now, message, shown, logged=True)


def _sync(
    session: Session,
    scheduler: JobScheduler | None,
    source: Source,
    *,
    settings: Settings,
    now: datetime,
    fetcher: Fetcher,
) -> SyncReport:
    until = window_end(now, settings.horizon)
    # The window moves on every day: then expand again even if the feed is the same.
    stale = source.expanded_until != until
    try:
        fetched = fetcher(
            source.url,
            etag=None if stale else source.etag,
            last_modified=None if stale else source.last_modified,
            allow_private=settings.allow_private_feeds,
            max_bytes=settings.feed_max_bytes,
        )
    except (FetchError, ValueError) as exc:
        # ValueError: the feed URL stored on the source is no longer acceptable.
        return _failed(session, source, now, str(exc))
    if fetched.not_modified:
        _succeeded(session, source, now, fetched, None)
        return SyncReport(status="not_modified")
    assert fetched.body is not None
    digest = content_hash(fetched.body)
    if digest == source.content_hash and not stale:
        _succeeded(session, source, now, fetched, digest)
        return SyncReport(status="unchanged")

    defaults = default_recipients(session, source, settings)
    scope = choose_scope(
        session,
        source,
        feed_text(fetched.body),
        defaults,
        region=settings.default_region,
        now=now,
        until=until,
    )
    try:
        scope, feed = _read(scope, source, now, until)
    except (FeedError, ValueError) as exc:
        # ValueError: the zone stored on the source is no longer acceptable.
        return _failed(session, source, now, str(exc))
    report = _apply(session, scheduler, source, scope, feed, defaults, settings=settings, now=now)
    source.expanded_until = until
    source.event_count = len(feed.occurrences) + scope.kept_in_window
    hint = feed.refresh_hint
    source.refresh_hint_seconds = int(hint.total_seconds()) if hint else None
    source.warnings = report.warnings
    _succeeded(session, source, now, fetched, digest)
    log.info("synced source %s (%s): %s", source.id, redact_url(source.url), report.status)
    return report


def _read(scope: Scope, source: Source, now: datetime, until: datetime) -> tuple[Scope, ParsedFeed]:
    """Parse what the scope asks for; the whole feed when a part alone would not do."""
    feed = parse_feed(scope.text, zone=source.timezone, window_start=now, window_end=until)
    if scope.fits(feed):
        return scope, feed
    scope = scope.as_full()
    return scope, parse_feed(scope.text, zone=source.timezone, window_start=now, window_end=until)


def _apply(
    session: Session,
    scheduler: JobScheduler | None,
    source: Source,
    scope: Scope,
    feed: ParsedFeed,
    defaults: list[tuple[str, int | None]],
    *,
    settings: Settings,
    now: datetime,
) -> SyncReport:
    """Bring the anchors of the series read in step with them, and plan what changed."""
    assert source.id is not None
    keys = [anchor_key(source.id, occurrence) for occurrence in feed.occurrences]
    if scope.full:
        existing = _existing_anchors(session, source.id, keys, now)
    else:
        old = [f"source:{source.id}:{key}" for key in scope.old_keys]
        existing = _anchors_with_keys(session, source.id, keys, old, now)
    written = [written_in(occurrence, settings) for occurrence in feed.occurrences]
    known = Known.load(session, written)
    diff = _Diff(
        session,
        source,
        feed.calendar_zone or source.timezone,
        existing,
        # Never expanded, edited, or interrupted (``_interrupted``): every live anchor is
        # planned again, so that nothing rests on what an earlier sync's planning did.
        replan_all=source.expanded_until is None,
        now=now,
        report=SyncReport(status="synced", warnings=list(scope.warnings(feed))),
    )
    for key, occurrence, names in zip(keys, feed.occurrences, written, strict=True):
        diff.occurrence(key, occurrence, recipients_of(names, known, defaults))
    report = diff.report
    # All the new and changed occurrences planned together: a few statements, not one pass each.
    for planned in plan_many(session, scheduler, diff.to_plan, settings=settings, now=now).values():
        report.count(planned.as_dict())
    _drop_vanished(session, scheduler, existing, set(keys), report, now)
    report.unchanged += scope.kept_in_window
    record(session, source, scope, feed, written, known)
    return report


@dataclass
class _Diff:
    """One sync's changes to its source's anchors, one occurrence of the feed at a time."""

    session: Session
    source: Source
    zone: str
    existing: dict[str, Anchor]
    replan_all: bool
    now: datetime
    report: SyncReport
    to_plan: list[int] = field(default_factory=list)

    def occurrence(
        self, key: str, occurrence: Occurrence, recipients: list[tuple[str, int | None]]
    ) -> None:
        """Create, change or restore the occurrence's anchor, or leave it as it is."""
        source, report = self.source, self.report
        data = {
            "location": occurrence.location,
            "end": occurrence.end.isoformat() if occurrence.end else None,
            "alarms": [str(Offset(0, a)) for a in occurrence.alarms] if source.use_alarms else [],
            "uid": occurrence.uid,
        }
        fingerprint = _fingerprint(occurrence, recipients, data, source)
        anchor = self.existing.get(key)
        if anchor is not None and anchor.cancelled and _held(anchor, occurrence):
            report.unchanged += 1
            return
        if anchor is not None and not anchor.cancelled:
            if anchor.data.get("fingerprint") == fingerprint:
                report.unchanged += 1
                if self.replan_all and anchor.id is not None:
                    self.to_plan.append(anchor.id)
                return
            report.moved += 1
        elif anchor is not None:
            # Cancelled or dropped by the calendar before, and back in it now.
            anchor.cancelled = False
            report.restored += 1
        else:
            anchor = Anchor(
                key=key, kind=AnchorKind.event, title="", at=occurrence.start, policy=""
            )
            anchor.source_id = source.id
            report.created += 1
        replace = anchor.id is not None
        anchor.title = occurrence.title or source.name
        anchor.at, anchor.all_day = occurrence.start, occurrence.all_day
        anchor.timezone = self.zone
        anchor.policy = source.policy
        anchor.data = {**data, "fingerprint": fingerprint}
        anchor.updated_at = self.now
        self.session.add(anchor)
        self.session.flush()
        assert anchor.id is not None
        set_recipients(self.session, anchor.id, recipients, replace=replace)
        self.to_plan.append(anchor.id)


def _drop_vanished(
    session: Session,
    scheduler: JobScheduler | None,
    existing: dict[str, Anchor],
    seen: set[str],
    report: SyncReport,
    now: datetime,
) -> None:
    """Cancel the anchors of events gone from the feed or cancelled in it; end the holds of
    the ones cancelled through the API that the calendar has dropped too."""
    for key, anchor in existing.items():
        if key in seen or anchor.id is None:
            continue
        if anchor.cancelled:
            if HELD in anchor.data:
                # The calendar has dropped it too: should it come back, it is a new decision.
                anchor.data = {k: v for k, v in anchor.data.items() if k != HELD}
                session.add(anchor)
            continue
        # Gone from the feed, or cancelled in it. Past events simply left the window: keep them.
        if anchor.at >= now:
            reason = "the event was cancelled or removed from its calendar"
            report.count(cancel_for(session, scheduler, anchor.id, reason=reason).as_dict())
            report.cancelled += 1


def hold_cancelled(anchor: Anchor) -> None:
    """Mark a feed's event cancelled through the API: it stays cancelled while the calendar
    keeps it at the same start.

    The next sync would otherwise see it in the feed and plan it again, reminding a patient who
    called to cancel. A move in the calendar, or the calendar dropping it, ends the hold. One
    the calendar has dropped already is not held: should it come back, that is a new decision
    (and a sync that reads only the series that changed would never end that hold).
    """
    if anchor.cancelled and HELD not in anchor.data:
        return
    anchor.data = {**anchor.data, HELD: anchor.at.isoformat()}


def _held(anchor: Anchor, occurrence: Occurrence) -> bool:
    held_at = anchor.data.get(HELD)
    return held_at is not None and datetime.fromisoformat(held_at) == occurrence.start


def _existing_anchors(
    session: Session, source_id: int, keys: Sequence[str], now: datetime
) -> dict[str, Anchor]:
    """The source's live anchors, its cancelled ones the feed has again, and its future
    cancelled ones (to end the hold of those the calendar has dropped)."""
    ours = Anchor.source_id == source_id
    query = select(Anchor).where(ours, or_(col(Anchor.cancelled).is_(False), col(Anchor.at) >= now))
    found = {a.key: a for a in session.exec(query)}
    for chunk in in_chunks(sorted(set(keys) - found.keys())):
        # Cancelled and past: an occurrence the calendar moved back into the window.
        found.update(
            (a.key, a) for a in session.exec(select(Anchor).where(ours, col(Anchor.key).in_(chunk)))
        )
    return found


def _anchors_with_keys(
    session: Session, source_id: int, keys: Sequence[str], old: Sequence[str], now: datetime
) -> dict[str, Anchor]:
    """`_existing_anchors` for a sync that read some series: the anchors of their occurrences
    now (`keys`) and before (`old`), but past cancelled ones only when the feed has them."""
    found: dict[str, Anchor] = {}
    ours = Anchor.source_id == source_id
    for chunk in in_chunks(sorted(set(keys) | set(old))):
        query = select(Anchor).where(ours, col(Anchor.key).in_(chunk))
        found.update((a.key, a) for a in session.exec(query))
    wanted = set(keys)
    return {k: a for k, a in found.items() if k in wanted or not a.cancelled or a.at >= now}


def _interrupted(
    session: Session, source_id: int, now: datetime, message: str, shown: str, *, logged: bool
) -> SyncReport:
    """Record a sync that stopped half-way; the next one re-reads the feed and plans it all."""
    try:
        session.rollback()  # what the sync did, half-way: the sync is the caller here
        source = session.get(Source, source_id)
        if source is None:  # deleted while it was syncing: nothing to record it on
            return SyncReport(status="error", error=message)
        source.expanded_until = None
        return _failed(session, source, now, message, logged=logged)
    except Exception:
        # The database itself failing: nothing can be recorded, but the caller goes on.
        log.exception("could not record the failed sync of source %s (%s)", source_id, shown)
        return SyncReport(status="error", error=message)


def _succeeded(
    session: Session, source: Source, now: datetime, fetched: FetchResult, digest: str | None
) -> None:
    source.etag = fetched.etag or source.etag
    source.last_modified = fetched.last_modified or source.last_modified
    if digest is not None:
        source.content_hash = digest
    source.last_sync_at = source.last_success_at = now
    source.last_error, source.error_count = None, 0
    source.next_sync_at = now + _period(source) - refresh_delta(source) / 5
    source.updated_at = now
    session.add(source)
    commit_and_schedule(session)


def _period(source: Source) -> timedelta:
    """How often the feed is fetched: its refresh, or the feed's own hint if that is longer."""
    hint = timedelta(seconds=source.refresh_hint_seconds or 0)
    return max(refresh_delta(source), hint)


def _failed(
    session: Session, source: Source, now: datetime, error: str, *, logged: bool = False
) -> SyncReport:
    source.last_sync_at = now
    source.last_error = error[:1000]
    source.error_count += 1
    # Back off: the refresh period doubled per failure in a row, at most six hours.
    delay = min(refresh_delta(source) * (2 ** min(source.error_count, 10)), MAX_BACKOFF)
    source.next_sync_at = now + _jittered(delay)
    session.add(source)
    session.commit()  # a failure plans nothing: no jobs to write
    if not logged:
        log.warning("source %s (%s) failed: %s", source.id, redact_url(source.url), error)
    return SyncReport(status="error", error=error)


def _jittered(delay: timedelta) -> timedelta:
    # Many feeds added at once should not all be fetched in the same second ever after.
    return delay * random.uniform(0.9, 1.1)


def _fingerprint(
    occurrence: Occurrence,
    recipients: list[tuple[str, int | None]],
    data: dict[str, Any],
    source: Source,
) -> str:
    """What planning depends on; equal fingerprints mean nothing to re-plan."""
    payload = [
        occurrence.start.isoformat(),
        occurrence.all_day,
        occurrence.title,
        recipients,
        data,
        source.policy,
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
