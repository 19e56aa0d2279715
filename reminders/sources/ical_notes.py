"""The warnings about a feed, each with the series it is about and its place among the others.

A full parse and a sync that parsed only the changed series (keeping the others' warnings
from before) must show the same warnings in the same order: first the calendar's own, then,
kind by kind, those about events in the order the events are written, then those found while
expanding, in the order they were found, and last the feed's cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Kinds, in the order they are shown.
CALENDAR = 0  # X-WR-TIMEZONE unusable
ZONE = 1  # an unknown TZID, at the first event that uses it
START = 2  # an event without a usable DTSTART
SERIES = 3  # a series that cannot be read or is too dense to expand, at its first event
EXPANSION = 4  # a series capped or broken while expanding, in the order found
FEED = 5  # the whole feed capped
_PLACED = (ZONE, START, SERIES)


@dataclass(frozen=True)
class Note:
    """One warning. `uid` and `event` (the series, and which of its VEVENTs counted from 0)
    place the kinds that are ordered by where the event is written."""

    text: str
    kind: int
    uid: str = ""
    event: int = 0

    @property
    def placed(self) -> bool:
        return self.kind in _PLACED


def in_order(notes: Iterable[Note], positions: Mapping[str, Sequence[int]]) -> tuple[str, ...]:
    """The notes' texts, ordered and without repeats; `positions` places each series' VEVENTs
    among all the feed's (the order notes were made in breaks the remaining ties)."""

    def key(item: tuple[int, Note]) -> tuple[int, int, int]:
        made, note = item
        place = positions[note.uid][note.event] if note.placed else 0
        return note.kind, place, made

    ordered = sorted(enumerate(notes), key=key)
    return tuple(dict.fromkeys(note.text for _, note in ordered))
