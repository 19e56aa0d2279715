"""Bills from billing systems: anchors of kind "bill", due on a date, upserted by external_id.

This module holds their shapes, the rules about their amounts and titles, and what happens to a
stored bill (read, listed, paid, a payment refused); writing them, one or many, is
``bill_batch``'s.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from pydantic import AfterValidator, BaseModel, Field
from sqlmodel import Session, col, select

from reminders.db import in_chunks, utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import (
    Anchor,
    AnchorKind,
    AnchorRecipient,
    Contact,
    Notice,
    NoticeKind,
    NoticeStatus,
    Priority,
)
from reminders.notices import JobScheduler, notices_by_anchor
from reminders.paging import page
from reminders.scheduler.anchors import cancel_for
from reminders.scheduler.context import template_context
from reminders.schemas.common import (
    Email,
    ExternalId,
    Id,
    Input,
    Language,
    Name,
    Phone,
    TimeZoneName,
    _no_control_chars,
)
from reminders.schemas.notices import NoticeOut
from reminders.templates import render

KEY_PREFIX = "bill:ext:"
_AMOUNT = re.compile(r"\d{1,12}(\.\d+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
# Without a title a bill is called this, in its customer's language.
DEFAULT_TITLES = {"bg": "Сметка", "en": "Bill"}
# Sent as it is written when the payment is refused; the reason only when the caller gave one.
PAYMENT_FAILED = (
    '{% if lang == "en" %}The payment of {{ title }} ({{ amount }} {{ currency }}) was refused'
    "{% if reason %}: {{ reason }}{% endif %}.{% else %}Плащането на {{ title }} "
    "({{ amount }} {{ currency }}) беше отказано{% if reason %}: {{ reason }}{% endif %}."
    "{% endif %}"
)


def _amount(value: str) -> str:
    if not _AMOUNT.fullmatch(value):
        raise ValueError("write the amount as a decimal string such as '84.20'")
    whole, _, decimals = value.partition(".")
    if len(decimals) > 2:
        # Rounding someone's bill silently would send a wrong amount.
        raise ValueError(f"{value!r} has more than two decimals")
    return str(Decimal(value))


def _currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValueError("use a three-letter ISO 4217 code such as BGN or EUR")
    return value


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


class BillContact(Input):
    """The customer, matched by external_id, else by phone; created if unknown.

    A customer known by external_id needs nothing else, and the fields given change it (a new
    phone takes its pending notices along); one matched by phone is used as it is. A new one
    needs ``name`` and ``phone``.
    """

    external_id: ExternalId | None = None
    phone: Phone | None = None
    name: Name | None = None
    email: Email | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None


Text = Annotated[str, Field(max_length=200), AfterValidator(_no_control_chars)]
ContactId = Annotated[Id, Field(description="a contact id")]


class BillIn(Input):
    external_id: ExternalId
    contact: ContactId | BillContact = Field(description="A contact id, or the customer inline.")
    amount: Annotated[str, Field(max_length=20), AfterValidator(_amount)] = Field(
        description="A decimal string, at most two decimals (none for JPY and the like)."
    )
    currency: Annotated[str, AfterValidator(_currency)] = "BGN"
    due: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_control_chars)] = (
        Field(description="ISO date, 15.12.2026, or words: 'tomorrow', 'утре'.")
    )
    reference: Text | None = None
    title: Text | None = Field(
        default=None,
        description="What the bill is for; default 'Сметка' or 'Bill', in the customer's language.",
    )
    policy: Annotated[str, Field(min_length=1, max_length=64)] = "bill"


class PaymentFailedIn(Input):
    reason: Text | None = Field(
        default=None,
        description="Why the payment was refused, in the customer's language; the SMS names "
        "no reason without it.",
    )


class BillOut(BaseModel):
    id: int
    external_id: str
    contact_id: int | None
    title: str
    amount: str
    currency: str
    due: date = Field(description="The due date as understood.")
    reference: str | None
    policy: str
    paid: bool
    created: bool = Field(description="True if this request created the bill.")
    notices: list[NoticeOut]


class BatchIn(Input):
    bills: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class RowError(BaseModel):
    index: int
    external_id: str | None
    errors: list[dict[str, str]]


class BatchOut(BaseModel):
    created: int
    updated: int
    refused: list[RowError]


def get_bill(session: Session, bill_id: int) -> Anchor:
    anchor = session.get(Anchor, bill_id)
    if anchor is None or anchor.kind != AnchorKind.bill:
        raise NotFound(f"no bill with id {bill_id}", field="id")
    return anchor


def list_bills(
    session: Session,
    *,
    external_id: str | None = None,
    contact_id: int | None = None,
    status: Literal["paid", "unpaid"] | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Anchor], str | None]:
    query = select(Anchor).where(Anchor.kind == AnchorKind.bill)
    if external_id is not None:
        query = query.where(Anchor.key == KEY_PREFIX + external_id)
    if contact_id is not None:
        of_contact = select(AnchorRecipient.anchor_id).where(
            AnchorRecipient.contact_id == contact_id
        )
        query = query.where(col(Anchor.id).in_(of_contact))
    if status is not None:
        # A paid bill is a cancelled anchor: paying it is the only way a bill is cancelled.
        query = query.where(col(Anchor.cancelled) == (status == "paid"))
    return page(session, query, Anchor.id, limit=limit, cursor=cursor)


def mark_paid(session: Session, scheduler: JobScheduler | None, bill_id: int) -> Anchor:
    anchor = get_bill(session, bill_id)
    assert anchor.id is not None
    if not anchor.cancelled:
        anchor.data = {**anchor.data, "paid_at": utcnow().isoformat()}
        session.add(anchor)
        session.commit()
    cancel_for(session, scheduler, anchor.id, reason="the bill was paid")
    session.refresh(anchor)
    return anchor


def payment_failed(
    session: Session, scheduler: JobScheduler | None, bill_id: int, *, reason: str | None = None
) -> Notice:
    """An immediate transactional notice to the bill's customer: the payment was refused.

    Its text is final when stored (it goes at once), so that the caller's ``reason`` is data in
    the template's context, never template code.
    """
    anchor = get_bill(session, bill_id)
    assert anchor.id is not None
    if anchor.cancelled:
        external_id = anchor.key.removeprefix(KEY_PREFIX)
        raise Conflict(f"bill {external_id!r} was marked paid", field="id")
    recipient = session.exec(
        select(AnchorRecipient).where(AnchorRecipient.anchor_id == anchor.id)
    ).first()
    if recipient is None:
        raise Conflict("the bill has no recipient", field="id")
    contact = session.get(Contact, recipient.contact_id) if recipient.contact_id else None
    now = utcnow()
    notice = Notice(
        key=f"anchor:{anchor.id}:payment-failed:{uuid.uuid4().hex[:12]}",
        kind=NoticeKind.payment_failed,
        status=NoticeStatus.scheduled,
        anchor_id=anchor.id,
        contact_id=recipient.contact_id,
        phone=recipient.phone,
        text="",
        priority=Priority.transactional,
        send_at=now,
        created_at=now,
        updated_at=now,
    )
    zone = ZoneInfo(anchor.timezone or "UTC")
    context = template_context(notice, contact, anchor, zone, now)
    notice.text = render(PAYMENT_FAILED, {**context, "reason": reason or ""})
    session.add(notice)
    session.commit()
    if scheduler is not None and notice.id is not None:
        scheduler.schedule([(notice.id, now, Priority.transactional)], new=True)
    return notice


def bill_out(session: Session, anchor: Anchor, *, created: bool = False) -> BillOut:
    [out] = bills_out(session, [anchor])
    return out.model_copy(update={"created": created})


def bills_out(session: Session, anchors: Sequence[Anchor]) -> list[BillOut]:
    """Bills as the API shows them, with their notices: two queries for the lot."""
    ids = [anchor.id for anchor in anchors if anchor.id is not None]
    notices = notices_by_anchor(session, ids)
    customers: dict[int, int | None] = {}
    for chunk in in_chunks(ids):
        for anchor_id, contact_id in session.exec(
            select(AnchorRecipient.anchor_id, AnchorRecipient.contact_id).where(
                col(AnchorRecipient.anchor_id).in_(chunk)
            )
        ):
            customers.setdefault(anchor_id, contact_id)
    out = []
    for anchor in anchors:
        assert anchor.id is not None
        data = anchor.data
        out.append(
            BillOut(
                id=anchor.id,
                external_id=anchor.key.removeprefix(KEY_PREFIX),
                contact_id=customers.get(anchor.id),
                title=anchor.title,
                amount=data.get("amount", ""),
                currency=data.get("currency", ""),
                due=date.fromisoformat(data["due"]),
                reference=data.get("reference"),
                policy=anchor.policy,
                paid=anchor.cancelled,
                created=False,
                notices=[
                    NoticeOut.model_validate(n, from_attributes=True) for n in notices[anchor.id]
                ],
            )
        )
    return out
