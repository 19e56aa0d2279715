"""Answers to reminders: "1"/"ДА" confirms, "2"/"НЕ" cancels, anything else waits for a person.

A policy asks for an answer when it has ``replies``. An inbound message answers the latest
reminder that asked, sent by the message's account to its phone, whose event has not started:
with two appointments coming, the answer is taken to be about the one last reminded of.

How its words are read: ``reply_words.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reminders.db import utcnow
from reminders.errors import NotFound
from reminders.models import (
    EVENT_KEY_PREFIX,
    PENDING,
    Anchor,
    AnchorKind,
    AnchorRecipient,
    Contact,
    InboundMessage,
    Notice,
    NoticeKind,
    NoticeStatus,
    Policy,
    Priority,
    Reply,
    ReplyState,
)
from reminders.paging import page
from reminders.pending_jobs import JobScheduler, schedule_after_commit, unschedule_after_commit
from reminders.reply_words import ANSWERS, read_answer
from reminders.scheduler.anchors import plan_for
from reminders.settings import Settings
from reminders.webhooks.events import EventType
from reminders.webhooks.outbox import Event, enqueue

# The same answer again within this time, through another way in (a gateway and the API both
# handing in one SMS), is kept as a message but not acted on twice.
SAME_ANSWER_WINDOW = timedelta(minutes=10)
# Reminders a recipient may answer: handed to the gateway, and not known to have failed.
_ANSWERABLE = (NoticeStatus.sent, NoticeStatus.delivered, NoticeStatus.unknown)


def asking_notice(
    session: Session, phone: str, at: datetime
) -> tuple[Notice, Anchor, Policy] | None:
    """The latest reminder that asked ``phone`` for an answer, in the session's account, about
    an event that had not started ``at``; with its event and policy."""
    query = (
        select(Notice, Anchor, Policy)
        .join(Anchor, col(Anchor.id) == col(Notice.anchor_id))
        .join(
            Policy,
            and_(
                col(Policy.account_id) == col(Anchor.account_id),
                col(Policy.name) == col(Anchor.policy),
            ),
        )
        .where(
            col(Notice.phone) == phone,
            col(Notice.status).in_(_ANSWERABLE),
            col(Notice.sent_at).is_not(None),
            col(Notice.step).is_not(None),  # a reminder, not an acknowledgement
            col(Anchor.kind) == AnchorKind.event,
            col(Anchor.cancelled).is_(False),
            col(Anchor.at) > at,
            col(Policy.replies).is_not(None),
        )
        .order_by(col(Notice.sent_at).desc(), col(Notice.id).desc())
        .limit(1)
    )
    row = session.exec(query).first()
    return None if row is None else (row[0], row[1], row[2])


def answer(
    session: Session,
    scheduler: JobScheduler | None,
    message: InboundMessage,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> Reply | None:
    """Read ``message`` (kept, in the session's account) as an answer, and act on it: confirm,
    or cancel the recipient's reminders of that event, or keep it for a person. None if it
    answers no reminder. Flushed; the caller commits, and jobs follow after that."""
    now = now or utcnow()
    at = min(message.received_at, now)
    found = asking_notice(session, message.from_phone, at)
    if found is None:
        return None
    notice, anchor, policy = found
    assert message.id is not None and anchor.id is not None and policy.replies is not None
    state = read_answer(message.text, policy.replies)
    if _answered_already(session, message, anchor.id, state, now):
        return None
    reply = Reply(
        inbound_id=message.id,
        notice_id=notice.id,
        anchor_id=anchor.id,
        phone=message.from_phone,
        text=message.text,
        state=state,
        # A clear answer is acted on here; an unclear one waits for a person.
        handled=state != ReplyState.unclear,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(reply)
    except IntegrityError:
        return None  # this message was read already (the same one handed in twice at once)
    _event(session, reply, anchor, notice)
    if state == ReplyState.unclear:
        return reply
    recipient = session.get(AnchorRecipient, (anchor.id, message.from_phone))
    before = recipient.answer if recipient is not None else None
    if recipient is not None:
        recipient.answer, recipient.answered_at = state.value, now
        session.add(recipient)
        session.flush()
    if state == ReplyState.cancelled:
        _cancel_reminders(session, scheduler, anchor.id, message.from_phone, now)
    elif before == ReplyState.cancelled:
        # Cancelled, then confirmed after all: their reminders come back.
        plan_for(session, scheduler, anchor.id, settings=settings, now=now)
    if before != state.value:
        _acknowledge(session, scheduler, reply, notice, policy, state, now)
    return reply


_EVENT_TYPES = {
    ReplyState.confirmed: EventType.reply_confirmed,
    ReplyState.cancelled: EventType.reply_cancelled,
    ReplyState.unclear: EventType.reply_unclear,
}


def _event(session: Session, reply: Reply, anchor: Anchor, notice: Notice) -> None:
    """``reply.<state>`` for the account's webhooks, in the reply's transaction."""
    contact = session.get(Contact, notice.contact_id) if notice.contact_id else None
    external = anchor.key.removeprefix(EVENT_KEY_PREFIX)
    data = {
        "reply_id": reply.id,
        "state": reply.state,
        "text": reply.text,
        "phone": reply.phone,
        "inbound_id": reply.inbound_id,
        "notice_id": notice.id,
        "event_id": anchor.id,
        "event_external_id": external if anchor.key.startswith(EVENT_KEY_PREFIX) else None,
        "contact_id": notice.contact_id,
        "contact_external_id": contact.external_id if contact else None,
    }
    event = Event(reply.account_id, _EVENT_TYPES[ReplyState(reply.state)], data, reply.created_at)
    enqueue(session.connection(), [event])


def _answered_already(
    session: Session, message: InboundMessage, anchor_id: int, state: ReplyState, now: datetime
) -> bool:
    """The same answer to the same event from the same phone, just now, by another message:
    one SMS that came in by two ways."""
    earlier = session.exec(
        select(Reply.id)
        .join(InboundMessage, col(InboundMessage.id) == col(Reply.inbound_id))
        .where(
            col(Reply.anchor_id) == anchor_id,
            col(Reply.phone) == message.from_phone,
            col(Reply.state) == state,
            col(Reply.created_at) >= now - SAME_ANSWER_WINDOW,
            col(InboundMessage.text) == message.text,
            col(InboundMessage.provider) != message.provider,
        )
        .limit(1)
    ).first()
    return earlier is not None


def _cancel_reminders(
    session: Session, scheduler: JobScheduler | None, anchor_id: int, phone: str, now: datetime
) -> None:
    cancelled = session.execute(
        update(Notice)
        .where(
            col(Notice.anchor_id) == anchor_id,
            col(Notice.phone) == phone,
            col(Notice.status).in_(PENDING),
            col(Notice.kind) != NoticeKind.reply_ack,
        )
        .values(
            status=NoticeStatus.cancelled,
            status_reason="the recipient cancelled by SMS",
            updated_at=now,
        )
        .returning(col(Notice.id))
    )
    unschedule_after_commit(session, scheduler, [int(row[0]) for row in cancelled])


def _acknowledge(
    session: Session,
    scheduler: JobScheduler | None,
    reply: Reply,
    notice: Notice,
    policy: Policy,
    state: ReplyState,
    now: datetime,
) -> None:
    """The policy's acknowledgement of this answer, if it has one: due at once, rendered when
    it goes like any reminder (the recipient's language and clock)."""
    kind = next(k for k, s in ANSWERS.items() if s == state)
    template = (policy.reply_ack or {}).get(kind)
    if not template:
        return
    ack = Notice(
        key=f"reply:{reply.id}:ack",
        kind=NoticeKind.reply_ack,
        status=NoticeStatus.due,
        anchor_id=notice.anchor_id,
        contact_id=notice.contact_id,
        phone=notice.phone,
        text=template,
        is_template=True,
        priority=Priority.transactional,  # an answer to what they just wrote: now, not later
        transliterate=notice.transliterate,
        sender_id=notice.sender_id,
        send_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(ack)
    session.flush()
    assert ack.id is not None
    schedule_after_commit(session, scheduler, [(ack.id, now, Priority.transactional)], new=True)


def list_replies(
    session: Session,
    *,
    state: ReplyState | None,
    handled: bool | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Reply], str | None]:
    query = select(Reply)
    if state is not None:
        query = query.where(col(Reply.state) == state)
    if handled is not None:
        query = query.where(col(Reply.handled).is_(handled))
    return page(session, query, Reply.id, limit=limit, cursor=cursor)


def get_reply(session: Session, reply_id: int) -> Reply:
    reply = session.get(Reply, reply_id)
    if reply is None:
        raise NotFound(f"no reply {reply_id}", field="id")
    return reply


def mark_handled(session: Session, reply_id: int, handled: bool) -> Reply:
    reply = get_reply(session, reply_id)
    if reply.handled != handled:
        reply.handled = handled
        reply.handled_at = utcnow() if handled else None
        session.add(reply)
        session.flush()
    return reply


def answers_of(session: Session, anchor_ids: Sequence[int]) -> dict[int, list[AnchorRecipient]]:
    """The recipients of these events who answered, by event."""
    found: dict[int, list[AnchorRecipient]] = {i: [] for i in anchor_ids}
    if anchor_ids:
        for recipient in session.exec(
            select(AnchorRecipient).where(
                col(AnchorRecipient.anchor_id).in_(anchor_ids),
                col(AnchorRecipient.answer).is_not(None),
            )
        ):
            found[recipient.anchor_id].append(recipient)
    return found
