"""API keys' requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from reminders.models import Scope
from reminders.schemas.common import Input, _no_control_chars


class KeyCreate(Input):
    # api_keys.name is VARCHAR(100); PostgreSQL refuses a longer name with an error.
    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_control_chars)]
    scope: Scope = Scope.read


class KeyOut(BaseModel):
    id: int
    name: str
    scope: Scope
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The bearer token; shown only this once.")
