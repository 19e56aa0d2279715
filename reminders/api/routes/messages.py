"""Messages: one text to many recipients, now or at a set time."""

from __future__ import annotations

from fastapi import APIRouter

from reminders import messages
from reminders.api.deps import ReadKey, SchedulerDep, SessionDep, SettingsDep, WriteKey
from reminders.api.routes.common import IdPath
from reminders.models import Message, Notice, Priority
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.messages import MessageCreate, MessageOut
from reminders.schemas.notices import NoticeOut

router = APIRouter(prefix="/messages", tags=["messages"])


def _out(message: Message, notices: list[Notice]) -> MessageOut:
    return MessageOut(
        id=message.id or 0,
        text=message.text,
        sender_id=message.sender_id,
        send_at=message.send_at,
        priority=Priority(message.priority),
        created_at=message.created_at,
        recipients=len(notices),
        notices=[NoticeOut.model_validate(n, from_attributes=True) for n in notices],
    )


@router.post("", status_code=201)
def create_message(
    data: MessageCreate,
    session: SessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    _: WriteKey,
) -> MessageOut:
    """Create one notice per distinct phone number and schedule each for `send_at`."""
    message, notices = messages.create_message(
        session,
        scheduler,
        data,
        region=settings.default_region,
        quiet=settings.quiet_hours,
        zone=settings.timezone,
        transliterate=settings.transliterate,
    )
    commit_and_schedule(session)
    return _out(message, notices)


@router.get("/{message_id}")
def get_message(message_id: IdPath, session: SessionDep, _: ReadKey) -> MessageOut:
    return _out(*messages.get_message(session, message_id))
