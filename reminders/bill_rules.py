"""The rules of a bill row, decided in memory: the one place POST /bills and a batch check.

``resolve`` takes a row and what a few queries fetched beforehand (``Lookups``) and decides
everything about it (its policy, its customer and what the row changes on it, its amount, its
due date, its title, the bill it updates) without writing, raising the first rule it breaks;
``bill_batch`` writes what it decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from reminders.bills import KEY_PREFIX, BillContact, BillIn, bill_title, check_minor_units
from reminders.dates import DateParseError, parse_date
from reminders.db import in_chunks
from reminders.errors import Conflict, InvalidField
from reminders.keylocks import contact_key, phone_key
from reminders.models import Anchor, Contact
from reminders.phones import normalize_mobile
from reminders.policies import list_policies
from reminders.settings import Settings

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
        ext_ids, phones = _inline_customers(rows, region)
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


def _inline_customers(rows: Sequence[BillIn], region: str) -> tuple[list[str], list[str]]:
    """The external ids and the phones (E.164) of the rows' inline customers."""
    specs = [r.contact for r in rows if isinstance(r.contact, BillContact)]
    phones = []
    for spec in specs:
        if spec.phone is not None:
            try:
                phones.append(normalize_mobile(spec.phone, region))
            except InvalidField:
                pass  # refused with its row
    return [s.external_id for s in specs if s.external_id], phones


def natural_keys(rows: Sequence[BillIn], region: str) -> list[str]:
    """What the rows are looked up by, to lock before ``Lookups.prefetch`` (``keylocks``): their
    bills' keys, and their new or known customers' external ids and phones."""
    ext_ids, phones = _inline_customers(rows, region)
    return [
        *(KEY_PREFIX + row.external_id for row in rows),
        *(contact_key(ext_id) for ext_id in ext_ids),
        *(phone_key(phone) for phone in phones),
    ]


@dataclass(eq=False)
class Customer:
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
class Customers:
    """The customers of the rows accepted so far, found again by a later row."""

    by_id: dict[int, Customer] = field(default_factory=dict)
    by_external_id: dict[str, Customer] = field(default_factory=dict)
    by_phone: dict[str, Customer] = field(default_factory=dict)

    def of(self, contact: Contact) -> Customer:
        """The one ``Customer`` of a stored contact, so that the changes of rows add up."""
        assert contact.id is not None
        if contact.id not in self.by_id:
            self.by_id[contact.id] = Customer(contact)
        return self.by_id[contact.id]

    def accept(self, row: Resolved) -> None:
        customer = row.customer
        customer.values.update(row.changes)
        if customer.stored is None:
            customer.values["name_folded"] = customer.values["name"].casefold()
            self.by_phone.setdefault(customer.get("phone"), customer)
        if customer.get("external_id"):
            self.by_external_id[customer.get("external_id")] = customer


@dataclass
class Resolved:
    """A row ready to write: everything decided, nothing written."""

    index: int
    data: BillIn
    customer: Customer
    changes: dict[str, Any]  # to the customer, by this row
    title: str
    zone: str
    at: datetime
    values: dict[str, Any]
    anchor: Anchor | None  # the bill as stored, when this row updates it


def resolve(
    index: int,
    data: BillIn,
    lookups: Lookups,
    customers: Customers,
    *,
    settings: Settings,
    now: datetime,
) -> Resolved:
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
    return Resolved(index, data, customer, changes, title, zone, at, values, anchor)


def _customer(
    spec: int | BillContact,
    lookups: Lookups,
    customers: Customers,
    *,
    settings: Settings,
    now: datetime,
) -> tuple[Customer, dict[str, Any]]:
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
    known: Customer | None = None
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
    return Customer(None, values), {}
