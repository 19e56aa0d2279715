"""Contacts' requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from reminders.schemas.common import (
    Email,
    ExternalId,
    Input,
    Language,
    Name,
    Phone,
    SmallJson,
    TimeZoneName,
    shown_json,
)


class ContactCreate(Input):
    name: Name
    phone: Phone
    email: Email | None = None
    timezone: TimeZoneName | None = None
    language: Language = "bg"
    external_id: ExternalId | None = None
    opted_out: bool = False
    attributes: SmallJson = Field(default_factory=dict)


class ContactUpdate(Input):
    name: Name | None = None
    phone: Phone | None = None
    email: Email | None = None
    timezone: TimeZoneName | None = None
    language: Language | None = None
    external_id: ExternalId | None = None
    opted_out: bool | None = None
    attributes: SmallJson | None = None


class ContactOut(BaseModel):
    id: int
    name: str
    phone: str
    email: str | None
    timezone: str | None
    language: str
    external_id: str | None
    opted_out: bool
    attributes: Annotated[dict[str, Any], BeforeValidator(shown_json)]
    created_at: datetime
    updated_at: datetime


class NoticesFollowedOut(BaseModel):
    moved: int = Field(description="Pending notices that now go to the contact's new phone.")
    cancelled: int = Field(
        description="Pending notices the new phone already had (from the same message or "
        "reminder step): cancelled, so that it gets each once."
    )
    suppressed: int = Field(description="Pending notices suppressed because the contact opted out.")


class ContactPatched(ContactOut):
    notices: NoticesFollowedOut = Field(description="What the change did to pending notices.")
