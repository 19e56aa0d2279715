"""Inbound messages, as responses show them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


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
