"""What a due notice becomes when it fires: the SMS to hand over, or the outcome that ends it
(too late, opted out, a template that cannot render)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reminders.accounts.terms import Terms
from reminders.models import Anchor, Contact, Notice, NoticeKind, NoticeStatus
from reminders.scheduler.context import TemplateContexts
from reminders.scheduler.outcomes import Outcome
from reminders.sender.base import OutgoingSms
from reminders.sender.compose import compose
from reminders.settings import Settings
from reminders.templates import RenderError, render

Ready = OutgoingSms | Outcome

BILL_GRACE = timedelta(days=1)


def lateness(notice: Notice, anchor: Anchor | None, now: datetime, grace: timedelta) -> str | None:
    """Why a notice that fires at ``now`` is no longer worth sending, or None if it still is.

    A notice fires late when the service was down or busy when it came due. An event reminder
    is useful until the event starts and within the grace period; a bill notice for a day.
    """
    late_by = now - notice.send_at
    if notice.kind == NoticeKind.event_reminder and anchor is not None and now >= anchor.at:
        return "the event had already started when the reminder could be sent"
    limit = BILL_GRACE if notice.kind in (NoticeKind.bill_due, NoticeKind.bill_overdue) else grace
    if late_by > limit:
        return f"it came due {_human(late_by)} earlier, past the {_human(limit)} it may be late"
    return None


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def prepare(
    notice: Notice,
    contact: Contact | None,
    anchor: Anchor | None,
    now: datetime,
    settings: Settings,
    provider: str,
    terms: Terms | None = None,
    contexts: TemplateContexts | None = None,
) -> Ready:
    """The SMS to send for this notice, or the outcome that ends it without sending.

    ``terms`` are its account's (None: an account that changes nothing); ``contexts``: the
    template contexts of the notices prepared at the same ``now``.
    """
    late = lateness(notice, anchor, now, settings.late_grace)
    if late is not None:
        return Outcome(NoticeStatus.expired, late)
    if contact is not None and contact.opted_out:
        return Outcome(NoticeStatus.suppressed, "the contact opted out")
    terms = terms or Terms(notice.account_id)
    refused = terms.refusal(notice.sender_id)
    if refused is not None:
        # Its account's list changed after the message or policy was written.
        return Outcome(NoticeStatus.failed, f"{refused}; it was not sent")
    text = notice.text
    if notice.is_template:
        zone = ZoneInfo(
            (anchor.timezone if anchor and anchor.all_day else None)
            or (contact.timezone if contact else None)
            or settings.timezone
        )
        try:
            contexts = contexts or TemplateContexts(now)
            text = render(notice.text, contexts.build(notice, contact, anchor, zone))
        except RenderError as exc:
            attempt = {
                "provider": provider,
                "status": NoticeStatus.failed,
                "error_code": "template",
                "error": str(exc)[:2000],
                "submitted_at": now,
            }
            return Outcome(NoticeStatus.failed, str(exc)[:500], attempt)
    assert notice.id is not None
    # Composed at the last moment, from the text as it now reads: a "„" or a non-breaking space
    # from a template would otherwise turn the whole SMS into UCS-2 and double its price.
    composed = compose(text, transliterate=notice.transliterate)
    return OutgoingSms(
        notice_id=notice.id,
        to=notice.phone,
        text=composed.text,
        sender_id=terms.sender_for(notice.sender_id, settings.sender_id),
        segments=composed.segments,
        encoding=composed.encoding,
        lane=notice.priority,
    )
