"""Calendar months on the service's clock (``REMINDERS_TIMEZONE``): what a quota and a usage
report count.

A month is read on the service's own clock rather than in UTC because that is the month the
provider's customers and invoices live in: in Sofia, November starts at 22:00 UTC on
31 October. Pure, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

_WRITTEN = re.compile(r"(\d{4})-(\d{2})")
# As far as the statistics reach: Python cannot move datetimes near its own ends to a zone.
FIRST_YEAR, LAST_YEAR = 1970, 2999


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``2026-11``; a ValueError saying what is wrong otherwise."""
        match = _WRITTEN.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not a month: write it as YYYY-MM, e.g. 2026-11")
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise ValueError(f"{text!r} is not a month: the month is 01 to 12")
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise ValueError(f"{text!r}: the year must be {FIRST_YEAR} to {LAST_YEAR}")
        return cls(year, month)

    @classmethod
    def of(cls, instant: datetime, zone: tzinfo) -> Month:
        """The month ``instant`` falls in on ``zone``'s clock."""
        local = instant.astimezone(zone)
        return cls(local.year, local.month)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def start(self, zone: tzinfo) -> datetime:
        """Its first instant, in UTC: local midnight of the 1st. Where a clock change skips
        midnight, the wall time is read with the offset before the change, which lands on the
        first instant the day has."""
        return datetime(self.year, self.month, 1, tzinfo=zone).astimezone(UTC)

    def bounds(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """[start, end) in UTC."""
        return self.start(zone), self.next().start(zone)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
