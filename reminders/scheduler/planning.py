"""Planning reminder send times: a pure computation from an anchor, a policy and ``now``.

A policy is a list of steps relative to an anchor (an event's start, a bill's due date). Each step
becomes one :class:`Planned` result: the UTC instant to send at, or the reason it will not be sent.

Nothing here reads a clock, a database or the scheduler; ``now`` is always passed in, so the same
inputs always give the same plan and every rule can be tested with exact datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from reminders.durations import Offset
from reminders.wall_clock import QuietHours

Status = Literal["scheduled", "expired"]

# The kind whose quiet-hours rule moves a notice earlier: a reminder after the event is useless.
EVENT_REMINDER = "event_reminder"


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
