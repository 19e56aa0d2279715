"""Feed sources' requests and responses."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from reminders.durations import Offset
from reminders.schemas.common import Id, Input, Name, TimeZoneName, _no_control_chars
from reminders.sources.fetch import normalize_feed_url

MIN_REFRESH = timedelta(minutes=5)


def _url(value: str) -> str:
    return normalize_feed_url(value)  # ValueError with the reason


def _refresh(value: str) -> str:
    offset = Offset.parse(value)
    if offset.as_timedelta() < MIN_REFRESH:
        raise ValueError("must be at least PT5M")
    return str(offset)


Url = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_url)]


Refresh = Annotated[str, Field(max_length=40), AfterValidator(_refresh)]


PolicyName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_control_chars)]


class SourceCreate(Input):
    name: Name
    url: Url = Field(description="https, http or webcal (read as https).")
    refresh: Refresh = "PT15M"
    timezone: TimeZoneName | None = Field(
        default=None, description="For floating times and all-day events; default the setting."
    )
    policy: PolicyName = "appointment"
    use_alarms: bool = Field(default=False, description="Add the feed's VALARMs as extra steps.")
    groups: list[Id] = Field(default_factory=list, max_length=100)
    contacts: list[Id] = Field(default_factory=list, max_length=10_000)


class SourceUpdate(Input):
    name: Name | None = None
    url: Url | None = None
    refresh: Refresh | None = None
    timezone: TimeZoneName | None = None
    policy: PolicyName | None = None
    use_alarms: bool | None = None
    groups: list[Id] | None = Field(default=None, max_length=100)
    contacts: list[Id] | None = Field(default=None, max_length=10_000)


class SourceOut(BaseModel):
    id: int
    name: str
    url: str = Field(description="Only scheme and host: feed URLs carry secrets.")
    refresh: str
    timezone: str
    policy: str
    use_alarms: bool
    groups: list[int]
    contacts: list[int]
    last_sync_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    error_count: int
    next_sync_at: datetime | None
    event_count: int
    notice_count: int = Field(description="Notices still scheduled for this feed's events.")
    warnings: list[str]


class SyncOut(BaseModel):
    status: str
    created: int
    moved: int
    cancelled: int
    restored: int
    unchanged: int
    notices: dict[str, int]
    error: str | None
    warnings: list[str]
    source: SourceOut
