"""Events' requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from reminders.schemas.common import ExternalId, Input, TimeZoneName, WhenText, _no_control_chars
from reminders.schemas.messages import Recipients
from reminders.schemas.notices import NoticeOut
from reminders.schemas.replies import AnswerOut

Title = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_no_control_chars)]


Location = Annotated[str, Field(max_length=500), AfterValidator(_no_control_chars)]


PolicyName = Annotated[str, Field(min_length=1, max_length=64)]


class EventCreate(Input):
    title: Title
    start: WhenText = Field(
        description="ISO 8601, or words in English or Bulgarian ('tomorrow 10:00', 'утре в 10')."
    )
    end: WhenText | None = None
    timezone: TimeZoneName | None = Field(
        default=None, description="Zone the start is read in; default REMINDERS_TIMEZONE."
    )
    location: Location | None = None
    recipients: Recipients
    policy: PolicyName = "appointment"
    external_id: ExternalId | None = None


class EventUpdate(Input):
    title: Title | None = None
    start: WhenText | None = None
    end: WhenText | None = None
    timezone: TimeZoneName | None = None
    location: Location | None = None
    recipients: Recipients | None = None
    policy: PolicyName | None = None


class EventOut(BaseModel):
    id: int
    title: str
    start: datetime = Field(description="The start as understood, in the event's zone.")
    end: datetime | None
    timezone: str
    location: str | None
    policy: str
    external_id: str | None
    source_id: int | None = Field(
        description="The calendar feed it comes from: change it there, not through the API."
    )
    cancelled: bool
    recipients: list[str]
    answers: list[AnswerOut] = Field(
        default_factory=list,
        description="The recipients who answered by SMS: confirmed or cancelled, and when.",
    )
    notices: list[NoticeOut]
    planned: dict[str, int] | None = Field(
        default=None, description="What this request changed: created, moved, cancelled..."
    )
