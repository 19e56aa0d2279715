"""Messages pushed through the API: resolve the recipients, create one notice each, schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlmodel import Session, col, select

from reminders.accounts.quota import check_message
from reminders.accounts.senders import check_sender_id
from reminders.dates import DateParseError, parse_datetime
from reminders.db import in_chunks, utcnow
from reminders.durations import Offset
from reminders.errors import InvalidField, NotFound
from reminders.groups import group_contact_ids
from reminders.models import PENDING, Contact, Message, Notice, NoticeKind, NoticeStatus, Priority
from reminders.pending_jobs import JobScheduler, schedule_after_commit
from reminders.phones import normalize_mobile
from reminders.scheduler.context import MESSAGE_SAMPLES, MESSAGE_VARIABLES, TemplateContexts
from reminders.scheduler.planning import Step, plan
from reminders.schemas.messages import MessageCreate, Recipients
from reminders.sender.compose import compose
from reminders.templates import RenderError, check_template, render
from reminders.wall_clock import QuietHours

# A send_at a little in the past is a clock skew or a slow client, and means "now"; further back
# it is a mistake the caller should hear about rather than a message sent at the wrong time.
PAST_TOLERANCE = timedelta(minutes=5)
# A message's context has no times in it: the zone it is built in changes nothing.
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Recipient:
    phone: str
    contact_id: int | None
    opted_out: bool
    timezone: str | None = None


def resolve_recipients(
    session: Session, to: Recipients, *, region: str, field: str = "to"
) -> list[Recipient]:
    """Contacts, then group members, then raw phones; one recipient per phone number.

    ``field`` names the request field in errors (``to`` for messages, ``recipients`` for events).
    """
    contact_ids: list[int] = list(dict.fromkeys(to.contacts))
    if contact_ids:
        found = set(session.exec(select(Contact.id).where(col(Contact.id).in_(contact_ids))).all())
        missing = [c for c in contact_ids if c not in found]
        if missing:
            shown = ", ".join(str(i) for i in missing[:20])
            raise InvalidField(f"no contact with id {shown}", field=f"{field}.contacts")
    for members in group_contact_ids(session, to.groups, field=f"{field}.groups").values():
        contact_ids.extend(members)
    contact_ids = list(dict.fromkeys(contact_ids))

    phones = [
        normalize_mobile(raw, region, field=f"{field}.phones.{index}")
        for index, raw in enumerate(to.phones)
    ]

    by_phone: dict[str, Recipient] = {}
    contacts: dict[int, Contact] = {}
    for chunk_start in range(0, len(contact_ids), 500):
        chunk = contact_ids[chunk_start : chunk_start + 500]
        for contact in session.exec(select(Contact).where(col(Contact.id).in_(chunk))):
            assert contact.id is not None
            contacts[contact.id] = contact
    for contact_id in contact_ids:
        contact = contacts[contact_id]
        by_phone.setdefault(
            contact.phone,
            Recipient(contact.phone, contact_id, contact.opted_out, contact.timezone),
        )

    raw_phones = [p for p in dict.fromkeys(phones) if p not in by_phone]
    if raw_phones:
        # A raw number that belongs to a contact is sent as that contact, opt-out included.
        known: dict[str, Contact] = {}
        for contact in session.exec(select(Contact).where(col(Contact.phone).in_(raw_phones))):
            known.setdefault(contact.phone, contact)
        for phone in raw_phones:
            match = known.get(phone)
            if match is not None:
                by_phone[phone] = Recipient(phone, match.id, match.opted_out, match.timezone)
            else:
                by_phone[phone] = Recipient(phone, None, False)
    return list(by_phone.values())


def fill_template(
    session: Session,
    template: str,
    recipients: list[Recipient],
    now: datetime,
    *,
    field: str = "text",
) -> list[str]:
    """``template`` filled in for each recipient, as firing will fill it in (the contact's
    name and attributes as they are now). A template that does not compile, uses a name a
    message cannot give, or fails for a recipient is refused naming ``field``."""
    check_template(template, field=field, variables=MESSAGE_VARIABLES, samples=MESSAGE_SAMPLES)
    ids = [r.contact_id for r in recipients if r.contact_id is not None]
    contacts: dict[int, Contact] = {}
    for chunk in in_chunks(ids):
        for found in session.exec(select(Contact).where(col(Contact.id).in_(chunk))):
            assert found.id is not None
            contacts[found.id] = found
    contexts = TemplateContexts(now)
    texts = []
    for recipient in recipients:
        contact = contacts.get(recipient.contact_id or 0)
        notice = Notice(
            key="", kind=NoticeKind.message, phone=recipient.phone, text="", send_at=now
        )
        try:
            texts.append(render(template, contexts.build(notice, contact, None, UTC_ZONE)))
        except RenderError as exc:
            raise InvalidField(f"for {recipient.phone}: {exc}", field=field) from None
    return texts


def create_message(
    session: Session,
    scheduler: JobScheduler | None,
    data: MessageCreate,
    *,
    region: str,
    quiet: QuietHours | None = None,
    zone: str = "Europe/Sofia",
    transliterate: bool = False,
    now: datetime | None = None,
) -> tuple[Message, list[Notice]]:
    """Store the message and its notices (flushed); the scheduled ones get their jobs after
    the caller's commit (``pending_jobs``).

    A bulk message that would reach someone inside quiet hours (on their clock; ``zone`` for
    numbers without a contact) waits for the end of them; a transactional one goes as asked.
    The account's rules apply: a sender ID it may use (``accounts/senders.py``), and SMS that
    fit in its monthly quota (``accounts/quota.py``).
    """
    now = now or utcnow()
    check_sender_id(session, data.sender_id)
    recipients = resolve_recipients(session, data.to, region=region)
    if not recipients:
        raise InvalidField("the groups named have no members", field="to")
    send_at = _send_at(data, recipients, zone, now)
    if send_at < now - PAST_TOLERANCE:
        raise InvalidField("is in the past; leave it out to send now", field="send_at")
    transliterate = transliterate if data.transliterate is None else data.transliterate
    times: dict[str, tuple[datetime, str | None]] = {}
    for recipient in recipients:
        zone_name = recipient.timezone or zone
        if zone_name not in times:
            times[zone_name] = _outside_quiet_hours(
                max(send_at, now), zone_name, quiet, data.priority, now
            )
    # Composed as the sender will: a message's text is final, so its segments are known now;
    # a template's, once filled in for each recipient (the quota counts the longest).
    if data.template:
        filled = fill_template(session, data.text, recipients, now)
        per_sms = max(compose(text, transliterate=transliterate).segments for text in filled)
    else:
        per_sms = compose(data.text, transliterate=transliterate).segments
    check_message(
        session,
        per_sms=per_sms,
        send_times=[times[r.timezone or zone][0] for r in recipients if not r.opted_out],
        zone=ZoneInfo(zone),
    )

    message = Message(
        text=data.text,
        sender_id=data.sender_id,
        send_at=send_at,
        priority=data.priority,
        created_at=now,
    )
    session.add(message)
    session.flush()
    rows = []
    for recipient in recipients:
        opted_out = recipient.opted_out
        notice_at, reason = times[recipient.timezone or zone]
        rows.append(
            {
                "account_id": message.account_id,
                "key": f"message:{message.id}:{recipient.phone}",
                "kind": NoticeKind.message,
                "status": _status(opted_out, notice_at, now),
                "status_reason": "the contact opted out" if opted_out else reason,
                "message_id": message.id,
                "contact_id": recipient.contact_id,
                "phone": recipient.phone,
                "text": data.text,
                "is_template": data.template,
                "sender_id": data.sender_id,
                "send_at": notice_at,
                "priority": data.priority,
                "transliterate": transliterate,
                "created_at": now,
                "updated_at": now,
            }
        )
    session.execute(insert(Notice.__table__), rows)  # type: ignore[attr-defined]
    notices = list(
        session.exec(select(Notice).where(Notice.message_id == message.id).order_by(col(Notice.id)))
    )
    schedule_after_commit(
        session,
        scheduler,
        [(n.id, n.send_at, n.priority) for n in notices if n.status in PENDING and n.id],
        new=True,
    )
    return message, notices


def _status(opted_out: bool, send_at: datetime, now: datetime) -> NoticeStatus:
    """Suppressed, or written ``due`` when its time has come (no job and no leader between a
    message sent now and the lanes), or ``scheduled`` for its job to mark it due."""
    if opted_out:
        return NoticeStatus.suppressed
    return NoticeStatus.due if send_at <= now else NoticeStatus.scheduled


def _send_at(
    data: MessageCreate, recipients: list[Recipient], zone: str, now: datetime
) -> datetime:
    """When the message goes, read as events read their start.

    Words and local times are read in the message's `timezone`, else in the recipients' own
    zone (`zone` for those without one). When recipients in several zones would read the text
    as different instants ("утре 10:00"), it is refused rather than sent at one zone's time.
    """
    if data.send_at is None:
        return now
    zones = [data.timezone] if data.timezone else sorted({r.timezone or zone for r in recipients})
    readings: dict[datetime, str] = {}
    for name in zones:
        try:
            value = parse_datetime(data.send_at, zone=ZoneInfo(name), now=now)
        except DateParseError as exc:
            raise InvalidField(str(exc), field="send_at") from None
        readings.setdefault(value.astimezone(UTC), name)
    if len(readings) > 1:
        raise InvalidField(
            f"'{data.send_at}' is a different time for recipients in {', '.join(zones)};"
            " add an offset or a timezone",
            field="send_at",
        )
    [instant] = readings
    return instant


def _outside_quiet_hours(
    send_at: datetime, zone: str, quiet: QuietHours | None, priority: str, now: datetime
) -> tuple[datetime, str | None]:
    """When a message asked for ``send_at`` may reach someone in ``zone``, and why if moved."""
    if quiet is None or priority == Priority.transactional:
        return send_at, None
    [planned] = plan(
        send_at,
        [Step(Offset(0, timedelta(0)))],
        zone=ZoneInfo(zone),
        now=now,
        default_kind=NoticeKind.message,
        quiet=quiet,
    )
    return planned.send_at or send_at, planned.reason


def get_message(session: Session, message_id: int) -> tuple[Message, list[Notice]]:
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message with id {message_id}", field="id")
    notices = list(
        session.exec(select(Notice).where(Notice.message_id == message_id).order_by(col(Notice.id)))
    )
    return message, notices
