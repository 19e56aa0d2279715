"""Numbers pasted into a group: each becomes its contact, found or made by the rules every
writer of contacts follows (``contacts.matching``).

A number a contact has is that contact (the first made, when several share it: as a bill's
customer or an SMS's sender is found); an unknown one becomes a new contact named by its
number, as an SMS from a stranger does (``inbound.py``), to be renamed on the contacts screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from reminders.contacts import ContactKeys, Found, Known, Matcher, OnPhone, write_contacts
from reminders.db import utcnow
from reminders.keylocks import lock_keys


@dataclass(frozen=True)
class Numbered:
    contact_ids: list[int]  # one per number, in the order given
    created: int  # of them new


def contacts_for_numbers(session: Session, phones: list[str], region: str) -> Numbered:
    """The contact of each phone (E.164), made where there is none. Flushed, not committed;
    under the phones' locks (``keylocks``), so two pastes of one new number make one contact."""
    keys = ContactKeys(phones=list(dict.fromkeys(phones)))
    lock_keys(session, keys.locks())
    matcher = Matcher(Known.fetch(session, keys), region, utcnow())
    found: list[Found] = []
    created = 0
    for phone in keys.phones:
        hit = matcher.find({"phone": phone}, on_phone=OnPhone.USE)
        changes: dict[str, Any] = {}
        if hit is None:
            contact = matcher.new({"name": phone, "phone": phone})
            created += 1
        else:
            contact, changes = hit
        matcher.accept(contact, changes)
        found.append(contact)
    write_contacts(session, found)
    ids = [f.contact_id for f in found]
    assert all(i is not None for i in ids)
    return Numbered([i for i in ids if i is not None], created)
