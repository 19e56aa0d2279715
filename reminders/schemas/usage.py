"""Usage reports' responses: what each account used in a month."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TallyOut(BaseModel):
    messages: int = Field(description="Notices (one SMS to one recipient, of any length).")
    segments: int = Field(description="Segments of what was handed to the gateway.")


class UsageRowOut(TallyOut):
    status: str
    lane: str = Field(description="The notices' priority: transactional or bulk.")


class AccountUsageOut(BaseModel):
    account: str = Field(description="The account's slug.")
    name: str
    messages: int
    segments: int
    received: int = Field(description="Inbound messages received.")
    monthly_segments: int | None = Field(description="The account's quota now; null: none.")
    segments_left: int | None = Field(description="What the quota leaves of this month.")
    by_status: dict[str, TallyOut]
    by_lane: dict[str, TallyOut]
    rows: list[UsageRowOut] = Field(description="By status and lane together, as in the CSV.")


class UsageOut(BaseModel):
    month: str = Field(description="YYYY-MM, on the clock of `timezone`.")
    timezone: str = Field(description="REMINDERS_TIMEZONE: the clock months are read on.")
    start: datetime
    end: datetime
    accounts: list[AccountUsageOut]
