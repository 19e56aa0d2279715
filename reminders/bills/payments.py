"""What happens to a stored bill's payment: paid, or refused."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from reminders.bills.reading import get_bill
from reminders.bills.rules import KEY_PREFIX
from reminders.db import utcnow
from reminders.errors import Conflict
from reminders.models import (
    Anchor,
    AnchorRecipient,
    Contact,
    Notice,
    NoticeKind,
    NoticeStatus,
    Priority,
)
from reminders.pending_jobs import JobScheduler, schedule_after_commit
from reminders.scheduler.anchors import cancel_for
from reminders.scheduler.context import template_context
from reminders.templates import render

# Sent as it is written when the payment is refused; the reason only when the caller gave one.
PAYMENT_FAILED = (
    '{% if lang == "en" %}The payment of {{ title }} ({{ amount }} {{ currency }}) was refused'
    "{% if reason %}: {{ reason }}{% endif %}.{% else %}Плащането на {{ title }} "
    "({{ amount }} {{ currency }}) беше отказано{% if reason %}: {{ reason }}{% endif %}."
    "{% endif %}"
)


def mark_paid(session: Session, scheduler: JobScheduler | None, bill_id: int) -> Anchor:
    """Cancel the bill's pending notices; flushed, their jobs dropped after the caller's
    commit."""
    anchor = get_bill(session, bill_id)
    assert anchor.id is not None
    if not anchor.cancelled:
        anchor.data = {**anchor.data, "paid_at": utcnow().isoformat()}
        session.add(anchor)
    cancel_for(session, scheduler, anchor.id, reason="the bill was paid")
    session.refresh(anchor)
    return anchor


def payment_failed(
    session: Session, scheduler: JobScheduler | None, bill_id: int, *, reason: str | None = None
) -> Notice:
    """An immediate transactional notice to the bill's customer: the payment was refused.

    Its text is final when stored (it goes at once), so that the caller's ``reason`` is data in
    the template's context, never template code. Flushed; its job is written after the
    caller's commit.
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
        # Due at once: an alert waits for no job and no leader.
        status=NoticeStatus.due,
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
    session.flush()
    assert notice.id is not None
    schedule_after_commit(session, scheduler, [(notice.id, now, Priority.transactional)], new=True)
    return notice
