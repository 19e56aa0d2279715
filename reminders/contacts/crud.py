"""Contacts one at a time, as the API shows them: create, read, change, delete, list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reminders.contacts.matching import Found, new_values
from reminders.contacts.writing import NoticesFollowed, apply_changes, write_contacts
from reminders.db import utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import PENDING, Contact, Notice, NoticeStatus
from reminders.paging import page
from reminders.phones import normalize_mobile
from reminders.schemas.contacts import ContactCreate, ContactUpdate


@dataclass
class ContactEdited:
    contact: Contact
    notices: NoticesFollowed


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def create_contact(session: Session, data: ContactCreate, *, region: str) -> Contact:
    """A new contact, always (POST /contacts): an ``external_id`` in use is refused, never
    matched. Flushed, not committed."""
    given = data.model_dump()
    given["phone"] = normalize_mobile(data.phone, region)
    _check_external_id_free(session, data.external_id, None)
    new = Found(None, new_values(given, utcnow()))
    try:
        write_contacts(session, [new])
    except IntegrityError:
        # Two requests racing for the same external_id: the unique index decides. The caller,
        # whose transaction this is, rolls it back.
        raise Conflict("external_id is already in use", field="external_id") from None
    return get_contact(session, new.id or 0)


def get_contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact with id {contact_id}", field="id")
    return contact


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
        # Two requests racing for the same external_id: the unique index decides; the caller
        # rolls back.
        raise Conflict("external_id is already in use", field="external_id") from None
    return ContactEdited(contact, followed)


def delete_contact(session: Session, contact_id: int) -> None:
    """Delete the contact and cancel what was still to be sent to them.

    Their jobs stay in the store and fire into nothing: the claim finds the notices cancelled.
    """
    contact = get_contact(session, contact_id)
    session.exec(  # type: ignore[call-overload]
        update(Notice)
        .where(col(Notice.contact_id) == contact_id, col(Notice.status).in_(PENDING))
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
