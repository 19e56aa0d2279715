"""Reminder policies' requests and responses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from reminders.durations import Offset
from reminders.models import NoticeKind, Priority
from reminders.schemas.common import Input, SenderId, _no_control_chars
from reminders.wall_clock import parse_time

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def _policy_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def _offset(value: str) -> str:
    return str(Offset.parse(value))


def _clock(value: str) -> str:
    return parse_time(value).strftime("%H:%M")


PolicyName = Annotated[str, AfterValidator(_policy_name)]


Template = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_no_control_chars)]


class StepIn(Input):
    offset: Annotated[str, Field(max_length=40), AfterValidator(_offset)] = Field(
        description="Signed ISO 8601 duration from the anchor: -P1D, -PT2H, P3D."
    )
    at: Annotated[str, Field(max_length=5), AfterValidator(_clock)] | None = Field(
        default=None, description="Local time of day (HH:MM) in the recipient's zone."
    )
    template: Template
    kind: NoticeKind | None = Field(
        default=None, description="Kind of notice; by default taken from the anchor."
    )


ReplyWord = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_no_control_chars)]


class Replies(Input):
    confirm: list[ReplyWord] = Field(
        default_factory=list,
        max_length=30,
        description='Words that confirm: "1", "ДА", "YES"... (case, punctuation and '
        "Latin/Cyrillic spelling do not matter).",
    )
    cancel: list[ReplyWord] = Field(
        default_factory=list, max_length=30, description='Words that cancel: "2", "НЕ", "NO"...'
    )


class ReplyAck(Input):
    confirm: Template | None = Field(
        default=None, description="Sent back at once when a recipient confirms."
    )
    cancel: Template | None = Field(
        default=None, description="Sent back at once when a recipient cancels."
    )


class PolicyCreate(Input):
    name: PolicyName
    description: (
        Annotated[str, Field(max_length=2000), AfterValidator(_no_control_chars)] | None
    ) = None
    steps: list[StepIn] = Field(min_length=1, max_length=20)
    transliterate: bool | None = Field(
        default=None, description="Latin letters for its messages; null: the setting decides."
    )
    priority: Priority = Field(
        default=Priority.bulk,
        description="transactional: its notices skip quiet hours and never wait behind bulk "
        "ones (payment failures, card alerts); bulk: reminders.",
    )
    sender_id: SenderId | None = Field(
        default=None, description="Sender ID of its messages; null: REMINDERS_SENDER_ID."
    )
    replies: Replies | None = Field(
        default=None,
        description="Its reminders ask for an answer by SMS with these words; null: they do not.",
    )
    reply_ack: ReplyAck | None = Field(
        default=None, description="Templates of the short answers sent back; null: none."
    )


class PolicyUpdate(Input):
    description: (
        Annotated[str, Field(max_length=2000), AfterValidator(_no_control_chars)] | None
    ) = None
    steps: list[StepIn] | None = Field(default=None, min_length=1, max_length=20)
    transliterate: bool | None = None
    priority: Priority | None = None
    sender_id: SenderId | None = None
    replies: Replies | None = None
    reply_ack: ReplyAck | None = None


class StepOut(BaseModel):
    offset: str
    at: str | None
    template: str
    kind: NoticeKind | None


class PolicyOut(BaseModel):
    id: int
    name: str
    description: str | None
    steps: list[StepOut]
    transliterate: bool | None
    priority: Priority
    sender_id: str | None
    replies: dict[str, list[str]] | None
    reply_ack: dict[str, str] | None
    created_at: datetime
    updated_at: datetime
    planned: dict[str, int] | None = Field(
        default=None,
        description="After an edit: what re-planning its anchors with reminders to come did.",
    )
