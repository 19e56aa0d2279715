"""What the inbox shows: messages received, newest first a page at a time, with the contact
each matched; and the contacts who opted out. (The API's ``GET /inbound`` pages oldest first,
as its other lists do; a person reading an inbox wants the latest on top.)

What a message did is its ``action`` (``opt_out``, ``opt_in``). Replies to a reminder ("1",
"ДА") are read by a later change: they become actions of their own, worded in the template's
``actions`` beside these, in the same column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlmodel import Session, col, select

from reminders.models import Contact, InboundMessage

PAGE: Final = 50
MOST_OPTED_OUT: Final = 500


@dataclass(frozen=True)
class Received:
    messages: Sequence[InboundMessage]
    contacts: dict[int, Contact]  # the contacts they matched, by id
    older: int | None  # where the next page starts (``before``), if there is one


def received(session: Session, *, before: int | None = None, limit: int = PAGE) -> Received:
    """Messages with an id below ``before`` (all when None), newest first."""
    query = select(InboundMessage)
    if before is not None:
        query = query.where(col(InboundMessage.id) < before)
    rows = list(session.exec(query.order_by(col(InboundMessage.id).desc()).limit(limit + 1)))
    older = None
    if len(rows) > limit:
        rows = rows[:limit]
        older = rows[-1].id
    wanted = {m.contact_id for m in rows if m.contact_id is not None}
    contacts = {}
    if wanted:
        contacts = {
            c.id: c
            for c in session.exec(select(Contact).where(col(Contact.id).in_(wanted)))
            if c.id is not None
        }
    return Received(rows, contacts, older)


def opted_out(session: Session, limit: int = MOST_OPTED_OUT) -> list[Contact]:
    """The contacts who opted out, the latest change first."""
    return list(
        session.exec(
            select(Contact)
            .where(col(Contact.opted_out).is_(True))
            .order_by(col(Contact.updated_at).desc(), col(Contact.id).desc())
            .limit(limit)
        )
    )
