"""The in-house gateway's callbacks (``POST /webhooks/http/...``) and our answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Callback(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusIn(Callback):
    id: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description='The "id" we posted with the message: "notice-123".'
    )
    status: Literal["sent", "delivered", "undelivered", "failed"]
    error_code: Annotated[str, Field(max_length=100)] | None = None
    error: Annotated[str, Field(max_length=2000)] | None = None


class InboundIn(Callback):
    id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="The gateway's id for the message: a retry is kept once."
    )
    from_: Annotated[str, Field(min_length=1, max_length=40, alias="from")]
    to: Annotated[str, Field(max_length=40)] | None = None
    text: Annotated[str, Field(max_length=2000)]


class CallbackOut(BaseModel):
    result: str = Field(description='"applied", "ignored" (stale or repeated), "unknown", "kept".')
    action: str | None = None
