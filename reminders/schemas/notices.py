"""Notices and their send attempts, as responses show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from reminders.models import Notice, NoticeKind, NoticeStatus, Priority


class AttemptOut(BaseModel):
    id: int
    provider: str
    link: str | None = Field(
        default=None,
        description="The gateway link that carried it (REMINDERS_LINKS); null with one sender.",
    )
    provider_message_id: str | None
    gateway_reference: str | None = Field(
        description="The gateway's or the operator's own id for the message, once reported."
    )
    status: str
    error_code: str | None
    error: str | None
    segments: int | None
    encoding: str | None
    text: str | None = Field(
        description="The text handed to the gateway (null if it never got that far)."
    )
    submitted_at: datetime
    delivered_at: datetime | None


class NoticeOut(BaseModel):
    id: int
    kind: NoticeKind
    status: NoticeStatus
    status_reason: str | None
    message_id: int | None
    contact_id: int | None
    anchor_id: int | None
    step: int | None
    phone: str
    text: str | None = Field(
        description="What the recipient gets: the text last handed to the gateway (rendered, "
        "transliterated if asked, look-alikes replaced); until then the message as written, "
        "or null for a policy step, whose template renders when it fires."
    )
    template: str | None = Field(
        description="For a policy step, the Jinja2 template it renders; null for a message."
    )
    sender_id: str | None
    send_at: datetime
    priority: Priority
    transliterate: bool
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _text_or_template(cls, data: Any) -> Any:
        # The notices table keeps a step's template in ``text``, to render when it fires.
        if not isinstance(data, Notice):
            return data
        values = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        values["template"] = data.text if data.is_template else None
        values["text"] = data.sent_text or (None if data.is_template else data.text)
        return values


class NoticeDetail(NoticeOut):
    attempts: list[AttemptOut]
