"""Inbound messages: handed in by a customer's own system, and as responses show them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from reminders.models import ReplyState
from reminders.schemas.common import Input, Phone, _no_control_chars


class InboundCreate(Input):
    id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="Your id for the message: the same id handed in again is kept once.",
    )
    from_: Phone = Field(alias="from", description="The phone that sent it.")
    to: Annotated[str, Field(max_length=40), AfterValidator(_no_control_chars)] | None = Field(
        default=None, description="The number it was sent to: picks the account that owns it."
    )
    text: Annotated[str, Field(max_length=2000)]
    received_at: AwareDatetime | None = Field(
        default=None,
        description="When it was received (ISO 8601 with an offset); default now. A time to "
        "come is read as now.",
    )


class InboundOut(BaseModel):
    id: int
    provider: str
    provider_message_id: str | None
    from_phone: str
    to: str | None
    text: str
    action: str | None
    contact_id: int | None
    received_at: datetime


class InboundReceived(InboundOut):
    reply: ReplyState | None = Field(
        default=None,
        description="What it answered, if it answered a reminder: confirmed, cancelled or unclear.",
    )
