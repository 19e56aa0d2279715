"""What the inbox shows: messages received, newest first a page at a time, with the contact
each matched; and the contacts who opted out. (The API's ``GET /inbound`` pages oldest first,
as its other lists do; a person reading an inbox wants the latest on top.)

What a message did is its ``action`` (``opt_out``, ``opt_in``), or the answer it gave to a
reminder (``replies.py``: confirmed, cancelled, unclear), in the same column. Unclear answers
nobody handled yet are listed on top, for a person to read and mark handled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlmodel import Session, col, select

from reminders.models import Anchor, Contact, InboundMessage, Reply, ReplyState

PAGE: Final = 50
MOST_OPTED_OUT: Final = 500


@dataclass(frozen=True)
class Received:
    messages: Sequence[InboundMessage]
    contacts: dict[int, Contact]  # the contacts they matched, by id
    older: int | None  # where the next page starts (``before``), if there is one
    replies: dict[int, Reply]  # what they answered, by message id


@dataclass(frozen=True)
class Waiting:
    """Unclear answers nobody handled, newest first, with the events they are about."""

    replies: Sequence[Reply]
    events: dict[int, Anchor]


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
    ids = [m.id for m in rows if m.id is not None]
    replies = {}
    if ids:
        replies = {
            r.inbound_id: r
            for r in session.exec(select(Reply).where(col(Reply.inbound_id).in_(ids)))
        }
    return Received(rows, contacts, older, replies)


def waiting(session: Session, limit: int = PAGE) -> Waiting:
    """The unclear answers that wait for a person."""
    rows = list(
        session.exec(
            select(Reply)
            .where(col(Reply.state) == ReplyState.unclear, col(Reply.handled).is_(False))
            .order_by(col(Reply.id).desc())
            .limit(limit)
        )
    )
    wanted = {r.anchor_id for r in rows if r.anchor_id is not None}
    events = {}
    if wanted:
        events = {
            a.id: a
            for a in session.exec(select(Anchor).where(col(Anchor.id).in_(wanted)))
            if a.id is not None
        }
    return Waiting(rows, events)


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
