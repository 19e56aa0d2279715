"""Split an iCalendar feed into its parts without parsing it: the calendar's own properties,
its VTIMEZONEs and its event series (the VEVENTs that share a UID: a rule and its overrides).

A sync compares each series' digest with the one it stored, and parses only the series that
changed (`FeedParts.text_of`). Lines are unfolded and split by icalendar's own expressions, so
the text handed back for some series is what a parse of the whole feed reads of them.
Whatever this reader is not sure of (a second VCALENDAR, a VEVENT or VTIMEZONE nested in
another component, text outside the calendar, an event without a UID) makes `split_feed`
return None, and the caller reads the whole feed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from icalendar.cal import Event
from icalendar.parser.content_line import UFOLD, Contentline

_SIMPLE_BOUNDARY = re.compile(r"(BEGIN|END):([A-Za-z0-9-]+)", re.IGNORECASE)
# The lines the split looks at: a component's boundaries, the UID or TZID that names it, and
# DTSTAMP, which its digest leaves out (Google stamps every event with the export's time).
_LINE = re.compile(r"^(?:BEGIN|END|DTSTAMP|UID|TZID)\b[^\n]*", re.MULTILINE | re.IGNORECASE)
_DTSTAMP_LINE = re.compile(r"^DTSTAMP[;:][^\n]*\n", re.MULTILINE | re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n{2,}")
_TZID_PARAM = re.compile(r';TZID=(?:"([^"]*)"|([^;:\n]*))', re.IGNORECASE)
# Components whose place in the tree the parse depends on: only at the top of the calendar.
_TRACKED = {"VEVENT", "VTIMEZONE", "VCALENDAR"}
# The property that names each kind of component the split keeps.
_NAMING = {"VEVENT": "UID", "VTIMEZONE": "TZID"}


@dataclass(frozen=True)
class SeriesText:
    """One series as written: the digest of its text and where its VEVENTs are."""

    digest: str  # its lines but DTSTAMP, and the VTIMEZONEs it names
    events: tuple[int, ...]  # positions of its VEVENTs among all the feed's, in order


@dataclass
class _Block:
    """A component at the top of the calendar, as a span of the unfolded text."""

    name: str
    start: int
    end: int = 0
    naming: str | None = None  # its own first UID or TZID line (not a nested VALARM's)
    stamps: list[tuple[int, int]] = field(default_factory=list)  # spans of its DTSTAMP lines

    def without_stamps(self, text: str) -> str:
        pieces, at = [], self.start
        for begin, end in self.stamps:
            pieces.append(text[at:begin])
            at = end
        pieces.append(text[at : self.end])
        return "".join(pieces)


@dataclass(frozen=True)
class FeedParts:
    """A feed cut into its calendar properties, time zones and series."""

    calendar: str  # digest of the calendar's own properties (X-WR-TIMEZONE, REFRESH-INTERVAL...)
    series: dict[str, SeriesText]  # by UID, in the order each first appears
    head: str  # BEGIN:VCALENDAR and the calendar's properties
    tail: str  # END:VCALENDAR as written
    blocks: tuple[tuple[str | None, str], ...]  # (UID, or None for a VTIMEZONE; its text)

    def text_of(self, uids: Collection[str]) -> str:
        """A feed of the calendar's properties, every VTIMEZONE and these series' VEVENTs."""
        kept = (text for uid, text in self.blocks if uid is None or uid in uids)
        return "".join([self.head, *kept, self.tail])


def split_feed(text: str) -> FeedParts | None:
    """The feed's parts, or None if it should be read whole (see the module's docstring)."""
    # Unfolded as icalendar unfolds (a fold is a line break before a space or a tab; feeds
    # with short lines have none); CRLF and LF and blank lines are all one to it.
    if "\n " in text or "\n\t" in text:
        text = UFOLD.sub("", text)
    unfolded = text.replace("\r\n", "\n")
    if "\n\n" in unfolded:
        unfolded = _BLANK_LINES.sub("\n", unfolded)
    unfolded = unfolded.strip("\n")
    if "\n " in unfolded or "\n\t" in unfolded:
        return None  # a fold icalendar did not undo, which a second unfolding might
    unfolded += "\n"
    head: list[str] = []
    blocks: list[_Block] = []
    stack: list[str] = []
    since = 0  # where the text after the last boundary starts
    tail = ""
    for match in _LINE.finditer(unfolded):
        line = match[0]
        named = _property(line)
        if named is not None:
            if len(stack) > 1:
                block = blocks[-1]
                if named == "DTSTAMP":
                    block.stamps.append((match.start(), match.end() + 1))
                elif len(stack) == 2 and block.naming is None and named == _NAMING.get(block.name):
                    block.naming = line
            continue
        boundary = _boundary(line)
        if boundary is None:
            continue
        between = unfolded[since : match.start()]
        if len(stack) == 1:
            head.append(between)
        elif not stack and between or tail:
            return None  # text outside the calendar, or a second calendar
        since = match.end() + 1
        begin, name = boundary
        if begin:
            if (not stack) != (name == "VCALENDAR") or (len(stack) > 1 and name in _TRACKED):
                return None  # a tracked component where the parse would not look for it
            stack.append(name)
            if len(stack) == 1:
                head.append(unfolded[match.start() : since])
            elif len(stack) == 2:
                blocks.append(_Block(name, match.start()))
            continue
        if not stack or stack.pop() != name:
            return None
        if len(stack) == 1:
            blocks[-1].end = since
        elif not stack:
            tail = unfolded[match.start() : since]
    if stack or not tail or unfolded[since:]:
        return None
    return _parts(unfolded, "".join(head), tail, blocks)


def _parts(text: str, head: str, tail: str, blocks: list[_Block]) -> FeedParts | None:
    zones: dict[str, list[str]] = {}  # TZID -> digests of the VTIMEZONEs naming it
    kept: list[tuple[str | None, str]] = []
    texts: dict[str, list[_Block]] = {}
    positions: dict[str, list[int]] = {}
    events = 0  # VEVENTs so far
    for block in blocks:
        name = None if block.naming is None else _value(block.naming)
        if block.name == "VTIMEZONE":
            if name is not None:
                digest = _sha256(block.without_stamps(text))
                zones.setdefault(name.strip("/"), []).append(digest)
            kept.append((None, text[block.start : block.end]))
        elif block.name == "VEVENT":
            if name is None or not name.strip():
                return None  # the parse makes up a UID from the start and the title
            uid = name.strip()
            positions.setdefault(uid, []).append(events)
            texts.setdefault(uid, []).append(block)
            kept.append((uid, text[block.start : block.end]))
            events += 1
        # Other components (VTODO, VJOURNAL...) hold nothing a sync reads.
    series = {
        uid: SeriesText(_series_digest(text, events, zones), tuple(positions[uid]))
        for uid, events in texts.items()
    }
    return FeedParts(_sha256(_DTSTAMP_LINE.sub("", head)), series, head, tail, tuple(kept))


def _property(line: str) -> str | None:
    """DTSTAMP, UID or TZID if the line is one of those properties, else None."""
    for name in ("DTSTAMP", "UID", "TZID"):
        if line[: len(name)].upper() == name and line[len(name) : len(name) + 1] in (";", ":"):
            return name
    return None


def _boundary(line: str) -> tuple[bool, str] | None:
    """(True for BEGIN, the component's name) if the line begins or ends one, else None."""
    simple = _SIMPLE_BOUNDARY.fullmatch(line)
    if simple:
        return simple[1].upper() == "BEGIN", simple[2].upper()
    try:
        name, _, value = Contentline(line).parts()
    except ValueError:
        return None  # the parse rejects it or skips it, as it does in the whole feed
    if name.upper() not in ("BEGIN", "END"):
        return None
    return name.upper() == "BEGIN", value.upper()


def _value(line: str) -> str | None:
    """A property's value as the parse reads it: unescaped, then through its own type."""
    written, colon, value = line.partition(":")
    if colon and ";" not in written and "\\" not in value:
        return value  # no parameters and nothing escaped: the value as written
    try:
        prop, params, value = Contentline(line).parts()
    except ValueError:
        return None
    factory: Any = Event.types_factory.for_property(prop, params.value)
    return str(factory(factory.from_ical(value)))


def _series_digest(text: str, events: list[_Block], zones: dict[str, list[str]]) -> str:
    """The series' text without DTSTAMP, with the VTIMEZONEs its TZIDs may resolve to.

    icalendar finds a VTIMEZONE for a TZID under the TZID itself or a part of it (a vendor
    prefix dropped), so every VTIMEZONE named by a part of one of the series' TZIDs counts.
    """
    written = "\x00".join(event.without_stamps(text) for event in events)
    if zones:
        used = {
            match[1] if match[1] is not None else match[2]
            for event in events
            for match in _TZID_PARAM.finditer(text, event.start, event.end)
        }
        named = sorted(tzid for tzid in zones if any(tzid in value for value in used))
        written += "".join(f"\x00{tzid}\x01{','.join(zones[tzid])}" for tzid in named)
    return _sha256(written)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
