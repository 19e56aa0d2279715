"""Inbound SMS: every one is kept; STOP opts a number out, START opts it back in, and any
other message may answer a reminder (``replies.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reminders.accounts.crud import DEFAULT_SLUG
from reminders.accounts.numbers import owner_of_number
from reminders.accounts.scoping import account_of, acting_for, current
from reminders.contacts.matching import ContactKeys, Found, Known, new_values
from reminders.contacts.writing import write_contacts
from reminders.db import utcnow
from reminders.errors import InvalidField
from reminders.keylocks import lock_keys
from reminders.models import Account, Contact, InboundMessage, Notice
from reminders.notices import suppress_pending
from reminders.paging import page
from reminders.pending_jobs import JobScheduler, unschedule_after_commit
from reminders.phones import normalize_mobile
from reminders.replies import answer
from reminders.settings import Settings
from reminders.storable import UNREADABLE, storable
from reminders.webhooks.events import EventType, iso
from reminders.webhooks.outbox import Event, enqueue


def _keywords(setting: str) -> set[str]:
    return {word.strip().casefold() for word in setting.split(",") if word.strip()}


def keyword_action(text: str, settings: Settings) -> str | None:
    """ "opt_out", "opt_in" or None: the message is a keyword and nothing else ("Stop!" and
    "стоп" are; "stop the 10:30 one" is not, nor is "не", which answers a reminder)."""
    words = text.strip().split()
    if len(words) != 1:
        return None
    word = words[0].strip(".,;:!?\"'()").casefold()
    if word in _keywords(settings.opt_out_keywords):
        return "opt_out"
    if word in _keywords(settings.opt_in_keywords):
        return "opt_in"
    return None


def receive(
    session: Session,
    scheduler: JobScheduler | None,
    *,
    provider: str,
    from_phone: str,
    text: str,
    settings: Settings,
    to: str | None = None,
    provider_message_id: str | None = None,
    received_at: datetime | None = None,
) -> InboundMessage:
    """Keep the message and act on it: its keyword, else as the answer to a reminder that asked
    for one (``replies.py``); a message the gateway sends again (same provider message id, a
    retry after a lost answer) is returned as first stored, and not acted on again.

    It belongs to the account that owns the number it was sent to (``to``), when one does,
    else to the account that last sent to its phone; it is kept, and its keyword acts, there.

    A NUL a gateway let through is dropped from the numbers and the id, and marked in the text:
    the message is kept either way. Flushed: the caller commits, and the jobs of the notices an
    opt-out suppressed are dropped after that.
    """
    from_phone, to = storable(from_phone), storable(to)
    provider_message_id = storable(provider_message_id)
    text = storable(text, mark=UNREADABLE)
    try:
        phone = normalize_mobile(from_phone, settings.default_region)
    except InvalidField:
        phone = from_phone.strip()[:40]  # kept as written: someone may still want to read it
    action = keyword_action(text, settings)
    # Two STOPs from a number we do not know, at once, make one contact of it. Every contact
    # with the number is the sender: a family sharing a phone opts out together.
    keys = ContactKeys(phones=[phone])
    lock_keys(session, keys.locks())
    if provider_message_id:
        # Looked for under the number's lock: the same message retried while we were still
        # answering it waits for the first, then finds it. The first one stands.
        earlier = _already_received(session, provider, provider_message_id)
        if earlier is not None:
            return earlier
    account_id = (
        account_of(session)
        or owner_of_number(session, to, settings.default_region)
        or replying_account(session, phone)
    )
    with acting_for(session, account_id):
        message, new = _keep(
            session, scheduler, provider, provider_message_id, phone, to, text, action, received_at
        )
        if new and action is None:
            answer(session, scheduler, message, settings=settings)
        return message


def replying_account(session: Session, phone: str) -> int:
    """The account an SMS from ``phone`` answers: the one that last sent to that phone, else
    the account ``default`` (else the first one). Its opt-out applies there alone."""
    last = session.exec(
        select(Notice.account_id)
        .where(Notice.phone == phone, col(Notice.sent_at).is_not(None))
        .order_by(col(Notice.sent_at).desc(), col(Notice.id).desc())
        .limit(1)
    ).first()
    if last is not None:
        return last
    fallback = session.exec(
        select(Account.id).order_by(col(Account.slug) != DEFAULT_SLUG, col(Account.id)).limit(1)
    ).first()
    if fallback is None:
        raise RuntimeError("there is no account to receive messages in")
    return fallback


def _keep(
    session: Session,
    scheduler: JobScheduler | None,
    provider: str,
    provider_message_id: str | None,
    phone: str,
    to: str | None,
    text: str,
    action: str | None,
    received_at: datetime | None = None,
) -> tuple[InboundMessage, bool]:
    """Keep the message in the session's account and act on its keyword there; with whether it
    is new (else the one first stored under its id)."""
    keys = ContactKeys(phones=[phone])
    contacts: list[Contact] = Known.fetch(session, keys).by_phone.get(phone, [])
    now = utcnow()
    suppressed: list[int] = []
    if action == "opt_out":
        if not contacts:
            # A number that was never a contact (a raw phone in a message) stays out as one:
            # recording it as an opted-out contact makes every later send to it suppressed.
            stranger = Found(
                None, new_values({"name": phone, "phone": phone, "opted_out": True}, now)
            )
            write_contacts(session, [stranger])
            contacts = [session.get_one(Contact, stranger.id)]
        for contact in contacts:
            contact.opted_out, contact.updated_at = True, now
            session.add(contact)
        suppressed = suppress_pending(
            session, col(Notice.phone) == phone, reason="the recipient opted out by SMS"
        )
    elif action == "opt_in":
        for contact in contacts:
            contact.opted_out, contact.updated_at = False, now
            session.add(contact)
    message = InboundMessage(
        provider=provider,
        provider_message_id=provider_message_id,
        from_phone=phone,
        to=to,
        text=text[:2000],
        action=action,
        contact_id=contacts[0].id if contacts else None,
        received_at=min(received_at, now) if received_at else now,
    )
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        # The same id under another spelling of the number (so another lock): the first stands.
        earlier = _already_received(session, provider, provider_message_id or "")
        if earlier is None:
            raise
        return earlier, False
    _events(session, message, contacts)
    unschedule_after_commit(session, scheduler, suppressed)
    return message, True


def _events(session: Session, message: InboundMessage, contacts: list[Contact]) -> None:
    """The message's events, in its transaction: received, and the opt-out or opt-in."""
    account_id, at = current(session), message.received_at
    data = {
        "inbound_id": message.id,
        "from": message.from_phone,
        "to": message.to,
        "text": message.text,
        "action": message.action,
        "contact_id": message.contact_id,
        "contact_external_id": contacts[0].external_id if contacts else None,
        "received_at": iso(at),
    }
    events = [Event(account_id, EventType.inbound_received, data, at)]
    action = {"opt_out": EventType.contact_opted_out, "opt_in": EventType.contact_opted_in}
    if message.action in action:
        events.extend(
            Event(
                account_id,
                action[message.action],
                {
                    "contact_id": contact.id,
                    "contact_external_id": contact.external_id,
                    "phone": contact.phone,
                    "inbound_id": message.id,
                },
                at,
            )
            for contact in contacts
        )
    enqueue(session.connection(), events)


def _already_received(
    session: Session, provider: str, provider_message_id: str
) -> InboundMessage | None:
    return session.exec(
        select(InboundMessage).where(
            InboundMessage.provider == provider,
            InboundMessage.provider_message_id == provider_message_id,
        )
    ).first()


def list_inbound(
    session: Session, *, limit: int, cursor: str | None
) -> tuple[Sequence[InboundMessage], str | None]:
    return page(session, select(InboundMessage), InboundMessage.id, limit=limit, cursor=cursor)
