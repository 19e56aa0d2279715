"""Which series of a feed a sync reads, and what it keeps of each one for the next sync.

A clinic's feed of thousands of events changes by a handful between two syncs. `split_feed`
cuts the text into series (the VEVENTs of one UID) without parsing it, and a series is read
again only when:

* its text (without DTSTAMP) or a VTIMEZONE its TZIDs name changed, or it is new or gone;
* a phone or email written in it now belongs to another contact, or to none;
* it is volatile: capped, broken while expanding, or a rule that may become too dense to
  expand. What those give depends on where the window starts, not only on their text.

Everything else a series' diff depends on is the source's basis: the calendar's own properties
(X-WR-TIMEZONE...), the source's zone, policy, alarms and recipients, the region phones are
read in, and the window's end, which moves once a day (`window_end`). When the basis changed,
the whole feed is read; so it is when `split_feed` is unsure of the feed, when the last read was
capped, and when the last sync stopped half-way. A series that is not read would give a full
read nothing to do: the same occurrences, recipients and fingerprints, and every live anchor of
it still in the feed. So the result is the one a full read gives, which a property test checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlmodel import Session

from reminders.db import in_chunks
from reminders.models import FeedSeries, Source
from reminders.sources.ical import MAX_TOTAL, Occurrence, ParsedFeed
from reminders.sources.ical_notes import FEED, Note, in_order
from reminders.sources.ical_split import FeedParts, split_feed
from reminders.sources.recipients import Known, Written

# Part of every basis: a new way of reading series makes the next sync read whole feeds.
_FORMAT = 1


def window_end(now: datetime, horizon: timedelta) -> datetime:
    """The end of the window a sync expands: `now + horizon`, up to the next UTC midnight.

    It moves once a day, so that a series read yesterday at noon and one read now cover the
    same days; the first sync of a day reads the whole feed.
    """
    end = (now + horizon).astimezone(UTC)
    midnight = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == end else midnight + timedelta(days=1)


@dataclass(frozen=True)
class Kept:
    """A series as the last sync read it (one `FeedSeries` row, but its occurrence keys)."""

    digest: str
    volatile: bool
    starts: str  # of its occurrences in the window, Unix seconds, one a line
    written: Written  # the phones and emails written in them
    who: str  # whom those were found to be (`who`)
    notes: list[Note]

    def in_window(self, since: float) -> int:
        """How many of its occurrences a read now would find (the window's end is the same)."""
        return sum(1 for start in self.starts.split() if int(start) >= since)


@dataclass(frozen=True)
class Scope:
    """What one sync reads: the whole feed, or the series in `read` (see the docstring)."""

    text: str  # the text to parse
    whole: str  # the feed's whole text
    parts: FeedParts | None
    basis: str | None  # None: what this sync reads is not kept for the next
    read: frozenset[str] | None  # the series parsed; None: all of them
    kept: dict[str, Kept] = field(default_factory=dict)  # the series not read, as before
    gone: frozenset[str] = frozenset()  # the series no longer in the feed
    old_keys: tuple[str, ...] = ()  # the occurrence keys the series read or gone had before
    kept_in_window: int = 0  # the occurrences of the series not read, from now on

    @property
    def full(self) -> bool:
        return self.read is None

    def as_full(self) -> Scope:
        """The whole feed, its series kept for the next sync only if it is read as expected."""
        return Scope(self.whole, self.whole, self.parts, self.basis, None)

    def fits(self, feed: ParsedFeed) -> bool:
        """Whether reading only some series gave what a full read would have.

        The series the parse found must be the ones asked for (the split grouped them as the
        parse does), and the feed must stay under its cap, which keeps the earliest of all.
        """
        if self.read is None:
            return True
        if set(feed.events) != self.read or any(note.kind == FEED for note in feed.notes):
            return False
        return len(feed.occurrences) + self.kept_in_window <= MAX_TOTAL

    def warnings(self, feed: ParsedFeed) -> tuple[str, ...]:
        """The feed's warnings: the parse's, with those of the series not read."""
        if self.read is None or self.parts is None:
            return feed.warnings
        kept = (note for series in self.kept.values() for note in series.notes)
        positions = {uid: series.events for uid, series in self.parts.series.items()}
        return in_order([*feed.notes, *kept], positions)


def choose_scope(
    session: Session,
    source: Source,
    text: str,
    defaults: Sequence[tuple[str, int | None]],
    *,
    region: str,
    now: datetime,
    until: datetime,
) -> Scope:
    """What the sync of `source` at `now` reads of the feed `text`."""
    parts = split_feed(text)
    basis = None if parts is None else _basis(parts, source, defaults, region, until)
    whole = Scope(text, text, parts, basis, None)
    if parts is None or source.expanded_until is None or basis != source.series_basis:
        return whole
    assert source.id is not None
    before = _load(session, source.id)
    known = Known.load(session, [kept.written for kept in before.values()])
    read = frozenset(
        uid
        for uid, series in parts.series.items()
        if (last := before.get(uid)) is None
        or last.volatile
        or last.digest != series.digest
        or last.who != who(last.written, known)
    )
    gone = frozenset(before.keys() - parts.series.keys())
    kept = {uid: before[uid] for uid in parts.series if uid not in read}
    since = now.timestamp()
    return Scope(
        text=parts.text_of(read),
        whole=text,
        parts=parts,
        basis=basis,
        read=read,
        kept=kept,
        gone=gone,
        old_keys=_keys(session, source.id, sorted((read | gone) & before.keys())),
        kept_in_window=sum(series.in_window(since) for series in kept.values()),
    )


def record(
    session: Session,
    source: Source,
    scope: Scope,
    feed: ParsedFeed,
    written: Sequence[Written],
    known: Known,
) -> None:
    """Keep what this sync read of each series for the next one; flushed, not committed."""
    assert source.id is not None
    table = FeedSeries.__table__  # type: ignore[attr-defined]
    parts = scope.parts
    trusted = (
        parts is not None
        and scope.basis is not None
        and not any(note.kind == FEED for note in feed.notes)
        and (scope.read is not None or set(feed.events) == parts.series.keys())
    )
    mine = table.c.source_id == source.id
    if scope.read is None or not trusted:
        session.execute(delete(table).where(mine))
    else:
        for chunk in in_chunks(sorted(scope.read | scope.gone)):
            session.execute(delete(table).where(mine, table.c.uid.in_(chunk)))
    source.series_basis = scope.basis if trusted else None
    if not trusted or parts is None:
        return
    uids = parts.series.keys() if scope.read is None else scope.read
    rows = _rows(source.id, uids, parts, feed, written, known)
    if rows:
        session.execute(insert(table), rows)


def who(written: Written, known: Known) -> str:
    """Whom the phones and emails written in a series are: their contacts' ids, a line each."""
    lines = [f"{phone} {known.by_phone.get(phone)}" for phone in written.phones]
    lines += [f"{email} {sorted(known.by_email.get(email, []))}" for email in written.emails]
    return "\n".join(lines)


def _rows(
    source_id: int,
    uids: Iterable[str],
    parts: FeedParts,
    feed: ParsedFeed,
    written: Sequence[Written],
    known: Known,
) -> list[dict[str, Any]]:
    found: dict[str, list[Occurrence]] = {}
    names: dict[str, tuple[set[str], set[str]]] = {}
    for occurrence, names_in in zip(feed.occurrences, written, strict=True):
        found.setdefault(occurrence.uid, []).append(occurrence)
        phones, emails = names.setdefault(occurrence.uid, (set(), set()))
        phones.update(names_in.phones)
        emails.update(names_in.emails)
    notes: dict[str, list[list[Any]]] = {}
    for note in feed.notes:
        if note.placed:
            notes.setdefault(note.uid, []).append([note.text, note.kind, note.event])
    rows = []
    for uid in uids:
        phones, emails = names.get(uid, (set(), set()))
        series_written = Written(sorted(phones), sorted(emails))
        occurrences = found.get(uid, [])
        rows.append(
            {
                "source_id": source_id,
                "uid": uid,
                "digest": parts.series[uid].digest,
                "volatile": uid in feed.volatile,
                "starts": "\n".join(str(int(o.start.timestamp())) for o in occurrences),
                "keys": "\n".join(o.key for o in occurrences),
                "phones": "\n".join(series_written.phones),
                "emails": "\n".join(series_written.emails),
                "who": who(series_written, known),
                "notes": notes.get(uid, []),
            }
        )
    return rows


def _load(session: Session, source_id: int) -> dict[str, Kept]:
    """The source's series as the last sync read them, but their occurrence keys."""
    t = FeedSeries.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(t.c.uid, t.c.digest, t.c.volatile, t.c.starts, t.c.phones, t.c.emails)
        .add_columns(t.c.who, t.c.notes)
        .where(t.c.source_id == source_id)
    )
    return {
        uid: Kept(
            digest=digest,
            volatile=volatile,
            starts=starts,
            written=Written(_lines(phones), _lines(emails)),
            who=found,
            notes=[Note(text, kind, uid, event) for text, kind, event in notes],
        )
        for uid, digest, volatile, starts, phones, emails, found, notes in rows
    }


def _keys(session: Session, source_id: int, uids: Sequence[str]) -> tuple[str, ...]:
    """The occurrence keys these series of the source had at the last sync."""
    t = FeedSeries.__table__  # type: ignore[attr-defined]
    found: list[str] = []
    for chunk in in_chunks(uids):
        query = select(t.c["keys"]).where(t.c.source_id == source_id, t.c.uid.in_(chunk))
        for (keys,) in session.execute(query):
            found.extend(_lines(keys))
    return tuple(found)


def _basis(
    parts: FeedParts,
    source: Source,
    defaults: Sequence[tuple[str, int | None]],
    region: str,
    until: datetime,
) -> str:
    """Digest of what every series' reading and diff depends on besides its own text."""
    return _sha256(
        [
            _FORMAT,
            parts.calendar,
            source.timezone,
            source.policy,
            source.use_alarms,
            sorted([phone, contact_id or 0] for phone, contact_id in defaults),
            region,
            until.isoformat(),
        ]
    )


def _lines(text: str) -> list[str]:
    return text.split("\n") if text else []


def _sha256(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
