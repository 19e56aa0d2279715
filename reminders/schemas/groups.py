"""Groups' requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from reminders.schemas.common import Id, Input, Name, _no_control_chars


class GroupCreate(Input):
    name: Name
    description: (
        Annotated[str, Field(max_length=2000), AfterValidator(_no_control_chars)] | None
    ) = None


class GroupUpdate(Input):
    name: Name | None = None
    description: (
        Annotated[str, Field(max_length=2000), AfterValidator(_no_control_chars)] | None
    ) = None


class GroupOut(BaseModel):
    id: int
    name: str
    description: str | None
    member_count: int
    created_at: datetime
    updated_at: datetime


class MembersAdd(Input):
    contact_ids: list[Id] = Field(min_length=1, max_length=10_000)


class MembersAdded(BaseModel):
    added: int = Field(description="Contacts that were not members before.")
    already_members: int
    member_count: int
