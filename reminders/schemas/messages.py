"""Messages' requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, model_validator

from reminders.models import Priority
from reminders.schemas.common import (
    Id,
    Input,
    Phone,
    SenderId,
    TimeZoneName,
    WhenText,
    _no_control_chars,
)
from reminders.schemas.notices import NoticeOut


class Recipients(Input):
    phones: list[Phone] = Field(default_factory=list, max_length=10_000)
    contacts: list[Id] = Field(default_factory=list, max_length=10_000)
    groups: list[Id] = Field(default_factory=list, max_length=1_000)

    @model_validator(mode="after")
    def _not_empty(self) -> Recipients:
        if not (self.phones or self.contacts or self.groups):
            raise ValueError("name at least one recipient in phones, contacts or groups")
        return self


class MessageCreate(Input):
    to: Recipients
    text: Annotated[str, Field(min_length=1, max_length=1600), AfterValidator(_no_control_chars)]
    send_at: WhenText | None = Field(
        default=None,
        description="ISO 8601, or words in English or Bulgarian ('tomorrow 10:00', 'утре в 10'),"
        " read in `timezone`; absent means now.",
    )
    timezone: TimeZoneName | None = Field(
        default=None,
        description="Zone send_at is read in; default the recipients' own zone when they share"
        " one, else REMINDERS_TIMEZONE.",
    )
    sender_id: SenderId | None = None
    template: bool = Field(
        default=False,
        description="The text is a template filled in for each recipient when it is sent: "
        "{{ name }}, {{ first_name }}, {{ phone }}, {{ lang }} and {{ contact.<attribute> }} "
        "(empty for a number that is no contact). Otherwise it is sent as written, braces "
        "included.",
    )
    transliterate: bool | None = Field(
        default=None,
        description="Write Bulgarian Cyrillic in Latin letters; default REMINDERS_TRANSLITERATE.",
    )
    priority: Priority = Field(
        default=Priority.bulk,
        description="transactional: sent as asked, quiet hours or not (alerts, payment "
        "failures); bulk: held until quiet hours end on the recipient's clock.",
    )


class MessageOut(BaseModel):
    id: int
    text: str
    sender_id: str | None
    send_at: datetime
    priority: Priority
    created_at: datetime
    recipients: int = Field(description="Distinct phone numbers the message goes to.")
    notices: list[NoticeOut]
