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

from pydantic import AfterValidator, BaseModel, Field, ValidationError
from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from reminders.contacts import create_contact, find_by_external_id, get_contact
from reminders.dates import DateParseError, parse_date
from reminders.db import utcnow
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
from reminders.policies import get_policy_or_none
from reminders.scheduler.anchors import PlanReport, cancel_for, plan_for
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


def _contact_for(session: Session, spec: int | BillContact, settings: Settings) -> Contact:
    if isinstance(spec, int):
        try:
            return get_contact(session, spec)
        except NotFound:
            raise InvalidField(f"no contact with id {spec}", field="contact") from None
    phone = normalize_mobile(spec.phone, settings.default_region, field="contact.phone")
    found = find_by_external_id(session, spec.external_id) if spec.external_id else None
    if found is None and not spec.external_id:
        found = session.exec(select(Contact).where(Contact.phone == phone)).first()
    if found is not None:
        return found
    data = ContactCreate(
        name=spec.name,
        phone=phone,
        email=spec.email,
        external_id=spec.external_id,
        language=spec.language or "bg",
        timezone=spec.timezone,
    )
    return create_contact(session, data, region=settings.default_region)


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
    if get_policy_or_none(session, data.policy) is None:
        raise InvalidField(f"no policy named {data.policy!r}", field="policy")
    contact = _contact_for(session, data.contact, settings)
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
    anchor = session.exec(select(Anchor).where(Anchor.key == KEY_PREFIX + data.external_id)).first()
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
    session.exec(delete(AnchorRecipient).where(col(AnchorRecipient.anchor_id) == anchor.id))  # type: ignore[call-overload]
    session.execute(
        insert(AnchorRecipient.__table__),  # type: ignore[attr-defined]
        [{"anchor_id": anchor.id, "phone": contact.phone, "contact_id": contact.id}],
    )
    session.commit()
    report = plan_for(session, scheduler, anchor.id, settings=settings, now=now)
    return Upserted(anchor, created, report)


def upsert_many(
    session: Session,
    scheduler: JobScheduler | None,
    rows: Sequence[dict[str, Any]],
    *,
    settings: Settings,
) -> BatchOut:
    """Each row on its own: a bad row is refused with its reasons, the good ones are kept."""
    created = updated = 0
    refused: list[RowError] = []
    for index, raw in enumerate(rows):
        external_id = raw.get("external_id") if isinstance(raw.get("external_id"), str) else None
        try:
            data = BillIn.model_validate(raw)
            result = upsert_bill(session, scheduler, data, settings=settings)
        except ValidationError as exc:
            session.rollback()
            errors = [
                {
                    "field": ".".join(str(p) for p in e["loc"]) or "row",
                    "message": str(e["msg"]).removeprefix("Value error, "),
                }
                for e in exc.errors()
            ]
            refused.append(RowError(index=index, external_id=external_id, errors=errors))
            continue
        except DomainError as exc:
            session.rollback()
            refused.append(
                RowError(
                    index=index,
                    external_id=external_id,
                    errors=[{"field": exc.field or "row", "message": exc.message}],
                )
            )
            continue
        if result.created:
            created += 1
        else:
            updated += 1
    return BatchOut(created=created, updated=updated, refused=refused)


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
        scheduler.schedule([(notice.id, now)], new=True)
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
