"""Time zones for iCalendar feeds: safe parsing, the calendar's zone and floating times.

Helpers for `reminders.sources.ical`; nothing here expands recurrences.
"""

from __future__ import annotations

import threading
import zoneinfo
from datetime import UTC, date, datetime, tzinfo

import icalendar
import x_wr_timezone
from icalendar.prop import vDDDTypes, vRecur
from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

# Properties whose TZID parameter names the zone of their value.
_ZONED_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID")

_PARSE_LOCK = threading.Lock()


def parse_calendars(text: str) -> list[icalendar.Calendar]:
    """Parse text into calendars, resolving every TZID against this text's VTIMEZONEs only.

    icalendar caches the zone built from each VTIMEZONE in one process-wide table keyed by
    TZID and never replaces an entry, so without this a second feed that defines Outlook's
    "Customized Time Zone" differently would silently get the first feed's offsets. Choosing
    the provider again is icalendar's public way to start a new, empty table. The lock keeps
    a concurrent call from refilling the table between the reset and the end of this parse
    (code parsing iCalendar elsewhere in the process, outside this lock, could still do
    that). Afterwards the parsed times hold their tzinfo objects, so expansion needs no lock.
    """
    with _PARSE_LOCK:
        tzp.use(tzp.name)
        return icalendar.Calendar.from_ical(text, multiple=True)


def zone_named(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone `name` (or the one a Windows zone name stands for), or None if unknown."""
    name = name.strip()
    try:
        return zoneinfo.ZoneInfo(WINDOWS_TO_OLSON.get(name, name))
    except (KeyError, ValueError, OSError):
        # KeyError: no such zone; ValueError: a path-like or empty key; OSError: a directory.
        return None


def calendar_zone(
    calendar: icalendar.Calendar, fallback: zoneinfo.ZoneInfo, warnings: list[str]
) -> tuple[zoneinfo.ZoneInfo, bool]:
    """The zone for floating times and all-day events, and whether X-WR-TIMEZONE chose it."""
    declared = calendar.get("X-WR-TIMEZONE")
    if declared is None:
        return fallback, False
    if isinstance(declared, list):  # repeated property: the first one counts
        declared = declared[0]
    zone = zone_named(str(declared))
    if zone is None:
        warnings.append(f'X-WR-TIMEZONE "{declared}" is not a time zone; ignored')
        return fallback, False
    return zone, True


class _FloatingWalker(x_wr_timezone.CalendarWalker):
    """Read floating times in one zone; unlike x-wr-timezone's walker, leave UTC times alone."""

    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone

    def walk_value_datetime(self, dt: datetime) -> datetime:
        """Anchor a floating datetime in the zone."""
        return dt.replace(tzinfo=self._zone) if dt.tzinfo is None else dt


def anchor_times(
    calendar: icalendar.Calendar, zone: zoneinfo.ZoneInfo, google: bool
) -> tuple[icalendar.Calendar, list[tuple[int, str]]]:
    """Return the calendar with every floating time read in `zone`, and the unknown TZIDs.

    With `google` (a valid X-WR-TIMEZONE), UTC times move into the zone as well: Google writes
    recurring events in UTC and means them to keep their local time across DST changes. An
    unknown TZID comes as (the index of the VEVENT using it, the TZID), for each VEVENT.
    """
    unknown: list[tuple[int, str]] = []
    for index, event in enumerate(calendar.walk("VEVENT")):
        for name in _ZONED_PROPERTIES:
            prop = event.get(name)
            tzid = prop.params.get("TZID") if isinstance(prop, vDDDTypes) else None
            if tzid and _is_floating(prop.dt):
                # icalendar leaves a time with an unknown TZID floating.
                unknown.append((index, str(tzid)))
        _anchor_until(event, zone)
    if google:
        result: icalendar.Calendar = x_wr_timezone.to_standard(calendar, timezone=zone)
        return result, unknown
    walked: icalendar.Calendar = _FloatingWalker(zone).walk(calendar)
    return walked, unknown


def _anchor_until(event: icalendar.cal.Component, zone: tzinfo) -> None:
    """Give a floating series' floating UNTIL the same zone, as UTC.

    Once DTSTART is anchored, dateutil rejects a floating UNTIL and recurring-ical-events then
    reads it as UTC, which in zones west of UTC would drop the last occurrence.
    """
    rule = event.get("RRULE")
    if not _is_floating(moment(event, "DTSTART")):
        return
    if not isinstance(rule, vRecur) or "UNTIL" not in rule:
        return
    rule["UNTIL"] = [
        until.replace(tzinfo=zone).astimezone(UTC) if _is_floating(until) else until
        for until in rule["UNTIL"]
    ]


def moment(component: icalendar.cal.Component, name: str) -> date | None:
    """The DATE or DATE-TIME value of a property; None if absent, broken or a duration."""
    prop = component.get(name)
    value = prop.dt if isinstance(prop, vDDDTypes) else None
    return value if isinstance(value, date) else None


def _is_floating(value: object) -> bool:
    return isinstance(value, datetime) and value.tzinfo is None


def to_utc(value: date, zone: tzinfo) -> datetime:
    """A DATE (local midnight in `zone`) or DATE-TIME (floating ones in `zone`) as aware UTC."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
