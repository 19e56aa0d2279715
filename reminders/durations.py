"""Durations as settings and policies write them: signed ISO 8601 (``-P1D``, ``PT2H``).

Pure values, parsed once where they are read (settings at start-up, a policy when it is saved).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

# Far beyond any sensible policy; it keeps a typo such as "P99999D" from overflowing datetime.
MAX_OFFSET = timedelta(days=3660)

_DURATION = re.compile(
    r"""
    (?P<sign>[+-])?
    P(?!$)                         # "P" alone is not a duration
    (?:(?P<years>\d+)Y)?
    (?:(?P<months>\d+)M)?          # an M before the T is months
    (?:(?P<weeks>\d+)W)?
    (?:(?P<days>\d+)D)?
    (?:T(?=\d)                     # "T" needs at least one time component after it
        (?:(?P<hours>\d+)H)?
        (?:(?P<minutes>\d+)M)?
        (?:(?P<seconds>\d+)S)?
    )?
    """,
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True)
class Offset:
    """Where a step lands relative to its anchor.

    ``days`` are calendar days counted on the recipient's wall clock (a day is 23 or 25 hours
    across a DST change); ``exact`` is real elapsed time. Both share one sign: negative is before.
    """

    days: int
    exact: timedelta

    def __post_init__(self) -> None:
        # One sign for the whole offset, so every Offset has an ISO 8601 spelling.
        if (self.days < 0 and self.exact > timedelta(0)) or (
            self.days > 0 and self.exact < timedelta(0)
        ):
            raise ValueError("An offset's days and exact time must have the same sign.")
        if self.exact.microseconds:
            raise ValueError("An offset's exact time must be a whole number of seconds.")
        if abs(timedelta(days=self.days) + self.exact) > MAX_OFFSET:
            raise ValueError(f"An offset cannot reach more than {MAX_OFFSET.days} days away.")

    @classmethod
    def parse(cls, text: str) -> Offset:
        """Parse a signed ISO 8601 duration such as ``-P1D``, ``-PT2H``, ``P1DT12H`` or ``-P1W``.

        Weeks count as 7 calendar days. Months and years are refused because their length varies.
        """
        match = _DURATION.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"{text!r} is not an ISO 8601 duration such as -P1D, -PT2H or P1DT12H."
            )
        if match["years"] is not None or match["months"] is not None:
            raise ValueError(f"{text!r}: months and years have no fixed length; use days.")
        weeks, days, hours, minutes, seconds = (
            int(match[name] or 0) for name in ("weeks", "days", "hours", "minutes", "seconds")
        )
        sign = -1 if match["sign"] == "-" else 1
        try:
            exact = timedelta(hours=hours, minutes=minutes, seconds=seconds)
            return cls(days=sign * (7 * weeks + days), exact=sign * exact)
        except OverflowError:
            # timedelta overflows on absurd hour counts; say so in the same terms as the bound.
            raise ValueError(
                f"{text!r}: an offset cannot reach more than {MAX_OFFSET.days} days away."
            ) from None

    def as_timedelta(self) -> timedelta:
        """Days counted as 24 hours: for settings and intervals, never for wall-clock planning."""
        return timedelta(days=self.days) + self.exact

    def __str__(self) -> str:
        negative = self.days < 0 or self.exact < timedelta(0)
        days = abs(self.days)
        hours, rest = divmod(int(abs(self.exact).total_seconds()), 3600)
        minutes, seconds = divmod(rest, 60)
        clock = "".join(
            f"{amount}{unit}"
            for amount, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))
            if amount
        )
        if not days and not clock:
            return "PT0S"
        text = "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")
        return "-" + text if negative else text
