"""Writing bills, by one set of rules: a billing system's batch, or POST /bills as a batch of one.

Every row is first resolved in memory (``rules.resolve``: its policy, its customer, its amount,
its due date, its existing bill) against what a few queries fetched, so that a bad row is
refused before anything is written. The good rows are then written with one statement per
table: new customers, new bills, recipients. A known customer whose row brings new details (a
new phone) is changed as PATCH /contacts changes it (``contacts.writing``), so that its pending
notices follow. A conflict the lookups could not foresee (another request creating the
same customer or bill meanwhile) rolls the set write back to its savepoint, and the rows are
then written one at a time in savepoints, each looked up afresh, which refuses exactly the
conflicting rows. Nothing here commits: the caller does, once the bills are planned too
(``pending_jobs.commit_and_schedule``), and the keys' locks are held until then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from reminders.accounts.scoping import current
from reminders.bills.rules import (
    KEY_PREFIX,
    Lookups,
    Resolved,
    customer_keys,
    natural_keys,
    resolve,
)
from reminders.bills.schemas import BatchOut, BillIn, RowError
from reminders.contacts.matching import Matcher
from reminders.contacts.writing import NoticesFollowed, write_contacts
from reminders.db import in_chunks, utcnow
from reminders.errors import Conflict, DomainError
from reminders.field_errors import field_errors
from reminders.keylocks import lock_keys
from reminders.models import Anchor, AnchorKind, AnchorRecipient
from reminders.pending_jobs import JobScheduler, unschedule_after_commit
from reminders.scheduler.anchors import PlanReport, plan_many
from reminders.settings import Settings

log = logging.getLogger(__name__)

_ANCHORS = Anchor.__table__  # type: ignore[attr-defined]
_RECIPIENTS = AnchorRecipient.__table__  # type: ignore[attr-defined]


@dataclass
class Stored:
    """What a write did: the bills by row index, which are new, the rows refused."""

    anchor_ids: dict[int, int] = field(default_factory=dict)
    created: set[int] = field(default_factory=set)
    refused: dict[int, DomainError] = field(default_factory=dict)
    followed: NoticesFollowed = field(default_factory=NoticesFollowed)


@dataclass
class Upserted:
    anchor: Anchor
    created: bool
    report: PlanReport = field(default_factory=PlanReport)


def upsert_bill(
    session: Session,
    scheduler: JobScheduler | None,
    data: BillIn,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> Upserted:
    """Create the bill or update it (same external_id) and plan its notices; a refusal raises.

    Flushed: the caller commits."""
    now = now or utcnow()
    stored = store(session, [(0, data)], settings=settings, now=now)
    if 0 in stored.refused:
        raise stored.refused[0]
    reports = _plan(session, scheduler, stored, settings=settings, now=now)
    anchor = session.get(Anchor, stored.anchor_ids[0])
    assert anchor is not None and anchor.id is not None
    return Upserted(anchor, 0 in stored.created, reports[anchor.id])


def upsert_many(
    session: Session,
    scheduler: JobScheduler | None,
    rows: Sequence[dict[str, Any]],
    *,
    settings: Settings,
) -> BatchOut:
    """Each row on its own: a bad row is refused with its reasons, the good ones are kept, and
    the notices of all of them are planned together (``plan_many``). Flushed: the caller
    commits."""
    now = utcnow()
    valid, refused = _validate(rows)
    stored = store(session, valid, settings=settings, now=now)
    _plan(session, scheduler, stored, settings=settings, now=now)
    for index, data in valid:
        if index in stored.refused:
            exc = stored.refused[index]
            errors = [{"field": exc.field or "row", "message": exc.message}]
            refused.append(RowError(index=index, external_id=data.external_id, errors=errors))
    refused.sort(key=lambda row: row.index)
    created = len(stored.created)
    return BatchOut(created=created, updated=len(stored.anchor_ids) - created, refused=refused)


def _plan(
    session: Session,
    scheduler: JobScheduler | None,
    stored: Stored,
    *,
    settings: Settings,
    now: datetime,
) -> dict[int, PlanReport]:
    reports = {}
    if stored.anchor_ids:
        ids = list(stored.anchor_ids.values())
        reports = plan_many(session, scheduler, ids, settings=settings, now=now)
    # Queued here, outside the rows' savepoints: a row rolled back takes no job with it.
    unschedule_after_commit(session, scheduler, stored.followed.unscheduled)
    return reports


def _validate(rows: Sequence[dict[str, Any]]) -> tuple[list[tuple[int, BillIn]], list[RowError]]:
    valid: list[tuple[int, BillIn]] = []
    refused: list[RowError] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(rows):
        external_id = raw.get("external_id") if isinstance(raw.get("external_id"), str) else None
        try:
            data = BillIn.model_validate(raw)
        except ValidationError as exc:
            errors = [
                {"field": e.field or "row", "message": e.message}
                for e in field_errors(BillIn, exc.errors())
            ]
            refused.append(RowError(index=index, external_id=external_id, errors=errors))
            continue
        if data.external_id in seen:
            message = f"also in row {seen[data.external_id]} of this batch"
            errors = [{"field": "external_id", "message": message}]
            refused.append(RowError(index=index, external_id=external_id, errors=errors))
            continue
        seen[data.external_id] = index
        valid.append((index, data))
    return valid, refused


def store(
    session: Session, rows: Sequence[tuple[int, BillIn]], *, settings: Settings, now: datetime
) -> Stored:
    """Resolve the rows and write the good ones together; flushed, not planned yet.

    The rows' natural keys are locked first, until the caller commits: the same bill or new
    customer posted twice at once is written by the first, and found by the second.
    """
    data = [row for _, row in rows]
    keys = customer_keys(data, settings.default_region)
    lock_keys(session, natural_keys(data, keys))
    lookups = Lookups.prefetch(session, data, keys)
    customers = Matcher(lookups.contacts, settings.default_region, now)
    resolved: list[Resolved] = []
    refused: dict[int, DomainError] = {}
    for index, row_in in rows:
        try:
            row = resolve(index, row_in, lookups, customers, settings=settings, now=now)
        except DomainError as exc:
            refused[index] = exc
            continue
        customers.accept(row.customer, row.changes)
        resolved.append(row)
    try:
        with session.begin_nested():
            stored = _write(session, resolved, now)
    except IntegrityError as exc:
        log.info("bills met a concurrent change (%s); writing them one at a time", exc.orig)
        stored = _store_one_by_one(session, resolved, settings=settings, now=now)
    stored.refused.update(refused)
    return stored


def _store_one_by_one(
    session: Session, rows: Sequence[Resolved], *, settings: Settings, now: datetime
) -> Stored:
    """Each row looked up again and written in its own savepoint, so a conflict costs that row
    alone; flushed. The keys' locks are still held: the set write rolled back its savepoint
    only."""
    stored = Stored()
    region = settings.default_region
    for row in rows:
        try:
            with session.begin_nested():
                lookups = Lookups.prefetch(session, [row.data], customer_keys([row.data], region))
                customers = Matcher(lookups.contacts, region, now)
                again = resolve(row.index, row.data, lookups, customers, settings=settings, now=now)
                customers.accept(again.customer, again.changes)
                one = _write(session, [again], now)
        except DomainError as exc:
            stored.refused[row.index] = exc
            continue
        except IntegrityError:
            message = "another request wrote the same customer or bill meanwhile; send it again"
            stored.refused[row.index] = Conflict(message, field="external_id")
            continue
        stored.anchor_ids.update(one.anchor_ids)
        stored.created |= one.created
        stored.followed.extend(one.followed)
    return stored


def _write(session: Session, rows: Sequence[Resolved], now: datetime) -> Stored:
    """Changed and new customers, new bills, changed bills and recipients; flushed, not
    committed. One statement per table, except a known customer that changed: each changes
    as PATCH /contacts changes it, so that its pending notices follow."""
    stored = Stored()
    stored.followed = write_contacts(session, [row.customer for row in rows])
    fresh = [row for row in rows if row.anchor is None]
    if fresh:
        inserted = session.execute(
            insert(_ANCHORS).returning(_ANCHORS.c.id, sort_by_parameter_order=True),
            [
                {
                    "account_id": current(session),
                    "key": KEY_PREFIX + row.data.external_id,
                    "kind": AnchorKind.bill,
                    "title": row.title,
                    "at": row.at,
                    "all_day": True,
                    "timezone": row.zone,
                    "policy": row.data.policy,
                    "data": row.values,
                    "cancelled": False,
                    "source_id": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for row in fresh
            ],
        ).scalars()
        for row, new_id in zip(fresh, inserted, strict=True):
            stored.anchor_ids[row.index] = new_id
            stored.created.add(row.index)
    changed = [row for row in rows if row.anchor is not None]
    for row in changed:
        anchor = row.anchor
        assert anchor is not None and anchor.id is not None
        anchor.title = row.title
        anchor.at, anchor.all_day, anchor.timezone = row.at, True, row.zone
        anchor.policy = row.data.policy
        anchor.data = {**anchor.data, **row.values}
        anchor.updated_at = now
        session.add(anchor)
        stored.anchor_ids[row.index] = anchor.id
    session.flush()
    for chunk in in_chunks([stored.anchor_ids[row.index] for row in changed]):
        session.execute(delete(_RECIPIENTS).where(_RECIPIENTS.c.anchor_id.in_(chunk)))
    recipients = [
        {
            "anchor_id": stored.anchor_ids[row.index],
            "phone": row.customer.get("phone"),
            "contact_id": row.customer.contact_id,
        }
        for row in rows
    ]
    if recipients:
        session.execute(insert(_RECIPIENTS), recipients)
    return stored
