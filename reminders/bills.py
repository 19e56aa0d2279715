"""Bills from billing systems: anchors of kind "bill", due on a date, upserted by external_id."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, Field
from sqlmodel import Session, col, select

from reminders.contacts import create_contact, find_by_external_id, get_contact
from reminders.dates import DateParseError, parse_date
from reminders.db import in_chunks, utcnow
from reminders.errors import Conflict, DomainError, InvalidField, NotFound
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
from reminders.notices import JobScheduler
from reminders.phones import normalize_mobile
from reminders.policies import get_policy_or_none, list_policies
from reminders.scheduler.anchors import (
    PlanReport,
    cancel_for,
    plan_for,
    set_recipients,
)
from reminders.schemas import (
    ContactCreate,
    Email,
    ExternalId,
    Id,
    Input,
    Language,
    Name,
    NoticeOut,
    Phone,
    TimeZoneName,
    _no_control_chars,
)
from reminders.settings import Settings

KEY_PREFIX = "bill:ext:"
_AMOUNT = re.compile(r"\d{1,12}(\.\d{1,4})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
PAYMENT_FAILED = (
    '{% if lang == "en" %}The payment of {{ title }} ({{ amount }} {{ currency }}) was refused '
    "for lack of funds.{% else %}Плащането на {{ title }} ({{ amount }} {{ currency }}) беше "
    "отказано поради недостиг на средства.{% endif %}"
)


def _amount(value: str) -> str:
    if not _AMOUNT.fullmatch(value):
        raise ValueError("write the amount as a decimal string such as '84.20'")
    try:
        return str(Decimal(value))
    except InvalidOperation:
        raise ValueError("write the amount as a decimal string such as '84.20'") from None


def _currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValueError("use a three-letter ISO 4217 code such as BGN or EUR")
    return value


class BillContact(Input):
    """The customer, matched by external_id, else by phone; created if unknown."""

    external_id: ExternalId | None = None
    phone: Phone
    name: Name
    email: Email | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None


Text = Annotated[str, Field(max_length=200), AfterValidator(_no_control_chars)]


class BillIn(Input):
    external_id: ExternalId
    contact: Id | BillContact = Field(description="A contact id, or the customer inline.")
    amount: Annotated[str, Field(max_length=20), AfterValidator(_amount)]
    currency: Annotated[str, AfterValidator(_currency)] = "BGN"
    due: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_control_chars)] = (
        Field(description="ISO date, 15.12.2026, or words: 'tomorrow', 'утре'.")
    )
    reference: Text | None = None
    title: Text | None = Field(default=None, description="What the bill is for; default 'Bill'.")
    policy: Annotated[str, Field(min_length=1, max_length=64)] = "bill"


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


@dataclass
class Upserted:
    anchor: Anchor
    created: bool
    report: PlanReport = field(default_factory=PlanReport)


@dataclass
class Lookups:
    """What a batch looks up row by row, fetched beforehand in a few queries."""

    policies: set[str] = field(default_factory=set)
    contacts_by_external_id: dict[str, Contact] = field(default_factory=dict)
    contacts_by_phone: dict[str, Contact] = field(default_factory=dict)
    contacts_by_id: dict[int, Contact] = field(default_factory=dict)
    anchors_by_key: dict[str, Anchor] = field(default_factory=dict)

    @classmethod
    def prefetch(cls, session: Session, rows: Sequence[BillIn], region: str) -> Lookups:
        found = cls(policies={p.name for p in list_policies(session)})
        ext_ids = [r.contact.external_id for r in rows if isinstance(r.contact, BillContact)]
        phones = []
        for row in rows:
            if isinstance(row.contact, BillContact):
                try:
                    phones.append(normalize_mobile(row.contact.phone, region))
                except InvalidField:
                    pass  # refused with its row
        keys = [KEY_PREFIX + r.external_id for r in rows]
        for chunk in in_chunks([e for e in ext_ids if e]):
            for contact in session.exec(select(Contact).where(col(Contact.external_id).in_(chunk))):
                found.contacts_by_external_id[contact.external_id or ""] = contact
        for chunk in in_chunks(phones):
            for contact in session.exec(select(Contact).where(col(Contact.phone).in_(chunk))):
                found.contacts_by_phone.setdefault(contact.phone, contact)
        for chunk in in_chunks(keys):
            for anchor in session.exec(select(Anchor).where(col(Anchor.key).in_(chunk))):
                found.anchors_by_key[anchor.key] = anchor
        return found


def _contact_for(
    session: Session, spec: int | BillContact, settings: Settings, lookups: Lookups | None
) -> Contact:
    if isinstance(spec, int):
        try:
            return get_contact(session, spec)
        except NotFound:
            raise InvalidField(f"no contact with id {spec}", field="contact") from None
    phone = normalize_mobile(spec.phone, settings.default_region, field="contact.phone")
    if lookups is not None:
        if spec.external_id:
            found = lookups.contacts_by_external_id.get(spec.external_id)
        else:
            found = lookups.contacts_by_phone.get(phone)
    else:
        found = find_by_external_id(session, spec.external_id) if spec.external_id else None
        if found is None and not spec.external_id:
            found = session.exec(select(Contact).where(Contact.phone == phone)).first()
    if found is not None:
        return found
    if lookups is not None and spec.external_id:
        # The lookup already showed the external_id is free: skip create_contact's own check.
        contact = Contact(
            name=spec.name,
            name_folded=spec.name.casefold(),
            phone=phone,
            email=spec.email,
            external_id=spec.external_id,
            language=spec.language or "bg",
            timezone=spec.timezone,
        )
        session.add(contact)
        session.flush()
    else:
        data = ContactCreate(
            name=spec.name,
            phone=phone,
            email=spec.email,
            external_id=spec.external_id,
            language=spec.language or "bg",
            timezone=spec.timezone,
        )
        contact = create_contact(session, data, region=settings.default_region)
    if lookups is not None:
        lookups.contacts_by_phone.setdefault(phone, contact)
        if spec.external_id:
            lookups.contacts_by_external_id[spec.external_id] = contact
    return contact


def upsert_bill(
    session: Session,
    scheduler: JobScheduler | None,
    data: BillIn,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> Upserted:
    """Create the bill or update it (same external_id) and plan its notices."""
    now = now or utcnow()
    anchor, created = _store_bill(session, data, settings=settings, now=now)
    session.commit()
    assert anchor.id is not None
    report = plan_for(session, scheduler, anchor.id, settings=settings, now=now)
    return Upserted(anchor, created, report)


def _store_bill(
    session: Session,
    data: BillIn,
    *,
    settings: Settings,
    now: datetime,
    lookups: Lookups | None = None,
) -> tuple[Anchor, bool]:
    """Write the bill, its customer and its recipient; flushed, not committed, not planned."""
    if lookups is not None:
        known = data.policy in lookups.policies
    else:
        known = get_policy_or_none(session, data.policy) is not None
    if not known:
        raise InvalidField(f"no policy named {data.policy!r}", field="policy")
    contact = _contact_for(session, data.contact, settings, lookups)
    zone_name = contact.timezone or settings.timezone
    zone = ZoneInfo(zone_name)
    try:
        due = parse_date(data.due, zone=zone, now=now)
    except DateParseError as exc:
        raise InvalidField(str(exc), field="due") from None
    # A bill is due on a day, wherever its customer is: local midnight of that day.
    at = datetime.combine(due, time(0, 0), tzinfo=zone)
    values = {
        "amount": data.amount,
        "currency": data.currency,
        "reference": data.reference,
        "due": due.isoformat(),
    }
    key = KEY_PREFIX + data.external_id
    if lookups is not None:
        anchor = lookups.anchors_by_key.get(key)
    else:
        anchor = session.exec(select(Anchor).where(Anchor.key == key)).first()
    created = anchor is None
    if anchor is None:
        anchor = Anchor(
            key=KEY_PREFIX + data.external_id, kind=AnchorKind.bill, title="", at=at, policy=""
        )
    elif anchor.cancelled:
        raise Conflict(f"bill {data.external_id!r} was marked paid", field="external_id")
    anchor.title = data.title or anchor.title or "Bill"
    anchor.at, anchor.all_day, anchor.timezone, anchor.policy = at, True, zone_name, data.policy
    anchor.data = {**anchor.data, **values}
    anchor.updated_at = now
    session.add(anchor)
    session.flush()
    assert anchor.id is not None and contact.id is not None
    set_recipients(session, anchor.id, [(contact.phone, contact.id)], replace=not created)
    return anchor, created


def store_one_by_one(
    session: Session,
    rows: Sequence[tuple[int, BillIn]],
    *,
    settings: Settings,
    now: datetime,
) -> tuple[list[int], int, list[RowError]]:
    """Write valid rows each inside a savepoint, so that a bad one leaves no trace; commit.

    Returns the stored anchors' ids, how many of them are new, and the rows refused. The
    batch path (``bill_batch``) falls back to this when its set-based write meets a conflict.
    """
    lookups = Lookups.prefetch(session, [data for _, data in rows], settings.default_region)
    stored: list[int] = []
    created = 0
    refused: list[RowError] = []
    for index, data in rows:
        try:
            with session.begin_nested():
                anchor, is_new = _store_bill(
                    session, data, settings=settings, now=now, lookups=lookups
                )
        except DomainError as exc:
            errors = [{"field": exc.field or "row", "message": exc.message}]
            refused.append(RowError(index=index, external_id=data.external_id, errors=errors))
            continue
        lookups.anchors_by_key[anchor.key] = anchor
        assert anchor.id is not None
        stored.append(anchor.id)
        created += is_new
    session.commit()
    return stored, created, refused


def get_bill(session: Session, bill_id: int) -> Anchor:
    anchor = session.get(Anchor, bill_id)
    if anchor is None or anchor.kind != AnchorKind.bill:
        raise NotFound(f"no bill with id {bill_id}", field="id")
    return anchor


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


def payment_failed(session: Session, scheduler: JobScheduler | None, bill_id: int) -> Notice:
    """An immediate transactional notice to the bill's customer: the payment was refused."""
    anchor = get_bill(session, bill_id)
    assert anchor.id is not None
    recipient = session.exec(
        select(AnchorRecipient).where(AnchorRecipient.anchor_id == anchor.id)
    ).first()
    if recipient is None:
        raise Conflict("the bill has no recipient", field="id")
    now = utcnow()
    notice = Notice(
        key=f"anchor:{anchor.id}:payment-failed:{uuid.uuid4().hex[:12]}",
        kind=NoticeKind.payment_failed,
        status=NoticeStatus.scheduled,
        anchor_id=anchor.id,
        contact_id=recipient.contact_id,
        phone=recipient.phone,
        text=PAYMENT_FAILED,
        is_template=True,
        priority=Priority.transactional,
        send_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(notice)
    session.commit()
    if scheduler is not None and notice.id is not None:
        scheduler.schedule([(notice.id, now, Priority.transactional)], new=True)
    return notice


def bill_out(session: Session, anchor: Anchor, *, created: bool = False) -> BillOut:
    assert anchor.id is not None
    notices = session.exec(
        select(Notice).where(Notice.anchor_id == anchor.id).order_by(col(Notice.send_at))
    ).all()
    recipient = session.exec(
        select(AnchorRecipient).where(AnchorRecipient.anchor_id == anchor.id)
    ).first()
    data = anchor.data
    return BillOut(
        id=anchor.id,
        external_id=anchor.key.removeprefix(KEY_PREFIX),
        contact_id=recipient.contact_id if recipient else None,
        title=anchor.title,
        amount=data.get("amount", ""),
        currency=data.get("currency", ""),
        due=date.fromisoformat(data["due"]),
        reference=data.get("reference"),
        policy=anchor.policy,
        paid=anchor.cancelled,
        created=created,
        notices=[NoticeOut.model_validate(n, from_attributes=True) for n in notices],
    )
