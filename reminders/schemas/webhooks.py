"""Webhook endpoints' requests and responses, and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema

from reminders.schemas.common import Input, _no_control_chars
from reminders.webhooks.events import ALL, EventType
from reminders.webhooks.posting import normalize_webhook_url


def _url(value: str) -> str:
    return normalize_webhook_url(value)  # ValueError with the reason


def _events(value: object) -> list[str]:
    """``"*"`` or a list of event types, read as a sorted list without repeats."""
    if value == ALL:
        return [ALL]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('must be a list of event types, or "*" for every type')
    if not value:
        raise ValueError('must name at least one event type, or be "*" for every type')
    if len(value) > len(EventType):
        raise ValueError(f"may name at most {len(EventType)} event types")
    known = {event.value for event in EventType}
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ValueError(
            f"{unknown[0]!r} is not an event type; they are {', '.join(sorted(known))}"
        )
    return sorted(set(value))


WebhookUrl = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_url)]
Events = Annotated[
    list[str],
    BeforeValidator(_events),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"enum": [e.value for e in EventType]}},
                {"const": ALL},
            ]
        }
    ),
]
Description = Annotated[str, Field(max_length=500), AfterValidator(_no_control_chars)]


class WebhookCreate(Input):
    url: WebhookUrl = Field(description="https or http; a private address only if allowed.")
    events: Events = Field(default=[ALL], description='Event types, or "*" for every type.')
    enabled: bool = True
    description: Description | None = None


class WebhookUpdate(Input):
    url: WebhookUrl | None = None
    events: Events | None = None
    enabled: bool | None = Field(
        default=None, description="true enables it again (and clears a disabled_reason)."
    )
    description: Description | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str] = Field(description='The event types it gets; ["*"]: every type.')
    enabled: bool
    disabled_reason: str | None = Field(description="Why we disabled it, if we did.")
    description: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="The signing secret (whsec_…), shown this once only.")


class AttemptOut(BaseModel):
    attempt: int
    status_code: int | None = Field(description="null: no answer (network error, timeout).")
    latency_ms: int
    response: str | None = Field(description="The first 1 KB of the answer.")
    error: str | None
    attempted_at: datetime


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str = Field(description="The webhook-id header: the same at every attempt.")
    event_type: str
    status: str = Field(description="pending, delivered or failed.")
    attempts: int
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt.")
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptOut]
