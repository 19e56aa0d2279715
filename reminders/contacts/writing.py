"""Writing contacts: the one statement that creates them, and the one way a stored one changes.

``write_contacts`` takes what ``matching`` decided: the new contacts go in one INSERT (one or ten
thousand), and each stored contact that a spec changed goes through ``apply_changes``, so that
its pending notices follow a new phone or an opt-out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col

from reminders.accounts.scoping import current
from reminders.contacts.matching import Found
from reminders.db import utcnow
from reminders.models import Contact, Notice
from reminders.notices import move_pending, suppress_pending
from reminders.scheduler.anchors import move_recipient

_CONTACTS = Contact.__table__  # type: ignore[attr-defined]


@dataclass
class NoticesFollowed:
    """What a change of a contact did to its pending notices, by notice id."""

    moved: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)  # the new number already had them
    suppressed: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "moved": len(self.moved),
            "cancelled": len(self.cancelled),
            "suppressed": len(self.suppressed),
        }

    @property
    def unscheduled(self) -> list[int]:
        """Notices that will not be sent: their jobs can go once this is committed."""
        return [*self.cancelled, *self.suppressed]

    def extend(self, other: NoticesFollowed) -> None:
        self.moved.extend(other.moved)
        self.cancelled.extend(other.cancelled)
        self.suppressed.extend(other.suppressed)


def write_contacts(session: Session, found: Sequence[Found]) -> NoticesFollowed:
    """The contacts as decided: changed ones changed, new ones created (their ``id`` set).

    Each contact once, however many specs share it; flushed, not committed.
    """
    followed = NoticesFollowed()
    contacts = list(dict.fromkeys(found))  # a Found compares by identity (eq=False)
    for contact in contacts:
        if contact.stored is not None and contact.values:
            followed.extend(apply_changes(session, contact.stored, contact.values))
    new = [contact for contact in contacts if contact.stored is None and contact.id is None]
    if new:
        account_id = current(session)  # a Core insert: the session's scoping does not fill it
        ids = session.execute(
            insert(_CONTACTS).returning(_CONTACTS.c.id, sort_by_parameter_order=True),
            [{**contact.values, "account_id": account_id} for contact in new],
        ).scalars()
        for contact, new_id in zip(new, ids, strict=True):
            contact.id = new_id
    return followed


def apply_changes(session: Session, contact: Contact, changes: dict[str, Any]) -> NoticesFollowed:
    """Set fields already checked (the phone in E.164); the contact's pending notices follow.

    The one way a stored contact changes (PATCH /contacts, the CSV import, a bill's inline
    customer): opting out suppresses its scheduled notices; a new phone takes them along, and
    the contact's place among the recipients of events and bills with them. Flushed, not
    committed; the jobs of ``unscheduled`` notices can be dropped after the commit.
    """
    old_phone = contact.phone
    for name, value in changes.items():
        setattr(contact, name, value)
    if "name" in changes:
        contact.name_folded = contact.name.casefold()
    contact.updated_at = utcnow()
    session.add(contact)
    session.flush()
    assert contact.id is not None
    followed = NoticesFollowed()
    if changes.get("opted_out"):
        followed.suppressed = suppress_pending(
            session, col(Notice.contact_id) == contact.id, reason="the contact opted out"
        )
    if contact.phone != old_phone:
        move_recipient(session, contact.id, old_phone, contact.phone)
        followed.moved, followed.cancelled = move_pending(
            session, contact.id, old_phone, contact.phone
        )
    return followed
