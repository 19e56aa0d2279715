"""Contacts: the people reminders go to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reminders.db import utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import Contact, Notice, NoticeStatus
from reminders.notices import move_pending, suppress_pending
from reminders.paging import page
from reminders.phones import normalize_mobile
from reminders.scheduler.anchors import move_recipient
from reminders.schemas.contacts import ContactCreate, ContactUpdate


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


@dataclass
class ContactEdited:
    contact: Contact
    notices: NoticesFollowed


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def create_contact(session: Session, data: ContactCreate, *, region: str) -> Contact:
    values = data.model_dump()
    values["phone"] = normalize_mobile(data.phone, region)
    values["name_folded"] = data.name.casefold()
    contact = Contact(**values)
    _check_external_id_free(session, contact.external_id, None)
    session.add(contact)
    _flush(session)
    return contact


def get_contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact with id {contact_id}", field="id")
    return contact


def update_contact(
    session: Session, contact_id: int, data: ContactUpdate, *, region: str
) -> Contact:
    """``edit_contact`` for callers that need the contact alone (the CSV import)."""
    return edit_contact(session, contact_id, data, region=region).contact


def edit_contact(
    session: Session, contact_id: int, data: ContactUpdate, *, region: str
) -> ContactEdited:
    """Apply a PATCH: the fields it names change, and the pending notices follow (flushed)."""
    contact = get_contact(session, contact_id)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    for required in ("name", "phone", "language", "opted_out", "attributes"):
        if required in changes and changes[required] is None:
            raise InvalidField("may not be null", field=required)
    if "phone" in changes:
        changes["phone"] = normalize_mobile(changes["phone"], region)
    if "external_id" in changes:
        _check_external_id_free(session, changes["external_id"], contact_id)
    try:
        followed = apply_changes(session, contact, changes)
    except IntegrityError:
        # Two requests racing for the same external_id: the unique index decides.
        session.rollback()
        raise Conflict("external_id is already in use", field="external_id") from None
    return ContactEdited(contact, followed)


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


def delete_contact(session: Session, contact_id: int) -> None:
    """Delete the contact and cancel what was still to be sent to them.

    Their jobs stay in the store and fire into nothing: the claim finds the notices cancelled.
    """
    contact = get_contact(session, contact_id)
    session.exec(  # type: ignore[call-overload]
        update(Notice)
        .where(col(Notice.contact_id) == contact_id, col(Notice.status) == NoticeStatus.scheduled)
        .values(
            status=NoticeStatus.cancelled,
            status_reason="the contact was deleted",
            updated_at=utcnow(),
        )
    )
    session.delete(contact)
    session.flush()


def list_contacts(
    session: Session, *, q: str | None, limit: int, cursor: str | None
) -> tuple[Sequence[Contact], str | None]:
    query = select(Contact)
    if q and q.strip():
        needle = q.strip()
        conditions = [col(Contact.name_folded).like(f"%{_escape_like(needle.casefold())}%", "\\")]
        digits = "".join(c for c in needle if c.isdigit())
        if digits and len(digits) >= 3:
            # "0888 123" and "+359888123" should both find +359888123456: match the national
            # significant part, which is what people type.
            significant = digits.lstrip("0")
            conditions.append(col(Contact.phone).like(f"%{significant}%"))
        query = query.where(or_(*conditions))
    return page(session, query, Contact.id, limit=limit, cursor=cursor)


def find_by_external_id(session: Session, external_id: str) -> Contact | None:
    return session.exec(select(Contact).where(Contact.external_id == external_id)).first()


def _check_external_id_free(session: Session, external_id: str | None, own_id: int | None) -> None:
    if external_id is None:
        return
    other = find_by_external_id(session, external_id)
    if other is not None and other.id != own_id:
        raise Conflict(
            f"external_id {external_id!r} already belongs to contact {other.id}",
            field="external_id",
        )


def _flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError:
        # Two requests racing for the same external_id: the unique index decides.
        session.rollback()
        raise Conflict("external_id is already in use", field="external_id") from None
