"""Wall-clock values: a time of day written ``HH:MM`` and the daily quiet-hours window.

Both are read on the recipient's own clock; neither carries a zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


def parse_time(text: str) -> time:
    """Parse a local time of day written as ``HH:MM`` (24-hour clock)."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day written as HH:MM, such as 18:00.")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"{text!r} is not a time of day: hours go to 23 and minutes to 59.")
    return time(hour, minute)


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


@dataclass(frozen=True)
class QuietHours:
    """A daily window, on the recipient's wall clock, in which no notice should arrive.

    The window is ``[start, end)`` and wraps past midnight when ``end`` is before ``start``.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            # Ambiguous: it could mean "never quiet" or "always quiet"; "off" says the former.
            raise ValueError("Quiet hours must start and end at different times.")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("Quiet hours are wall-clock times and must not carry a time zone.")

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """Parse ``"21:00-08:00"``; ``""``, ``"off"`` and ``"none"`` mean no quiet hours."""
        cleaned = text.strip()
        if cleaned.lower() in ("", "off", "none"):
            return None
        parts = cleaned.split("-")
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not a quiet-hours window such as 21:00-08:00.")
        return cls(parse_time(parts[0]), parse_time(parts[1]))

    def contains(self, t: time) -> bool:
        """Whether the wall-clock time ``t`` falls inside the window."""
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"
