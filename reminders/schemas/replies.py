"""Answers to reminders, as responses show them, and what a person may change."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from reminders.models import ReplyState
from reminders.schemas.common import Input


class ReplyOut(BaseModel):
    id: int
    inbound_id: int = Field(description="The inbound message it was read from.")
    notice_id: int | None = Field(description="The reminder it answers.")
    event_id: int | None = Field(description="The event that reminder is about.")
    phone: str
    text: str
    state: ReplyState
    handled: bool = Field(description="A person dealt with it (an unclear one needs one).")
    handled_at: datetime | None
    created_at: datetime


class ReplyUpdate(Input):
    handled: bool


class AnswerOut(BaseModel):
    phone: str
    answer: ReplyState
    answered_at: datetime | None
