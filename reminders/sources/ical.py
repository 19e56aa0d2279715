"""Turn the bytes of an iCalendar feed into the event occurrences inside a time window.

A pure function: no network, no database, no clock. Each occurrence is keyed by its UID and
the UTC form of its original start (a one-off event by its UID alone), so that two syncs of
the same feed can be diffed.
Recurrences are expanded with recurring-ical-events; `ical_zones` and `ical_expand` hold
the time-zone and bounded-expansion details.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import icalendar
import recurring_ical_events as rie
from icalendar.cal import Component
from icalendar.prop import vDDDTypes, vDuration

from reminders.sources.ical_expand import chunks, first_chunk, tame_rule
from reminders.sources.ical_zones import (
    anchor_times,
    calendar_zone,
    moment,
    parse_calendars,
    to_utc,
)


class FeedError(Exception):
    """The data is not a usable iCalendar feed; str(exc) is one sentence for the user."""


@dataclass(frozen=True)
class Attendee:
    """One ATTENDEE of an event."""

    name: str | None
    email: str | None  # from mailto:
    phone: str | None  # from tel: (raw text, not normalised)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an event, with everything a reminder needs."""

    uid: str
    # ISO 8601 UTC form of the ORIGINAL start ("2026-12-15" if all-day); "" for a one-off event
    recurrence_id: str
    title: str
    start: datetime  # aware, UTC
    end: datetime | None  # aware, UTC; None if the event gives neither DTEND nor DURATION
    all_day: bool  # VALUE=DATE: start is local midnight in the calendar zone, as UTC
    location: str
    description: str
    attendees: tuple[Attendee, ...]
    alarms: tuple[timedelta, ...]  # relative to start (negative = before), sorted

    @property
    def key(self) -> str:
        """Identifies the occurrence across syncs."""
        return f"{self.uid}|{self.recurrence_id}"


@dataclass(frozen=True)
class ParsedFeed:
    """The occurrences of a feed within a window, and what the user should know about it."""

    occurrences: tuple[Occurrence, ...]  # sorted by start
    warnings: tuple[str, ...]
    calendar_zone: str | None  # the zone for floating times and all-day events
    refresh_hint: timedelta | None  # REFRESH-INTERVAL or X-PUBLISHED-TTL


# recurring-ical-events hands back copies of the source VEVENTs with new DTSTART, DTEND and
# RECURRENCE-ID, so facts about the source that the copies would lose travel as these
# private properties.
_NO_END = "X-REMINDERS-NO-END"
_SHIFT = "X-REMINDERS-SHIFT"  # seconds a RANGE=THISANDFUTURE override moves later instances
# A one-off event (no RRULE, RDATE or overrides): its identity is the UID alone, so that moving
# it keeps its key (it is the same appointment, not a new one).
_SINGLE = "X-REMINDERS-SINGLE"

# recurring-ical-events compares all-day events as naive dates, up to 14 hours away from
# their UTC start, so series with any are queried this much beyond the window.
_ALL_DAY_PAD = timedelta(days=1)

_UNFOLD = re.compile(rb"\r?\n[ \t]")
_DTSTAMP = re.compile(rb"^DTSTAMP[;:]", re.IGNORECASE)


def content_hash(data: bytes) -> str:
    """sha256 hex of the feed with every DTSTAMP line removed (unfolded first).

    Google stamps every event with the export time, so two exports of the same calendar
    differ only there. Line endings are normalised too, so CRLF versus LF does not count.
    """
    lines = _UNFOLD.sub(b"", data).replace(b"\r\n", b"\n").split(b"\n")
    kept = b"\n".join(line for line in lines if not _DTSTAMP.match(line))
    return hashlib.sha256(kept).hexdigest()


def parse_feed(
    data: bytes,
    *,
    zone: str,
    window_start: datetime,
    window_end: datetime,
    max_per_series: int = 500,
    max_total: int = 20_000,
) -> ParsedFeed:
    """The occurrences starting in [window_start, window_end), sorted by start.

    `zone` (an IANA name) reads floating times and all-day events unless the feed names a
    valid X-WR-TIMEZONE. At most `max_per_series` occurrences per UID and `max_total` in all
    are returned, the earliest first; capping adds a warning. Raises FeedError if `data` is
    not an iCalendar feed, ValueError for bad arguments.
    """
    fallback = _checked_arguments(zone, window_start, window_end, max_per_series, max_total)
    calendar = _read_calendar(data)
    warnings: list[str] = []
    tz, google = calendar_zone(calendar, fallback, warnings)
    calendar = anchor_times(calendar, tz, google, warnings)

    window = (window_start, window_end)
    streams = []
    for uid, events in _series_by_uid(calendar, warnings).items():
        core = next((event for event in events if "RECURRENCE-ID" not in event), None)
        name = _text(core or events[0], "SUMMARY") or uid
        pad = _ALL_DAY_PAD if any(_all_day(event) for event in events) else timedelta(0)
        lo, hi = window_start - pad, window_end + pad
        if core is not None and not tame_rule(core, lo):
            warnings.append(f'series "{name}" repeats too densely to expand; skipped')
            continue
        try:
            series = rie.Series([rie.EventAdapter(event) for event in events])
        except Exception as exc:  # noqa: BLE001 - one broken series must not sink the feed
            warnings.append(f'series "{name}" could not be read ({exc}); skipped')
            continue
        raw = chunks(series, lo, hi, first_chunk(core, hi - lo))
        streams.append(_capped(raw, tz, window, name, max_per_series, warnings))

    merged = heapq.merge(*streams, key=_order)
    occurrences = tuple(itertools.islice(merged, max_total))
    if next(merged, None) is not None:
        warnings.append(f"feed capped at {max_total} occurrences")
    return ParsedFeed(
        occurrences=tuple(sorted(occurrences, key=_order)),
        warnings=tuple(dict.fromkeys(warnings)),
        calendar_zone=tz.key,
        refresh_hint=_refresh_hint(calendar),
    )


def _checked_arguments(
    zone: str, window_start: datetime, window_end: datetime, max_per_series: int, max_total: int
) -> zoneinfo.ZoneInfo:
    """The fallback zone; ValueError for arguments the caller got wrong."""
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("window_start and window_end must be aware datetimes")
    if max_per_series < 0 or max_total < 0:
        raise ValueError("max_per_series and max_total must not be negative")
    try:
        return zoneinfo.ZoneInfo(zone)
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"zone {zone!r} is not an IANA time zone") from exc


def _read_calendar(data: bytes) -> icalendar.Calendar:
    """The feed's VCALENDAR (several are merged into the first), or FeedError."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Outlook and older tools write Windows-1252; never fail on the encoding alone.
        text = data.decode("cp1252", errors="replace")
    head = text.lstrip()[:100].upper()
    if not head:
        raise FeedError("The calendar feed is empty.")
    if head.startswith("<"):
        raise FeedError("The address returned a web page, not an iCalendar feed.")
    if not head.startswith("BEGIN:VCALENDAR"):
        raise FeedError("The data is not an iCalendar feed (it must start with BEGIN:VCALENDAR).")
    try:
        parsed = parse_calendars(text)
    except Exception as exc:  # noqa: BLE001 - icalendar raises many kinds on malformed input
        raise FeedError("The iCalendar feed is malformed and could not be read.") from exc
    calendars = [c for c in parsed if c.name == "VCALENDAR"]
    if not calendars:
        # icalendar returns nothing, without an error, when END:VCALENDAR is missing.
        raise FeedError("The iCalendar feed is incomplete (it has no END:VCALENDAR).")
    for extra in calendars[1:]:
        for component in extra.subcomponents:
            calendars[0].add_component(component)
    return calendars[0]


def _series_by_uid(calendar: icalendar.Calendar, warnings: list[str]) -> dict[str, list[Component]]:
    """The usable VEVENTs grouped by UID, tagged for `_occurrence`."""
    groups: dict[str, list[Component]] = {}
    for event in calendar.walk("VEVENT"):
        start = moment(event, "DTSTART")
        if start is None:
            warnings.append(f'event "{_text(event, "SUMMARY")}" has no valid start; skipped')
            continue
        uid = _text(event, "UID").strip()
        if not uid:
            # Keys must survive the next sync, so no random or id()-based UID.
            seed = f"{start.isoformat()}|{_text(event, 'SUMMARY')}".encode()
            uid = "no-uid-" + hashlib.sha256(seed).hexdigest()[:16]
            event["UID"] = uid
        if "DTEND" not in event and "DURATION" not in event:
            event[_NO_END] = "1"
        recurrence_id = moment(event, "RECURRENCE-ID")
        if recurrence_id is not None and _range(event) == "THISANDFUTURE":
            shift = _difference(start, recurrence_id)
            if shift is not None:
                event[_SHIFT] = str(int(shift.total_seconds()))
        groups.setdefault(uid, []).append(event)
    for events in groups.values():
        if len(events) == 1 and not any(
            p in events[0] for p in ("RRULE", "RDATE", "RECURRENCE-ID")
        ):
            events[0][_SINGLE] = "1"
    # A cancelled master cancels the whole series, overrides included.
    return {
        uid: events
        for uid, events in groups.items()
        if not any(_cancelled(e) and "RECURRENCE-ID" not in e for e in events)
    }


def _capped(
    raw: Iterator[list[rie.Occurrence]],
    zone: zoneinfo.ZoneInfo,
    window: tuple[datetime, datetime],
    name: str,
    limit: int,
    warnings: list[str],
) -> Iterator[Occurrence]:
    """The series' occurrences in the window, earliest first, at most `limit` of them."""
    seen: set[str] = set()
    try:
        for found in raw:
            # The library also returns events still going on at the start; skip them before
            # paying for the component copy.
            inside = (i for i in found if window[0] <= to_utc(i.start, zone) < window[1])
            converted = (_occurrence(item.as_component(False), zone) for item in inside)
            for occurrence in sorted(filter(None, converted), key=_order):
                if occurrence.key in seen:  # overlapped two slices
                    continue
                if len(seen) == limit:
                    warnings.append(f'series "{name}" capped at {limit} occurrences')
                    return
                seen.add(occurrence.key)
                yield occurrence
    except Exception as exc:  # noqa: BLE001 - one broken series must not sink the feed
        warnings.append(f'series "{name}" could not be expanded ({exc}); skipped the rest')


def _occurrence(event: Component, zone: zoneinfo.ZoneInfo) -> Occurrence | None:
    """Our view of one expanded VEVENT copy; None if it is cancelled."""
    if _cancelled(event):
        return None
    start_value = moment(event, "DTSTART")
    # The copies always carry a DTEND; it is RFC 5545's implied end when the source had none.
    end_value = moment(event, "DTEND")
    # The override's own RECURRENCE-ID, or the start the library filled in otherwise.
    original = moment(event, "RECURRENCE-ID")
    if start_value is None or end_value is None or original is None:
        return None  # not produced by recurring-ical-events for a VEVENT with a DTSTART
    start, end = to_utc(start_value, zone), to_utc(end_value, zone)
    shift = event.get(_SHIFT)
    if shift is not None:
        # An instance of a RANGE=THISANDFUTURE override: its slot is where it was moved from.
        original = start_value - timedelta(seconds=int(str(shift)))
    if _SINGLE in event:
        recurrence_id = ""
    elif isinstance(original, datetime):
        recurrence_id = to_utc(original, zone).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        recurrence_id = original.isoformat()
    return Occurrence(
        uid=_text(event, "UID"),
        recurrence_id=recurrence_id,
        title=_text(event, "SUMMARY"),
        start=start,
        end=None if _NO_END in event else end,
        all_day=not isinstance(start_value, datetime),
        location=_text(event, "LOCATION"),
        description=_text(event, "DESCRIPTION"),
        attendees=_attendees(event),
        alarms=_alarms(event, start, end, zone),
    )


def _alarms(
    event: Component, start: datetime, end: datetime, zone: zoneinfo.ZoneInfo
) -> tuple[timedelta, ...]:
    """Each VALARM trigger as an offset from this occurrence's start, sorted, no repeats.

    Read from the occurrence's own VEVENT: recurring-ical-events' VALARM query crashes on
    all-day events. RELATED=END triggers are moved by the duration, and absolute ones become
    their distance from this occurrence's start.
    """
    offsets: set[timedelta] = set()
    for alarm in event.walk("VALARM"):
        trigger = alarm.get("TRIGGER")
        if not isinstance(trigger, vDDDTypes):
            continue  # missing or unparsable
        value = trigger.dt
        if isinstance(value, timedelta):
            related = str(trigger.params.get("RELATED", "START")).upper()
            offsets.add(value + (end - start if related == "END" else timedelta(0)))
        elif isinstance(value, date):
            offsets.add(to_utc(value, zone) - start)
    return tuple(sorted(offsets))


def _attendees(event: Component) -> tuple[Attendee, ...]:
    """ATTENDEE properties with a usable name, mailto: or tel: address."""
    found = []
    for prop in _as_list(event.get("ATTENDEE")):
        address = str(prop).strip()
        scheme, _, rest = address.partition(":")
        scheme = scheme.lower()
        email = rest.strip() if scheme == "mailto" else None
        if not rest and "@" in address:
            email = address  # some exporters leave out the mailto:
        phone = rest.strip() if scheme == "tel" else None
        params = getattr(prop, "params", {})
        name = str(params.get("CN", "")).strip() or None
        if name or email or phone:
            found.append(Attendee(name=name, email=email or None, phone=phone or None))
    return tuple(found)


def _refresh_hint(calendar: icalendar.Calendar) -> timedelta | None:
    """How often the publisher asks to be polled, if it says so (the standard way first)."""
    for name in ("REFRESH-INTERVAL", "X-PUBLISHED-TTL"):
        for prop in _as_list(calendar.get(name)):
            value = getattr(prop, "dt", None)
            if not isinstance(value, timedelta):
                try:
                    value = vDuration.from_ical(str(prop).strip())
                except ValueError:
                    continue
            if isinstance(value, timedelta) and value > timedelta(0):
                return value
    return None


def _order(occurrence: Occurrence) -> tuple[datetime, str, str]:
    return occurrence.start, occurrence.uid, occurrence.recurrence_id


def _all_day(event: Component) -> bool:
    start = moment(event, "DTSTART")
    return start is not None and not isinstance(start, datetime)


def _range(event: Component) -> str:
    prop = event.get("RECURRENCE-ID")
    return str(getattr(prop, "params", {}).get("RANGE", "")).upper()


def _cancelled(event: Component) -> bool:
    return _text(event, "STATUS").strip().upper() == "CANCELLED"


def _text(component: Component, name: str) -> str:
    """A text property as str ("" if absent; the first if repeated)."""
    values = _as_list(component.get(name))
    return str(values[0]) if values else ""


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _difference(later: date, earlier: date) -> timedelta | None:
    """later - earlier, or None if one is a date and the other a date-time."""
    if isinstance(later, datetime) != isinstance(earlier, datetime):
        return None
    if isinstance(later, datetime) and isinstance(earlier, datetime):
        if (later.tzinfo is None) != (earlier.tzinfo is None):
            return None
    return later - earlier


__all__ = ["Attendee", "FeedError", "Occurrence", "ParsedFeed", "content_hash", "parse_feed"]
