"""Statistics' responses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class CountsOut(BaseModel):
    start: str
    statuses: dict[str, int] = Field(description="sent, delivered, undelivered, no_report...")
    kinds: dict[str, int]
    segments: int
    received: int


class StatsOut(BaseModel):
    start: datetime
    end: datetime
    bucket: str
    timezone: str = Field(description="The zone whose clock the buckets follow.")
    totals: CountsOut
    buckets: list[CountsOut]


class LinkCountsOut(BaseModel):
    link: str | None = Field(
        description="The gateway link (REMINDERS_LINKS); null for the single sender."
    )
    provider: str = Field(description="The link's sender: kannel, twilio, http...")
    attempts: int
    statuses: dict[str, int] = Field(
        description="The attempts by status now: sent, delivered, undelivered, failed, unknown."
    )
    segments: int


class LinkStatsOut(BaseModel):
    start: datetime
    end: datetime
    links: list[LinkCountsOut]
