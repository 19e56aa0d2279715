"""Writing bills, by one set of rules: a billing system's batch, or POST /bills as a batch of one.

Every row is first resolved in memory (``_resolve``: its policy, its customer, its amount, its
due date, its existing bill) against what a few queries fetched, so that a bad row is refused
before anything is written. The good rows are then written with one statement per table: new
customers, new bills, recipients. A known customer whose row brings new details (a new phone)
is changed by ``contacts.apply_changes``, as PATCH /contacts does, so its pending notices follow.
A conflict the lookups could not foresee (another request creating the same customer or bill
meanwhile) rolls the set write back, and the rows are then written one at a time in savepoints,
each looked up afresh, which refuses exactly the conflicting rows.
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
    RowError,
    bill_title,
    check_minor_units,
)
from reminders.contacts import NoticesFollowed, apply_changes
from reminders.dates import DateParseError, parse_date
from reminders.db import in_chunks, utcnow
from reminders.errors import Conflict, DomainError, InvalidField
from reminders.field_errors import field_errors
from reminders.models import Anchor, AnchorKind, AnchorRecipient, Contact
from reminders.notices import JobScheduler
from reminders.phones import normalize_mobile
from reminders.policies import list_policies
from reminders.scheduler.anchors import PlanReport, plan_many
from reminders.settings import Settings

log = logging.getLogger(__name__)

_CONTACTS = Contact.__table__  # type: ignore[attr-defined]
_ANCHORS = Anchor.__table__  # type: ignore[attr-defined]
_RECIPIENTS = AnchorRecipient.__table__  # type: ignore[attr-defined]
# What an inline customer may change on a contact known by its external_id.
_CUSTOMER_FIELDS = ("phone", "name", "email", "language", "timezone")


@dataclass
class Lookups:
    """What the rows look up, fetched beforehand in a few queries."""

    policies: set[str] = field(default_factory=set)
    contacts_by_external_id: dict[str, Contact] = field(default_factory=dict)
    contacts_by_phone: dict[str, Contact] = field(default_factory=dict)
    contacts_by_id: dict[int, Contact] = field(default_factory=dict)
    anchors_by_key: dict[str, Anchor] = field(default_factory=dict)

    @classmethod
    def prefetch(cls, session: Session, rows: Sequence[BillIn], region: str) -> Lookups:
        found = cls(policies={p.name for p in list_policies(session)})
        specs = [r.contact for r in rows if isinstance(r.contact, BillContact)]
        ext_ids = [s.external_id for s in specs if s.external_id]
        phones = []
        for spec in specs:
            if spec.phone is not None:
                try:
                    phones.append(normalize_mobile(spec.phone, region))
                except InvalidField:
                    pass  # refused with its row
        ids = sorted({r.contact for r in rows if isinstance(r.contact, int)})
        keys = [KEY_PREFIX + r.external_id for r in rows]
        for chunk in in_chunks(ext_ids):
            for contact in session.exec(select(Contact).where(col(Contact.external_id).in_(chunk))):
                found.contacts_by_external_id[contact.external_id or ""] = contact
        for chunk in in_chunks(phones):
            for contact in session.exec(select(Contact).where(col(Contact.phone).in_(chunk))):
                found.contacts_by_phone.setdefault(contact.phone, contact)
        for id_chunk in in_chunks(ids):
            for contact in session.exec(select(Contact).where(col(Contact.id).in_(id_chunk))):
                found.contacts_by_id[contact.id or 0] = contact
        for chunk in in_chunks(keys):
            for anchor in session.exec(select(Anchor).where(col(Anchor.key).in_(chunk))):
                found.anchors_by_key[anchor.key] = anchor
        return found


@dataclass(eq=False)
class _Customer:
    """A row's customer: a stored contact and the changes rows bring to it, or a new one
    (``values`` then holds every column, and ``id`` is known once it is written)."""

    stored: Contact | None
    values: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def get(self, name: str) -> Any:
        if name in self.values or self.stored is None:
            return self.values.get(name)
        return getattr(self.stored, name)

    @property
    def contact_id(self) -> int | None:
        return self.stored.id if self.stored is not None else self.id


@dataclass
class _Customers:
    """The customers of the rows accepted so far, found again by a later row."""

    by_id: dict[int, _Customer] = field(default_factory=dict)
    by_external_id: dict[str, _Customer] = field(default_factory=dict)
    by_phone: dict[str, _Customer] = field(default_factory=dict)

    def of(self, contact: Contact) -> _Customer:
        """The one ``_Customer`` of a stored contact, so that the changes of rows add up."""
        assert contact.id is not None
        if contact.id not in self.by_id:
            self.by_id[contact.id] = _Customer(contact)
        return self.by_id[contact.id]

    def accept(self, row: _Resolved) -> None:
        customer = row.customer
        customer.values.update(row.changes)
        if customer.stored is None:
            customer.values["name_folded"] = customer.values["name"].casefold()
            self.by_phone.setdefault(customer.get("phone"), customer)
        if customer.get("external_id"):
            self.by_external_id[customer.get("external_id")] = customer


@dataclass
class _Resolved:
    """A row ready to write: everything decided, nothing written."""

    index: int
    data: BillIn
    customer: _Customer
    changes: dict[str, Any]  # to the customer, by this row
    title: str
    zone: str
    at: datetime
    values: dict[str, Any]
    anchor: Anchor | None  # the bill as stored, when this row updates it


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
    """Create the bill or update it (same external_id) and plan its notices; a refusal raises."""
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
    the notices of all of them are planned together (``plan_many``)."""
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
    if scheduler is not None and stored.followed.unscheduled:
        scheduler.unschedule(stored.followed.unscheduled)
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
    """Resolve the rows, write the good ones together, and commit; not planned yet."""
    lookups = Lookups.prefetch(session, [data for _, data in rows], settings.default_region)
    customers = _Customers()
    resolved: list[_Resolved] = []
    refused: dict[int, DomainError] = {}
    for index, data in rows:
        try:
            row = _resolve(index, data, lookups, customers, settings=settings, now=now)
        except DomainError as exc:
            refused[index] = exc
            continue
        customers.accept(row)
        resolved.append(row)
    try:
        stored = _write(session, resolved, now)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        log.info("bills met a concurrent change (%s); writing them one at a time", exc.orig)
        stored = _store_one_by_one(session, resolved, settings=settings, now=now)
    stored.refused.update(refused)
    return stored


def _store_one_by_one(
    session: Session, rows: Sequence[_Resolved], *, settings: Settings, now: datetime
) -> Stored:
    """Each row looked up again and written in its own savepoint, so a conflict costs that row
    alone; commit."""
    stored = Stored()
    for row in rows:
        try:
            with session.begin_nested():
                lookups = Lookups.prefetch(session, [row.data], settings.default_region)
                customers = _Customers()
                again = _resolve(
                    row.index, row.data, lookups, customers, settings=settings, now=now
                )
                customers.accept(again)
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
    session.commit()
    return stored


def _resolve(
    index: int,
    data: BillIn,
    lookups: Lookups,
    customers: _Customers,
    *,
    settings: Settings,
    now: datetime,
) -> _Resolved:
    """The rules of a bill, decided in memory: the first one broken refuses the row."""
    if data.policy not in lookups.policies:
        raise InvalidField(f"no policy named {data.policy!r}", field="policy")
    customer, changes = _customer(data.contact, lookups, customers, settings=settings, now=now)
    check_minor_units(data.amount, data.currency)
    zone = changes.get("timezone") or customer.get("timezone") or settings.timezone
    try:
        due = parse_date(data.due, zone=ZoneInfo(zone), now=now)
    except DateParseError as exc:
        raise InvalidField(str(exc), field="due") from None
    anchor = lookups.anchors_by_key.get(KEY_PREFIX + data.external_id)
    if anchor is not None and anchor.cancelled:
        raise Conflict(f"bill {data.external_id!r} was marked paid", field="external_id")
    language = changes.get("language") or customer.get("language")
    title = bill_title(data.title, anchor.title if anchor else None, language)
    values = {
        "amount": data.amount,
        "currency": data.currency,
        "reference": data.reference,
        "due": due.isoformat(),
    }
    # A bill is due on a day, wherever its customer is: local midnight of that day.
    at = datetime.combine(due, time(0, 0), tzinfo=ZoneInfo(zone))
    return _Resolved(index, data, customer, changes, title, zone, at, values, anchor)


def _customer(
    spec: int | BillContact,
    lookups: Lookups,
    customers: _Customers,
    *,
    settings: Settings,
    now: datetime,
) -> tuple[_Customer, dict[str, Any]]:
    """The row's customer, and what the row changes on it (a known one, by external_id)."""
    if isinstance(spec, int):
        found = lookups.contacts_by_id.get(spec)
        if found is None:
            raise InvalidField(f"no contact with id {spec}", field="contact")
        return customers.of(found), {}
    given = {
        name: getattr(spec, name)
        for name in _CUSTOMER_FIELDS
        if name in spec.model_fields_set and getattr(spec, name) is not None
    }
    if "phone" in given:
        given["phone"] = normalize_mobile(
            given["phone"], settings.default_region, field="contact.phone"
        )
    known: _Customer | None = None
    if spec.external_id:
        known = customers.by_external_id.get(spec.external_id)
        stored = lookups.contacts_by_external_id.get(spec.external_id)
        if known is None and stored is not None:
            known = customers.of(stored)
        if known is not None:
            changes = {k: v for k, v in given.items() if known.get(k) != v}
            return known, changes
    elif "phone" in given:
        known = customers.by_phone.get(given["phone"])
        stored = lookups.contacts_by_phone.get(given["phone"])
        if known is None and stored is not None:
            known = customers.of(stored)
        if known is not None:
            return known, {}  # matched by phone alone: used as it is
    for required in ("phone", "name"):
        if required not in given:
            raise InvalidField("is required for a new customer", field=f"contact.{required}")
    values = {
        "name": given["name"],
        "name_folded": given["name"].casefold(),
        "phone": given["phone"],
        "email": given.get("email"),
        "timezone": given.get("timezone"),
        "language": given.get("language", "bg"),
        "external_id": spec.external_id,
        "opted_out": False,
        "attributes": {},
        "created_at": now,
        "updated_at": now,
    }
    return _Customer(None, values), {}


def _write(session: Session, rows: Sequence[_Resolved], now: datetime) -> Stored:
    """Changed and new customers, new bills, changed bills and recipients; flushed, not
    committed. One statement per table, except a known customer that changed: each goes
    through ``apply_changes`` so that its pending notices follow."""
    stored = Stored()
    # Once each, in order: a customer shared by several rows is one _Customer (eq=False).
    customers = list(dict.fromkeys(row.customer for row in rows))
    for customer in customers:
        if customer.stored is not None and customer.values:
            stored.followed.extend(apply_changes(session, customer.stored, customer.values))
    new_customers = [c for c in customers if c.stored is None and c.id is None]
    if new_customers:
        ids = session.execute(
            insert(_CONTACTS).returning(_CONTACTS.c.id, sort_by_parameter_order=True),
            [customer.values for customer in new_customers],
        ).scalars()
        for customer, new_id in zip(new_customers, ids, strict=True):
            customer.id = new_id
    fresh = [row for row in rows if row.anchor is None]
    if fresh:
        inserted = session.execute(
            insert(_ANCHORS).returning(_ANCHORS.c.id, sort_by_parameter_order=True),
            [
                {
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
