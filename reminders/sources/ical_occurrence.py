"""One expanded VEVENT copy as our `Occurrence`: its times in UTC, attendees and alarms.

Helpers for `reminders.sources.ical`, which tags the source VEVENTs with the private properties
below before recurring-ical-events copies them.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from icalendar.cal import Component
from icalendar.prop import vDDDTypes

from reminders.sources.ical_zones import moment, to_utc


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


# recurring-ical-events hands back copies of the source VEVENTs with new DTSTART, DTEND and
# RECURRENCE-ID, so facts about the source that the copies would lose travel as these
# private properties.
NO_END = "X-REMINDERS-NO-END"
SHIFT = "X-REMINDERS-SHIFT"  # seconds a RANGE=THISANDFUTURE override moves later instances
# A one-off event (no RRULE, RDATE or overrides): its identity is the UID alone, so that moving
# it keeps its key (it is the same appointment, not a new one).
SINGLE = "X-REMINDERS-SINGLE"


def occurrence_of(event: Component, zone: zoneinfo.ZoneInfo) -> Occurrence | None:
    """Our view of one expanded VEVENT copy; None if it is cancelled."""
    if cancelled(event):
        return None
    start_value = moment(event, "DTSTART")
    # The copies always carry a DTEND; it is RFC 5545's implied end when the source had none.
    end_value = moment(event, "DTEND")
    # The override's own RECURRENCE-ID, or the start the library filled in otherwise.
    original = moment(event, "RECURRENCE-ID")
    if start_value is None or end_value is None or original is None:
        return None  # not produced by recurring-ical-events for a VEVENT with a DTSTART
    start, end = to_utc(start_value, zone), to_utc(end_value, zone)
    shift = event.get(SHIFT)
    if shift is not None:
        # An instance of a RANGE=THISANDFUTURE override: its slot is where it was moved from.
        original = start_value - timedelta(seconds=int(str(shift)))
    if SINGLE in event:
        recurrence_id = ""
    elif isinstance(original, datetime):
        recurrence_id = to_utc(original, zone).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        recurrence_id = original.isoformat()
    return Occurrence(
        uid=text_of(event, "UID"),
        recurrence_id=recurrence_id,
        title=text_of(event, "SUMMARY"),
        start=start,
        end=None if NO_END in event else end,
        all_day=not isinstance(start_value, datetime),
        location=text_of(event, "LOCATION"),
        description=text_of(event, "DESCRIPTION"),
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
    for prop in as_list(event.get("ATTENDEE")):
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


def cancelled(event: Component) -> bool:
    return text_of(event, "STATUS").strip().upper() == "CANCELLED"


def text_of(component: Component, name: str) -> str:
    """A text property as str ("" if absent; the first if repeated)."""
    values = as_list(component.get(name))
    return str(values[0]) if values else ""


def as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
