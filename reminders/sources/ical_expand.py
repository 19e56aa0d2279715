"""Bounded expansion of one recurring series with recurring-ical-events.

Helpers for `reminders.sources.ical`. Two things make naive expansion of a hostile or silly
feed (FREQ=SECONDLY since 2015) explode, and this module bounds both:

* dateutil, under recurring-ical-events, walks (and caches) every occurrence from DTSTART up
  to the end of the span it is asked about, even when only the last hour is wanted. For rules
  that advance in fixed steps, `tame_rule` moves DTSTART forward by whole periods to just
  before the window, which leaves every later occurrence where it was.
* Asking for the whole window at once materialises everything in it. `chunks` asks for
  growing slices instead, so the caller can stop after the first few hundred.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
from icalendar.prop import vDDDTypes, vRecur

from reminders.sources.ical_zones import moment

# Frequencies whose periods have a fixed length in wall-clock time (DAILY and WEEKLY ignore
# DST because dateutil steps through local dates and times), so shifting DTSTART by whole
# periods keeps every later occurrence.
_FIXED_PERIOD = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
}
# Upper bounds for the rest; used only to size the first chunk.
_LONGEST_PERIOD = {**_FIXED_PERIOD, "MONTHLY": timedelta(days=31), "YEARLY": timedelta(days=366)}

# How many periods before the window dateutil may walk before we move DTSTART (a few ms).
MAX_PERIODS_BEFORE = 5_000
# The first chunk is sized to hold about this many periods; each next one is twice as long.
_PERIODS_PER_CHUNK = 32


def _single_rule(event: icalendar.cal.Component) -> tuple[vRecur, str, int] | None:
    """The event's only RRULE with its FREQ and INTERVAL, or None if there is not exactly one."""
    rule = event.get("RRULE")
    if not isinstance(rule, vRecur) or not rule.get("FREQ"):
        return None
    interval = rule.get("INTERVAL", [1])[0]
    return rule, str(rule["FREQ"][0]).upper(), max(int(interval), 1)


def first_chunk(core: icalendar.cal.Component | None, window: timedelta) -> timedelta:
    """How much of the window to expand first: all of it unless the series has a rule."""
    found = _single_rule(core) if core is not None else None
    if found is None:
        return window
    _, freq, interval = found
    period = _LONGEST_PERIOD.get(freq, timedelta(days=1)) * interval
    return min(window, period * _PERIODS_PER_CHUNK)


def may_give_up(event: icalendar.cal.Component) -> bool:
    """Whether `tame_rule` may refuse the series one day, once the window has moved on far
    enough from its DTSTART, though it does not now."""
    found = _single_rule(event)
    if found is None:
        return False
    rule, freq, _ = found
    return (
        freq in _FIXED_PERIOD
        and "COUNT" in rule
        and int(rule["COUNT"][0]) > MAX_PERIODS_BEFORE
        and any(part.startswith("BY") for part in rule)
    )


def tame_rule(event: icalendar.cal.Component, not_before: datetime) -> bool:
    """Make the series' RRULE cheap to expand from `not_before` on, if it needs that.

    The event is changed in place; occurrences at or after `not_before` stay the same. The
    new DTSTART is itself an occurrence (RFC 5545 always counts DTSTART), but it lies a
    whole period before `not_before`, where the caller drops it. False means the rule
    cannot be made cheap.
    """
    found = _single_rule(event)
    start = moment(event, "DTSTART")
    if found is None or start is None:
        return True
    rule, freq, interval = found
    period = _FIXED_PERIOD.get(freq)
    if period is None:
        return True
    period *= interval
    if not isinstance(start, datetime) and period % timedelta(days=1):
        return True  # a date can only move by whole days
    if isinstance(start, datetime) and start.tzinfo is not None:
        not_before = not_before.astimezone(start.tzinfo)
    wall_start, wall_limit = _wall(start), _wall(not_before)
    periods = (wall_limit - wall_start) // period
    if periods <= MAX_PERIODS_BEFORE:
        return True
    if "COUNT" in rule:
        count = int(rule["COUNT"][0])
        if count <= MAX_PERIODS_BEFORE:
            return True  # dateutil stops after COUNT occurrences anyway
        if any(part.startswith("BY") for part in rule):
            return False  # filtered: finding the last one means walking them all
        if _count_to_until(rule, start, wall_limit, period, count):
            # Ended before the window; moved instances (own VEVENTs) may still fall in it.
            del event["RRULE"]
            return True
    shift = period * (periods - 1)
    event["DTSTART"] = vDDDTypes(start + shift)
    end = moment(event, "DTEND")
    if end is not None:
        event["DTEND"] = vDDDTypes(end + shift)
    return True


def _count_to_until(
    rule: vRecur, start: date, limit: datetime, period: timedelta, count: int
) -> bool:
    """Replace the unfiltered rule's COUNT by the UNTIL it implies; True if that is < limit.

    Occurrence n of such a rule is DTSTART + n periods, so the last is n = COUNT - 1.
    """
    try:
        last = _wall(start) + period * (count - 1)
        until = _from_wall(last, start)
    except OverflowError:  # after the year 9999: as good as endless
        del rule["COUNT"]
        return False
    if last < limit:
        return True
    del rule["COUNT"]
    rule["UNTIL"] = [until]
    return False


def _wall(value: date) -> datetime:
    """The naive local date and time dateutil counts periods in."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def _from_wall(wall: datetime, like: date) -> date:
    """A wall-clock time in the form an UNTIL for a series starting at `like` needs."""
    if not isinstance(like, datetime):
        return wall.date()
    if like.tzinfo is None:
        return wall
    return wall.replace(tzinfo=like.tzinfo).astimezone(UTC)  # RFC 5545: UNTIL in UTC


def chunks(series: Any, start: datetime, stop: datetime, first: timedelta) -> Iterator[list[Any]]:
    """The series' occurrences touching [start, stop), one slice of the span at a time.

    `series` is a recurring_ical_events.Series. Each slice is twice as long as the one
    before, so a long window takes few calls, and a caller that stops early has
    materialised at most about as much as it used. An occurrence overlapping a slice
    boundary comes back in both slices.
    """
    size = first
    while start < stop:
        end = min(start + size, stop)
        yield list(series.between(start, end))
        start = end
        size *= 2
