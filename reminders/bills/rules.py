"""The rules of a bill: the one place POST /bills and a batch decide what a row means.

``resolve`` takes a row and what a few queries fetched beforehand (``Lookups``) and decides
everything about it (its policy, its customer and what the row changes on it, its amount, its
due date, its title, the bill it updates) without writing, raising the first rule it breaks;
``writing`` writes what it decided. Who the customer is follows the rules of every contact
(``contacts.matching``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from sqlmodel import Session, col, select

from reminders.bills.schemas import BillIn
from reminders.contacts.matching import ContactKeys, Found, Known, Matcher, OnPhone
from reminders.dates import DateParseError, parse_date
from reminders.db import in_chunks
from reminders.errors import Conflict, InvalidField
from reminders.models import BILL_KEY_PREFIX, Anchor
from reminders.policies import list_policies
from reminders.settings import Settings

KEY_PREFIX = BILL_KEY_PREFIX
# Without a title a bill is called this, in its customer's language.
DEFAULT_TITLES = {"bg": "Сметка", "en": "Bill"}


def check_minor_units(amount: str, currency: str) -> None:
    """Refuse decimals the currency does not have (JPY, HUF: none); at most two for any."""
    digits = min(2, get_currency_precision(currency))
    exponent = Decimal(amount).normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        if digits == 0:
            raise InvalidField(
                f"{currency} has no minor unit: write a whole amount", field="amount"
            )
        raise InvalidField(f"{currency} amounts have at most {digits} decimals", field="amount")


def bill_title(given: str | None, stored: str | None, language: str) -> str:
    """The title given, else the one given before, else "Сметка" or "Bill" for the customer."""
    if given:
        return given
    if stored and stored not in DEFAULT_TITLES.values():
        return stored
    return DEFAULT_TITLES.get(language, DEFAULT_TITLES["bg"])


def customer_keys(rows: Sequence[BillIn], region: str) -> ContactKeys:
    """What the rows' inline customers are looked up by."""
    inline = [row.contact for row in rows if not isinstance(row.contact, int)]
    return ContactKeys.of((spec.model_dump(exclude_none=True) for spec in inline), region)


def natural_keys(rows: Sequence[BillIn], customers: ContactKeys) -> list[str]:
    """What to lock before ``Lookups.prefetch`` (``keylocks``): the rows' bills, and their
    customers' external ids and phones."""
    return [*(KEY_PREFIX + row.external_id for row in rows), *customers.locks()]


@dataclass
class Lookups:
    """What the rows look up, fetched beforehand in a few queries."""

    policies: set[str] = field(default_factory=set)
    contacts: Known = field(default_factory=Known)
    anchors_by_key: dict[str, Anchor] = field(default_factory=dict)

    @classmethod
    def prefetch(cls, session: Session, rows: Sequence[BillIn], customers: ContactKeys) -> Lookups:
        ids = [row.contact for row in rows if isinstance(row.contact, int)]
        found = cls(
            policies={p.name for p in list_policies(session)},
            contacts=Known.fetch(session, customers, ids),
        )
        for chunk in in_chunks([KEY_PREFIX + row.external_id for row in rows]):
            for anchor in session.exec(select(Anchor).where(col(Anchor.key).in_(chunk))):
                found.anchors_by_key[anchor.key] = anchor
        return found


@dataclass
class Resolved:
    """A row ready to write: everything decided, nothing written."""

    index: int
    data: BillIn
    customer: Found
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
    customers: Matcher,
    *,
    settings: Settings,
    now: datetime,
) -> Resolved:
    """The rules of a bill, decided in memory: the first one broken refuses the row.

    ``customers`` knows the customers of the rows accepted before this one (``accept``).
    """
    if data.policy not in lookups.policies:
        raise InvalidField(f"no policy named {data.policy!r}", field="policy")
    changes: dict[str, Any] = {}
    if isinstance(data.contact, int):
        customer = customers.with_id(data.contact, field="contact")
    else:
        given = data.contact.model_dump(exclude_none=True)
        customer, changes = customers.match(given, on_phone=OnPhone.USE, field_prefix="contact.")
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
