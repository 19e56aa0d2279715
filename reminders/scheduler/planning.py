"""Planning reminder send times: a pure computation from an anchor, a policy and ``now``.

A policy is a list of steps relative to an anchor (an event's start, a bill's due date). Each step
becomes one :class:`Planned` result: the UTC instant to send at, or the reason it will not be sent.

Nothing here reads a clock, a database or the scheduler; ``now`` is always passed in, so the same
inputs always give the same plan and every rule can be tested with exact datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Status = Literal["scheduled", "expired"]

# The kind whose quiet-hours rule moves a notice earlier: a reminder after the event is useless.
EVENT_REMINDER = "event_reminder"

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


@dataclass(frozen=True)
class Step:
    """One notice of a policy: where it lands, optionally at what local time, and its kind.

    With ``at`` set, the offset only picks the local date; the notice goes out at ``at`` that day.
    """

    offset: Offset
    at: time | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        if self.at is not None and self.at.tzinfo is not None:
            raise ValueError("A step's time of day is on the recipient's clock; give no zone.")


@dataclass(frozen=True)
class Planned:
    """The plan for one step: when it goes out (UTC), or why it will not."""

    step: int
    kind: str
    send_at: datetime | None
    status: Status
    reason: str | None


def _on_wall_clock(naive: datetime, zone: ZoneInfo, fold: int = 0) -> datetime:
    """The instant at which the wall clock in ``zone`` shows ``naive``, as an aware local time.

    An ambiguous time (autumn) takes the occurrence ``fold`` selects. A time that does not exist
    (spring gap) is moved forward by the gap, the way a clock that was not changed would read.
    """
    local = naive.replace(tzinfo=zone, fold=fold)
    # zoneinfo accepts non-existent times silently; only a round trip through UTC shows them.
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return local
    # In a gap, fold=0 applies the offset from before the change, which lands past the gap by
    # exactly its length (03:30 -> 04:30); normalising through UTC gives the real local reading.
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC).astimezone(zone)


def _local_text(instant: datetime, zone: ZoneInfo) -> str:
    return f"{instant.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


def _target(anchor: datetime, step: Step, zone: ZoneInfo) -> datetime:
    """Rules 1 and 2: where the step lands, in UTC, before quiet hours are considered."""
    local = anchor.astimezone(zone)
    if step.offset.days:
        # Calendar days move the wall clock, not the instant: "-P1D" keeps 10:30 across DST.
        # Keeping the anchor's fold keeps the anchor's occurrence if it lands on a repeated hour.
        shifted = local.replace(tzinfo=None) + timedelta(days=step.offset.days)
        local = _on_wall_clock(shifted, zone, fold=local.fold)
    # Aware arithmetic on a zoneinfo datetime is wall-clock arithmetic; real time needs UTC.
    instant = local.astimezone(UTC) + step.offset.exact
    if step.at is not None:
        day = instant.astimezone(zone).date()
        instant = _on_wall_clock(datetime.combine(day, step.at), zone).astimezone(UTC)
    return instant


def _quiet_window(
    instant: datetime, quiet: QuietHours, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """The UTC bounds of the occurrence of the quiet window that contains ``instant``."""
    local = instant.astimezone(zone)
    day: date = local.date()
    start_day = end_day = day
    if quiet.end < quiet.start:  # wraps midnight
        if local.time() >= quiet.start:
            end_day = day + timedelta(days=1)
        else:
            start_day = day - timedelta(days=1)
    start = _on_wall_clock(datetime.combine(start_day, quiet.start), zone)
    end = _on_wall_clock(datetime.combine(end_day, quiet.end), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _plan_step(
    index: int,
    step: Step,
    *,
    anchor: datetime,
    zone: ZoneInfo,
    now: datetime,
    default_kind: str,
    quiet: QuietHours | None,
    transactional: bool,
) -> Planned:
    """Plan one step; ``anchor`` is in UTC."""
    kind = step.kind or default_kind
    send_at = _target(anchor, step, zone)
    reason: str | None = None
    if quiet is not None and not transactional and quiet.contains(send_at.astimezone(zone).time()):
        reason = f"moved out of quiet hours {quiet}"
        starts, ends = _quiet_window(send_at, quiet, zone)
        if kind != EVENT_REMINDER:
            send_at = ends
        elif starts - timedelta(minutes=1) >= now:
            # A reminder is worth most before the event, so it goes out the evening before.
            send_at = starts - timedelta(minutes=1)
        elif ends < anchor:
            # Too late for the evening before; the morning still comes before the event.
            send_at = ends
        else:
            return Planned(
                step=index,
                kind=kind,
                send_at=send_at,
                status="expired",
                reason=(
                    f"its time {_local_text(send_at, zone)} falls in quiet hours {quiet},"
                    " which left no time to send it before the event"
                ),
            )
    if send_at < now:
        note = f" ({reason})" if reason else ""
        return Planned(
            step=index,
            kind=kind,
            send_at=send_at,
            status="expired",
            reason=f"its time {_local_text(send_at, zone)}{note} had passed when it was planned",
        )
    return Planned(step=index, kind=kind, send_at=send_at, status="scheduled", reason=reason)


def plan(
    anchor_at: datetime,
    steps: Sequence[Step],
    *,
    zone: ZoneInfo,
    now: datetime,
    default_kind: str,
    quiet: QuietHours | None = None,
    transactional: bool = False,
) -> list[Planned]:
    """Plan every step of a policy: one :class:`Planned` per step, in step order.

    ``anchor_at`` and ``now`` must be aware; for an all-day anchor pass local midnight. Send
    times are UTC. A step whose time has passed by ``now`` is ``expired`` but keeps its time for
    reference. Transactional messages ignore quiet hours.
    """
    if anchor_at.tzinfo is None or now.tzinfo is None:
        # A naive datetime would silently be read in the server's zone, not the recipient's.
        raise ValueError("plan() needs aware datetimes for anchor_at and now.")
    anchor = anchor_at.astimezone(UTC)
    return [
        _plan_step(
            index,
            step,
            anchor=anchor,
            zone=zone,
            now=now,
            default_kind=default_kind,
            quiet=quiet,
            transactional=transactional,
        )
        for index, step in enumerate(steps)
    ]
