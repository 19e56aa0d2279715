"""Who a feed's event reminds: the numbers and attendees written in it, and the source's own
recipients (its groups and contacts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from sqlmodel import Session, col, func, select

from reminders.db import in_chunks
from reminders.errors import InvalidField
from reminders.groups import group_contact_ids
from reminders.models import Contact, Source
from reminders.phones import normalize_mobile
from reminders.settings import Settings
from reminders.sources.ical import Occurrence


def default_recipients(
    session: Session, source: Source, settings: Settings
) -> list[tuple[str, int | None]]:
    """The source's own recipients, as (phone, contact id): its contacts and groups' members."""
    ids: list[int] = list(source.recipients.get("contacts", []))
    groups = source.recipients.get("groups", [])
    if groups:
        try:
            for members in group_contact_ids(session, groups, field="recipients.groups").values():
                ids.extend(members)
        except InvalidField:
            pass  # a group deleted since the source was made: its members are no longer asked for
    rows = session.exec(select(Contact.phone, Contact.id).where(col(Contact.id).in_(ids))).all()
    return [(phone, contact_id) for phone, contact_id in rows]


@dataclass
class Written:
    """Who an occurrence names: phone numbers (E.164) and attendees' emails (lower case)."""

    phones: list[str]
    emails: list[str]


def written_in(occurrence: Occurrence, settings: Settings) -> Written:
    """Phones written in the event (attendees' tel: URIs, numbers in its text) and emails."""
    phones: list[str] = []
    for attendee in occurrence.attendees:
        if attendee.phone:
            try:
                phones.append(normalize_mobile(attendee.phone, settings.default_region))
            except InvalidField:
                pass
    for text in (occurrence.description, occurrence.location):
        for match in phonenumbers.PhoneNumberMatcher(text or "", settings.default_region):
            number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            try:
                phones.append(normalize_mobile(number, settings.default_region))
            except InvalidField:
                pass  # a landline in the description: not someone we can text
    emails = [a.email.lower() for a in occurrence.attendees if a.email]
    return Written(phones, emails)


@dataclass
class Known:
    """Contacts by phone and by email, read once per sync for every occurrence's names."""

    by_phone: dict[str, int]
    by_email: dict[str, list[tuple[str, int]]]

    @classmethod
    def load(cls, session: Session, written: Sequence[Written]) -> Known:
        phones = sorted({p for w in written for p in w.phones})
        emails = sorted({e for w in written for e in w.emails})
        by_phone: dict[str, int] = {}
        by_email: dict[str, list[tuple[str, int]]] = {}
        for chunk in in_chunks(phones):
            query = select(Contact.phone, Contact.id).where(col(Contact.phone).in_(chunk))
            by_phone.update((p, i) for p, i in session.exec(query).all() if i is not None)
        for chunk in in_chunks(emails):
            email = func.lower(Contact.email)
            rows = session.exec(
                select(email, Contact.phone, Contact.id).where(email.in_(chunk))
            ).all()
            for address, phone, contact_id in rows:
                if contact_id is not None:
                    by_email.setdefault(address, []).append((phone, contact_id))
        return cls(by_phone, by_email)


def recipients_of(
    written: Written, known: Known, defaults: list[tuple[str, int | None]]
) -> list[tuple[str, int | None]]:
    """Phones written in the event, attendees known by email, then the source's defaults."""
    found: list[tuple[str, int | None]] = [(p, known.by_phone.get(p)) for p in written.phones]
    for email in written.emails:
        found.extend(known.by_email.get(email, []))
    found.extend(defaults)
    unique: dict[str, int | None] = {}
    for phone, contact_id in found:
        if phone not in unique or unique[phone] is None:
            unique[phone] = contact_id
    return sorted(unique.items())
