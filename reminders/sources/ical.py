"""Turn the bytes of an iCalendar feed into the event occurrences inside a time window.

A pure function: no network, no database, no clock. Each occurrence is keyed by its UID and
the UTC form of its original start (a one-off event by its UID alone), so that two syncs of
the same feed can be diffed.
Recurrences are expanded with recurring-ical-events; `ical_zones`, `ical_expand` and
`ical_occurrence` hold the time-zone, bounded-expansion and per-occurrence details,
`ical_notes` the order of the warnings.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import re
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import icalendar
import recurring_ical_events as rie
from icalendar.cal import Component
from icalendar.prop import vDuration

from reminders.sources.ical_expand import chunks, first_chunk, may_give_up, tame_rule
from reminders.sources.ical_notes import (
    CALENDAR,
    EXPANSION,
    FEED,
    SERIES,
    START,
    ZONE,
    Note,
    in_order,
)
from reminders.sources.ical_occurrence import (
    NO_END,
    SHIFT,
    SINGLE,
    Attendee,
    Occurrence,
    as_list,
    cancelled,
    occurrence_of,
    text_of,
)
from reminders.sources.ical_zones import (
    anchor_times,
    calendar_zone,
    moment,
    parse_calendars,
    to_utc,
)

MAX_TOTAL = 20_000  # occurrences per feed


class FeedError(Exception):
    """The data is not a usable iCalendar feed; str(exc) is one sentence for the user."""


@dataclass(frozen=True)
class ParsedFeed:
    """The occurrences of a feed within a window, and what the user should know about it."""

    occurrences: tuple[Occurrence, ...]  # sorted by start
    warnings: tuple[str, ...]
    calendar_zone: str | None  # the zone for floating times and all-day events
    refresh_hint: timedelta | None  # REFRESH-INTERVAL or X-PUBLISHED-TTL
    # What a sync that reads only the series that changed needs besides (derived, so not
    # compared): the warnings with the series they are about, each VEVENT's UID as written
    # ("" if none) in order, and the UIDs of the series `_Reader` calls volatile.
    notes: tuple[Note, ...] = field(default=(), compare=False)
    events: tuple[str, ...] = field(default=(), compare=False)
    volatile: frozenset[str] = field(default=frozenset(), compare=False)


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
    data: bytes | str,
    *,
    zone: str,
    window_start: datetime,
    window_end: datetime,
    max_per_series: int = 500,
    max_total: int = MAX_TOTAL,
) -> ParsedFeed:
    """The occurrences starting in [window_start, window_end), sorted by start.

    `data` is the feed's bytes, or its text (`feed_text`). `zone` (an IANA name) reads floating
    times and all-day events unless the feed names a valid X-WR-TIMEZONE. At most
    `max_per_series` occurrences per UID and `max_total` in all are returned, the earliest
    first; capping adds a warning. Raises FeedError if `data` is not an iCalendar feed,
    ValueError for bad arguments.
    """
    fallback = _checked_arguments(zone, window_start, window_end, max_per_series, max_total)
    calendar = _read_calendar(data)
    said: list[str] = []
    tz, google = calendar_zone(calendar, fallback, said)
    notes = [Note(text, CALENDAR) for text in said]
    events = _Events.of(calendar)
    calendar, unknown = anchor_times(calendar, tz, google)
    for index, tzid in unknown:
        text = f'time zone "{tzid}" is unknown; its times are read in {tz.key}'
        notes.append(events.note(index, text, ZONE))

    reader = _Reader(tz, (window_start, window_end), max_per_series, events, notes)
    streams = [reader.stream(group) for group in _series_by_uid(calendar, events, notes)]
    merged = heapq.merge(*filter(None, streams), key=_order)
    occurrences = tuple(itertools.islice(merged, max_total))
    if next(merged, None) is not None:
        notes.append(Note(f"feed capped at {max_total} occurrences", FEED))
    return ParsedFeed(
        occurrences=tuple(sorted(occurrences, key=_order)),
        warnings=in_order(notes, events.positions),
        calendar_zone=tz.key,
        refresh_hint=_refresh_hint(calendar),
        notes=tuple(notes),
        events=events.uids,
        volatile=frozenset(reader.volatile),
    )


@dataclass(frozen=True)
class _Events:
    """Each VEVENT's UID as written ("" if none), and where it is among its series' VEVENTs."""

    uids: tuple[str, ...]
    local: tuple[int, ...]
    positions: dict[str, list[int]]

    @classmethod
    def of(cls, calendar: icalendar.Calendar) -> _Events:
        uids = tuple(text_of(event, "UID").strip() for event in calendar.walk("VEVENT"))
        positions: dict[str, list[int]] = {}
        local = []
        for index, uid in enumerate(uids):
            places = positions.setdefault(uid, [])
            local.append(len(places))
            places.append(index)
        return cls(uids, tuple(local), positions)

    def note(self, index: int, text: str, kind: int) -> Note:
        """A note about the VEVENT at `index` (counted among all the feed's VEVENTs)."""
        return Note(text, kind, self.uids[index], self.local[index])


@dataclass(frozen=True)
class _Group:
    """The usable VEVENTs of one UID; `first` is where the first of them is in the feed."""

    uid: str
    first: int
    events: list[Component]


@dataclass
class _Reader:
    """Turns each series into a stream of its occurrences in the window, noting trouble."""

    zone: zoneinfo.ZoneInfo
    window: tuple[datetime, datetime]
    limit: int
    events: _Events
    notes: list[Note]
    # Series whose occurrences may change as the window's start moves on, not only with their
    # text or the window's end: capped, broken while expanding, or too dense (some day).
    volatile: set[str] = field(default_factory=set)

    def stream(self, group: _Group) -> Iterator[Occurrence] | None:
        events, written = group.events, self.events.uids[group.first]
        core = next((event for event in events if "RECURRENCE-ID" not in event), None)
        name = text_of(core or events[0], "SUMMARY") or group.uid
        pad = _ALL_DAY_PAD if any(_all_day(event) for event in events) else timedelta(0)
        lo, hi = self.window[0] - pad, self.window[1] + pad
        if core is not None and may_give_up(core):
            self.volatile.add(written)
        if core is not None and not tame_rule(core, lo):
            text = f'series "{name}" repeats too densely to expand; skipped'
            self.notes.append(self.events.note(group.first, text, SERIES))
            return None
        try:
            series = rie.Series([rie.EventAdapter(event) for event in events])
        except Exception as exc:  # noqa: BLE001 - one broken series must not sink the feed
            text = f'series "{name}" could not be read ({exc}); skipped'
            self.notes.append(self.events.note(group.first, text, SERIES))
            return None

        def warn(text: str) -> None:
            self.notes.append(Note(text, EXPANSION, written))
            self.volatile.add(written)

        raw = chunks(series, lo, hi, first_chunk(core, hi - lo))
        return _capped(raw, self.zone, self.window, name, self.limit, warn)


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


def feed_text(data: bytes) -> str:
    """The feed's bytes as text: UTF-8 (a BOM or not), else Windows-1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Outlook and older tools write Windows-1252; never fail on the encoding alone.
        return data.decode("cp1252", errors="replace")


def _read_calendar(data: bytes | str) -> icalendar.Calendar:
    """The feed's VCALENDAR (several are merged into the first), or FeedError."""
    text = data if isinstance(data, str) else feed_text(data)
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


def _series_by_uid(
    calendar: icalendar.Calendar, events: _Events, notes: list[Note]
) -> list[_Group]:
    """The usable VEVENTs grouped by UID, tagged for `occurrence_of`."""
    groups: dict[str, _Group] = {}
    for index, event in enumerate(calendar.walk("VEVENT")):
        start = moment(event, "DTSTART")
        if start is None:
            text = f'event "{text_of(event, "SUMMARY")}" has no valid start; skipped'
            notes.append(events.note(index, text, START))
            continue
        uid = events.uids[index]
        if not uid:
            # Keys must survive the next sync, so no random or id()-based UID.
            seed = f"{start.isoformat()}|{text_of(event, 'SUMMARY')}".encode()
            uid = "no-uid-" + hashlib.sha256(seed).hexdigest()[:16]
            event["UID"] = uid
        if "DTEND" not in event and "DURATION" not in event:
            event[NO_END] = "1"
        recurrence_id = moment(event, "RECURRENCE-ID")
        if recurrence_id is not None and _range(event) == "THISANDFUTURE":
            shift = _difference(start, recurrence_id)
            if shift is not None:
                event[SHIFT] = str(int(shift.total_seconds()))
        groups.setdefault(uid, _Group(uid, index, [])).events.append(event)
    for group in groups.values():
        if len(group.events) == 1 and not any(
            p in group.events[0] for p in ("RRULE", "RDATE", "RECURRENCE-ID")
        ):
            group.events[0][SINGLE] = "1"
    # A cancelled master cancels the whole series, overrides included.
    return [
        group
        for group in groups.values()
        if not any(cancelled(e) and "RECURRENCE-ID" not in e for e in group.events)
    ]


def _capped(
    raw: Iterator[list[rie.Occurrence]],
    zone: zoneinfo.ZoneInfo,
    window: tuple[datetime, datetime],
    name: str,
    limit: int,
    warn: Callable[[str], None],
) -> Iterator[Occurrence]:
    """The series' occurrences in the window, earliest first, at most `limit` of them."""
    seen: set[str] = set()
    try:
        for found in raw:
            # The library also returns events still going on at the start; skip them before
            # paying for the component copy.
            inside = (i for i in found if window[0] <= to_utc(i.start, zone) < window[1])
            converted = (occurrence_of(item.as_component(False), zone) for item in inside)
            for occurrence in sorted(filter(None, converted), key=_order):
                if occurrence.key in seen:  # overlapped two slices
                    continue
                if len(seen) == limit:
                    warn(f'series "{name}" capped at {limit} occurrences')
                    return
                seen.add(occurrence.key)
                yield occurrence
    except Exception as exc:  # noqa: BLE001 - one broken series must not sink the feed
        warn(f'series "{name}" could not be expanded ({exc}); skipped the rest')


def _refresh_hint(calendar: icalendar.Calendar) -> timedelta | None:
    """How often the publisher asks to be polled, if it says so (the standard way first)."""
    for name in ("REFRESH-INTERVAL", "X-PUBLISHED-TTL"):
        for prop in as_list(calendar.get(name)):
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


def _difference(later: date, earlier: date) -> timedelta | None:
    """later - earlier, or None if one is a date and the other a date-time."""
    if isinstance(later, datetime) != isinstance(earlier, datetime):
        return None
    if isinstance(later, datetime) and isinstance(earlier, datetime):
        if (later.tzinfo is None) != (earlier.tzinfo is None):
            return None
    return later - earlier


__all__ = [
    "MAX_TOTAL",
    "Attendee",
    "FeedError",
    "Occurrence",
    "ParsedFeed",
    "content_hash",
    "feed_text",
    "parse_feed",
]
