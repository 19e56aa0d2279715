"""Accounts' requests and responses (provider keys only)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from reminders.accounts.numbers import gateway_number
from reminders.models import AccountStatus
from reminders.schemas.common import Input, Name, SenderId, _no_control_chars

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
SLUG_RULE = "2 to 40 lower-case Latin letters, digits or '-', starting with a letter or digit"


def valid_slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(SLUG_RULE)
    return value


Slug = Annotated[str, AfterValidator(valid_slug)]
GatewayNumber = Annotated[str, Field(max_length=40), AfterValidator(gateway_number)]
InboundNumbers = Annotated[list[GatewayNumber], Field(max_length=100)]
_NUMBERS_HELP = (
    "The gateway numbers or short codes it owns, in international form: an SMS sent to one "
    "is this account's. Else an SMS belongs to the account that last sent to its phone."
)
Reason = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_no_control_chars)]


class AccountCreate(Input):
    slug: Slug
    name: Name | None = Field(default=None, description="By default the slug.")
    sender_ids: Annotated[list[SenderId], Field(max_length=100)] = Field(
        default_factory=list,
        description="The sender IDs it may send from; empty: any (the service's default).",
    )
    default_sender_id: SenderId | None = None
    rate_share: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=1, description="Its weight when accounts share the bulk lane."
    )
    monthly_segments: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="SMS segments it may send in a calendar month; null: no quota."
    )
    inbound_numbers: InboundNumbers = Field(default_factory=list, description=_NUMBERS_HELP)


class AccountUpdate(Input):
    name: Name | None = None
    sender_ids: Annotated[list[SenderId], Field(max_length=100)] | None = None
    default_sender_id: SenderId | None = None
    rate_share: Annotated[int, Field(ge=1, le=1000)] | None = None
    monthly_segments: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    status: AccountStatus | None = None
    status_reason: Reason | None = Field(
        default=None, description="Why it is suspended: what its keys are told."
    )
    inbound_numbers: InboundNumbers | None = Field(default=None, description=_NUMBERS_HELP)


class AccountOut(BaseModel):
    id: int
    slug: str
    name: str
    sender_ids: list[str]
    default_sender_id: str | None
    rate_share: int
    monthly_segments: int | None
    status: AccountStatus
    status_reason: str | None
    inbound_numbers: list[str]
    created_at: datetime
    updated_at: datetime
