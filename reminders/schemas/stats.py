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
