"""A billing system's batch of bills, written as sets rather than row by row.

Every row is first resolved in memory against what a few queries fetched (its policy, its
customer, its due date, its existing bill), so that a bad row is refused before anything is
written. The good rows are then written with one statement per table: new customers, new
bills, recipients. A conflict that the lookups could not foresee (another request creating the
same customer meanwhile) rolls the set write back, and the batch is written row by row in
savepoints instead (``bills.store_one_by_one``), which refuses exactly the conflicting rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reminders.bills import (
    KEY_PREFIX,
    BatchOut,
    BillContact,
    BillIn,
    Lookups,
    RowError,
    store_one_by_one,
)
from reminders.dates import DateParseError, parse_date
from reminders.db import in_chunks, utcnow
from reminders.errors import Conflict, DomainError, InvalidField
from reminders.models import Anchor, AnchorKind, AnchorRecipient, Contact
from reminders.notices import JobScheduler
from reminders.phones import normalize_mobile
from reminders.scheduler.anchors import plan_many
from reminders.settings import Settings

log = logging.getLogger(__name__)

_CONTACTS = Contact.__table__  # type: ignore[attr-defined]
_ANCHORS = Anchor.__table__  # type: ignore[attr-defined]
_RECIPIENTS = AnchorRecipient.__table__  # type: ignore[attr-defined]


@dataclass(eq=False)
class _NewContact:
    """A customer this batch creates; ``id`` is known once written."""

    values: dict[str, Any]
    id: int | None = None

    @property
    def phone(self) -> str:
        return str(self.values["phone"])

    @property
    def timezone(self) -> str | None:
        return self.values["timezone"]


@dataclass
class _Resolved:
    """A row ready to write: everything decided, nothing written."""

    index: int
    data: BillIn
    contact: Contact | _NewContact
    zone: str
    at: datetime
    values: dict[str, Any]
    anchor: Anchor | None  # the bill as stored, when this row updates it


@dataclass
class _NewContacts:
    """Customers planned so far, found again by a later row of the same batch."""

    by_external_id: dict[str, _NewContact] = field(default_factory=dict)
    by_phone: dict[str, _NewContact] = field(default_factory=dict)

    def add(self, contact: _NewContact) -> None:
        self.by_phone.setdefault(contact.phone, contact)
        if contact.values["external_id"]:
            self.by_external_id[contact.values["external_id"]] = contact


def upsert_many(
    session: Session,
    scheduler: JobScheduler | None,
    rows: Sequence[dict[str, Any]],
    *,
    settings: Settings,
) -> BatchOut:
    """Each row on its own: a bad row is refused with its reasons, the good ones are kept, and
    the notices of all of them are planned together (``plan_many``)."""
    now = utcnow()
    valid, refused = _validate(rows)
    lookups = Lookups.prefetch(session, [data for _, data in valid], settings.default_region)
    _prefetch_contact_ids(session, lookups, [data for _, data in valid])
    resolved: list[_Resolved] = []
    planned = _NewContacts()
    for index, data in valid:
        try:
            row, new = _resolve(index, data, lookups, planned, settings=settings, now=now)
        except DomainError as exc:
            errors = [{"field": exc.field or "row", "message": exc.message}]
            refused.append(RowError(index=index, external_id=data.external_id, errors=errors))
            continue
        if new is not None:
            planned.add(new)
        resolved.append(row)
    try:
        stored, created = _write(session, resolved, now)
    except IntegrityError as exc:
        session.rollback()
        log.info("a bill batch met a concurrent change (%s); writing it row by row", exc.orig)
        rows_again = [(row.index, row.data) for row in resolved]
        stored, created, more = store_one_by_one(session, rows_again, settings=settings, now=now)
        refused.extend(more)
    if stored:
        plan_many(session, scheduler, stored, settings=settings, now=now)
    refused.sort(key=lambda row: row.index)
    return BatchOut(created=created, updated=len(stored) - created, refused=refused)


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
                {
                    "field": ".".join(str(p) for p in e["loc"]) or "row",
                    "message": str(e["msg"]).removeprefix("Value error, "),
                }
                for e in exc.errors()
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


def _prefetch_contact_ids(session: Session, lookups: Lookups, rows: Sequence[BillIn]) -> None:
    """The contacts rows name by id, into ``lookups.contacts_by_id``."""
    ids = sorted({row.contact for row in rows if isinstance(row.contact, int)})
    for chunk in in_chunks(ids):
        for contact in session.exec(select(Contact).where(col(Contact.id).in_(chunk))):
            lookups.contacts_by_id[contact.id or 0] = contact


def _resolve(
    index: int,
    data: BillIn,
    lookups: Lookups,
    planned: _NewContacts,
    *,
    settings: Settings,
    now: datetime,
) -> tuple[_Resolved, _NewContact | None]:
    """The row decided in memory, in the order the row-by-row path checks it, so both refuse a
    row for the same reason; plus the customer it would create, if any."""
    if data.policy not in lookups.policies:
        raise InvalidField(f"no policy named {data.policy!r}", field="policy")
    contact, new = _contact(data.contact, lookups, planned, settings=settings, now=now)
    zone = contact.timezone or settings.timezone
    try:
        due = parse_date(data.due, zone=ZoneInfo(zone), now=now)
    except DateParseError as exc:
        raise InvalidField(str(exc), field="due") from None
    anchor = lookups.anchors_by_key.get(KEY_PREFIX + data.external_id)
    if anchor is not None and anchor.cancelled:
        raise Conflict(f"bill {data.external_id!r} was marked paid", field="external_id")
    values = {
        "amount": data.amount,
        "currency": data.currency,
        "reference": data.reference,
        "due": due.isoformat(),
    }
    # A bill is due on a day, wherever its customer is: local midnight of that day.
    at = datetime.combine(due, time(0, 0), tzinfo=ZoneInfo(zone))
    return _Resolved(index, data, contact, zone, at, values, anchor), new


def _contact(
    spec: int | BillContact,
    lookups: Lookups,
    planned: _NewContacts,
    *,
    settings: Settings,
    now: datetime,
) -> tuple[Contact | _NewContact, _NewContact | None]:
    if isinstance(spec, int):
        found = lookups.contacts_by_id.get(spec)
        if found is None:
            raise InvalidField(f"no contact with id {spec}", field="contact")
        return found, None
    phone = normalize_mobile(spec.phone, settings.default_region, field="contact.phone")
    known: Contact | _NewContact | None
    if spec.external_id:
        known = lookups.contacts_by_external_id.get(spec.external_id)
        known = known or planned.by_external_id.get(spec.external_id)
    else:
        known = lookups.contacts_by_phone.get(phone) or planned.by_phone.get(phone)
    if known is not None:
        return known, None
    new = _NewContact(
        {
            "name": spec.name,
            "name_folded": spec.name.casefold(),
            "phone": phone,
            "email": spec.email,
            "timezone": spec.timezone,
            "language": spec.language or "bg",
            "external_id": spec.external_id,
            "opted_out": False,
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        }
    )
    return new, new


def _write(session: Session, rows: Sequence[_Resolved], now: datetime) -> tuple[list[int], int]:
    """New customers, new bills, changed bills and recipients: one statement each; commit."""
    # Once each, in order: a customer shared by several rows is one _NewContact (eq=False).
    new_contacts = list(
        dict.fromkeys(r.contact for r in rows if isinstance(r.contact, _NewContact))
    )
    if new_contacts:
        ids = session.execute(
            insert(_CONTACTS).returning(_CONTACTS.c.id, sort_by_parameter_order=True),
            [contact.values for contact in new_contacts],
        ).scalars()
        for contact, new_id in zip(new_contacts, ids, strict=True):
            contact.id = new_id
    fresh = [row for row in rows if row.anchor is None]
    anchor_ids: dict[int, int] = {}
    if fresh:
        inserted = session.execute(
            insert(_ANCHORS).returning(_ANCHORS.c.id, sort_by_parameter_order=True),
            [
                {
                    "key": KEY_PREFIX + row.data.external_id,
                    "kind": AnchorKind.bill,
                    "title": row.data.title or "Bill",
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
            anchor_ids[row.index] = new_id
    changed = [row for row in rows if row.anchor is not None]
    for row in changed:
        anchor = row.anchor
        assert anchor is not None and anchor.id is not None
        anchor.title = row.data.title or anchor.title or "Bill"
        anchor.at, anchor.all_day, anchor.timezone = row.at, True, row.zone
        anchor.policy = row.data.policy
        anchor.data = {**anchor.data, **row.values}
        anchor.updated_at = now
        session.add(anchor)
        anchor_ids[row.index] = anchor.id
    session.flush()
    for chunk in in_chunks([anchor_ids[row.index] for row in changed]):
        session.execute(delete(_RECIPIENTS).where(_RECIPIENTS.c.anchor_id.in_(chunk)))
    recipients = [
        {
            "anchor_id": anchor_ids[row.index],
            "phone": row.contact.phone,
            "contact_id": row.contact.id,
        }
        for row in rows
    ]
    if recipients:
        session.execute(insert(_RECIPIENTS), recipients)
    session.commit()
    return [anchor_ids[row.index] for row in rows], len(fresh)
