"""A re-sync that parses only the series that changed ends exactly where a full sync ends.

The property test edits a small calendar at random over a few syncs (events added, moved,
cancelled, deleted, excluded, re-ruled, re-zoned; a VTIMEZONE redefined; instances moved or
cancelled by RECURRENCE-ID overrides; contacts made for the numbers written in events; time
moving on, past midnight too) and after each sync compares three databases: the one synced
incrementally, a twin given the same history but made to read the whole feed every time, and
a fresh one given only the current text. 20 examples take about 9 s; RESYNC_EXAMPLES=400
runs more (400 passed in about 3 minutes, 661 of the syncs reading only some series).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reminders.db import make_engine
from reminders.migrate import upgrade
from reminders.models import Anchor, AnchorRecipient, Contact, Notice, Source
from reminders.schemas.sources import SourceCreate
from reminders.settings import Settings, load_settings
from reminders.sources.feeds import create_source
from reminders.sources.fetch import FetchResult
from reminders.sources.sync import SyncReport, sync_source
from tests.conftest import account_session

START = datetime(2027, 3, 20, 7, 0, tzinfo=UTC)  # a week before Europe's spring DST change
ZONES = ["Europe/Sofia", "America/New_York", "Clinic Time", "UTC", "floating", "Atlantis/Nowhere"]
PHONES = ["0888 900 001", "0888 900 002", "0888 900 003", "0888 900 004"]
RULES = [None, "FREQ=WEEKLY;COUNT=4", "FREQ=DAILY;COUNT=6", "FREQ=WEEKLY;INTERVAL=2;COUNT=3"]


@dataclass(frozen=True)
class Series:
    """One UID of the model calendar: a master event and its overrides."""

    uid: str
    day: int  # days after START's date
    hour: int
    zone: str
    summary: str
    phone: int  # index into PHONES
    all_day: bool = False
    rule: str | None = None
    exdates: frozenset[int] = frozenset()  # instance numbers excluded
    overrides: tuple[tuple[int, int, bool], ...] = ()  # (instance, hours moved, cancelled)
    cancelled: bool = False
    alarm: bool = False

    def instance(self, number: int) -> datetime:
        """The wall-clock start of instance `number` (0 is DTSTART)."""
        step = timedelta(days=1) if self.rule and "DAILY" in self.rule else timedelta(weeks=1)
        if self.rule and "INTERVAL=2" in self.rule:
            step *= 2
        base = datetime(START.year, START.month, START.day, self.hour) + timedelta(days=self.day)
        return base + step * number


@dataclass
class Calendar:
    """The model calendar and how its next export is written."""

    series: dict[str, Series] = field(default_factory=dict)
    clinic_offset: str = "+0200"
    x_wr_timezone: str | None = None
    crlf: bool = True
    fold: bool = False
    order: list[int] = field(default_factory=list)  # a permutation of the components
    zones_last: bool = False  # VTIMEZONE after the events that use it
    stamp: int = 0

    def export(self) -> bytes:
        components = [c for s in self.series.values() for c in _components(s, self.stamp)]
        if self.order:
            ranked = sorted(range(len(components)), key=lambda i: self.order[i % len(self.order)])
            components = [components[i] for i in ranked]
        head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//resync//EN"]
        if self.x_wr_timezone:
            head.append(f"X-WR-TIMEZONE:{self.x_wr_timezone}")
        zone = _vtimezone(self.clinic_offset)
        body = [*components, zone] if self.zones_last else [zone, *components]
        lines = [*head, *(line for block in body for line in block), "END:VCALENDAR"]
        if self.fold:
            lines = [folded for line in lines for folded in _fold(line)]
        end = "\r\n" if self.crlf else "\n"
        return (end.join(lines) + end).encode()


def _fold(line: str) -> list[str]:
    if len(line) <= 40:
        return [line]
    return [line[:40], *(" " + line[i : i + 30] for i in range(40, len(line), 30))]


def _vtimezone(offset: str) -> list[str]:
    return [
        "BEGIN:VTIMEZONE",
        "TZID:Clinic Time",
        "BEGIN:STANDARD",
        "DTSTART:16010101T000000",
        f"TZOFFSETFROM:{offset}",
        f"TZOFFSETTO:{offset}",
        "END:STANDARD",
        "END:VTIMEZONE",
    ]


def _when(series: Series, name: str, at: datetime) -> str:
    if series.all_day:
        return f"{name};VALUE=DATE:{at:%Y%m%d}"
    if series.zone == "UTC":
        return f"{name}:{at:%Y%m%dT%H%M%S}Z"
    if series.zone == "floating":
        return f"{name}:{at:%Y%m%dT%H%M%S}"
    return f"{name};TZID={series.zone}:{at:%Y%m%dT%H%M%S}"


def _components(series: Series, stamp: int) -> Iterator[list[str]]:
    start = series.instance(0)
    lines = [
        "BEGIN:VEVENT",
        f"UID:{series.uid}",
        f"DTSTAMP:202701{stamp % 28 + 1:02d}T000000Z",
        _when(series, "DTSTART", start),
        "DURATION:P1D" if series.all_day else "DURATION:PT30M",
        f"SUMMARY:{series.summary}",
        f"DESCRIPTION:Пациент на клиниката\\, телефон за връзка {PHONES[series.phone]}",
    ]
    if series.rule:
        lines.append(f"RRULE:{series.rule}")
        lines += [_when(series, "EXDATE", series.instance(n)) for n in sorted(series.exdates)]
    if series.cancelled:
        lines.append("STATUS:CANCELLED")
    if series.alarm:
        # A VALARM may carry its own UID (RFC 9074): it is not the event's.
        lines += ["BEGIN:VALARM", f"UID:alarm-{series.uid}", "ACTION:DISPLAY"]
        lines += ["DESCRIPTION:x", "TRIGGER:-PT30M", "END:VALARM"]
    yield [*lines, "END:VEVENT"]
    for number, hours, cancelled in series.overrides if series.rule else ():
        original = series.instance(number)
        override = [
            "BEGIN:VEVENT",
            f"UID:{series.uid}",
            f"DTSTAMP:202701{stamp % 28 + 1:02d}T000000Z",
            _when(series, "RECURRENCE-ID", original),
            _when(series, "DTSTART", original + timedelta(hours=hours)),
            "DURATION:P1D" if series.all_day else "DURATION:PT30M",
            f"SUMMARY:{series.summary} (преместен)",
        ]
        if cancelled:
            override.append("STATUS:CANCELLED")
        yield [*override, "END:VEVENT"]


# --- edits -------------------------------------------------------------------------------


def series_strategy(uid: str) -> st.SearchStrategy[Series]:
    return st.builds(
        Series,
        uid=st.just(uid),
        day=st.integers(-3, 38),
        hour=st.integers(6, 20),
        zone=st.sampled_from(ZONES),
        summary=st.sampled_from(["Преглед", "Контролен преглед", "Рехабилитация"]),
        phone=st.integers(0, len(PHONES) - 1),
        all_day=st.booleans(),
        rule=st.sampled_from(RULES),
        alarm=st.booleans(),
    )


Edit = Callable[[Calendar, st.DataObject], None]


def _pick(calendar: Calendar, data: st.DataObject, recurring: bool = False) -> Series | None:
    choices = [s for s in calendar.series.values() if s.rule or not recurring]
    return data.draw(st.sampled_from(choices)) if choices else None


def add(calendar: Calendar, data: st.DataObject) -> None:
    uid = f"e{len(calendar.series) + data.draw(st.integers(0, 1000))}@clinic"
    calendar.series[uid] = data.draw(series_strategy(uid))


def change(calendar: Calendar, data: st.DataObject, **fields: st.SearchStrategy[Any]) -> None:
    series = _pick(calendar, data)
    if series is not None:
        values = {name: data.draw(strategy) for name, strategy in fields.items()}
        calendar.series[series.uid] = replace(series, **values)


def delete(calendar: Calendar, data: st.DataObject) -> None:
    series = _pick(calendar, data)
    if series is not None:
        del calendar.series[series.uid]


def exclude(calendar: Calendar, data: st.DataObject) -> None:
    series = _pick(calendar, data, recurring=True)
    if series is not None:
        number = data.draw(st.integers(0, 3))
        calendar.series[series.uid] = replace(series, exdates=series.exdates | {number})


def override(calendar: Calendar, data: st.DataObject) -> None:
    series = _pick(calendar, data, recurring=True)
    if series is not None:
        new = (
            data.draw(st.integers(0, 2)),
            data.draw(st.integers(-30, 30)),
            data.draw(st.booleans()),
        )
        kept = tuple(o for o in series.overrides if o[0] != new[0])
        calendar.series[series.uid] = replace(series, overrides=(*kept, new))


def rezone_clinic(calendar: Calendar, data: st.DataObject) -> None:
    calendar.clinic_offset = data.draw(st.sampled_from(["+0200", "+0300", "+0530", "-0500"]))


def calendar_zone(calendar: Calendar, data: st.DataObject) -> None:
    calendar.x_wr_timezone = data.draw(st.sampled_from([None, "Europe/Sofia", "Europe/London"]))


EDITS: list[Edit] = [
    add,
    add,
    delete,
    exclude,
    override,
    rezone_clinic,
    calendar_zone,
    lambda c, d: change(c, d, day=st.integers(-3, 38), hour=st.integers(6, 20)),  # moved
    lambda c, d: change(c, d, cancelled=st.booleans()),
    lambda c, d: change(c, d, rule=st.sampled_from(RULES)),
    lambda c, d: change(c, d, zone=st.sampled_from(ZONES)),
    lambda c, d: change(c, d, summary=st.sampled_from(["Преглед", "Зъболекар"])),
    lambda c, d: change(c, d, phone=st.integers(0, len(PHONES) - 1)),
]


# --- databases -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite database, copied for every database an example needs."""
    path = tmp_path_factory.mktemp("resync") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


class Db:
    """One database with one feed source, synced at times we choose."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        with account_session(engine) as session:
            made = create_source(
                session,
                SourceCreate(name="Clinic", url="http://127.0.0.1/clinic.ics"),
                default_zone="Europe/Sofia",
                allow_private=True,
            )
            session.commit()
            assert made.id is not None
            self.source_id = made.id

    def sync(self, body: bytes, now: datetime, *, full: bool = False) -> SyncReport:
        def fetcher(url: str, **_: Any) -> FetchResult:
            return FetchResult(False, body, None, None, url)

        with Session(self.engine) as session:
            if full:  # what the source's series were read under is forgotten: read it all
                session.execute(text("UPDATE sources SET series_basis = NULL"))
                session.commit()
            return sync_source(
                session, None, self.source_id, settings=self.settings, now=now, fetcher=fetcher
            )

    def add_contact(self, name: str, phone: str) -> None:
        with account_session(self.engine) as session:
            session.add(Contact(name=name, name_folded=name.casefold(), phone=phone))
            session.commit()


def _copy(template: Path, directory: Path, name: str) -> Engine:
    path = directory / f"{name}.db"
    shutil.copy(template, path)
    return make_engine(f"sqlite:///{path}")


def snapshot(db: Db, now: datetime, *, ahead_only: bool) -> dict[str, Any]:
    """The source's events and notices as the API shows them, without ids and timestamps.

    Contacts are named rather than numbered. `ahead_only`: only live events from `now` on
    and notices still to go, which is all a fresh database can know of.
    """
    tables = [Source, Contact, Anchor, AnchorRecipient, Notice]
    with db.engine.connect() as conn:
        source, contacts, anchors, recipients, notices = (
            conn.execute(select(table.__table__)).all()  # type: ignore[attr-defined]
            for table in tables
        )
    names = {c.id: c.name for c in contacts}
    keys: dict[int, str] = {}
    events: dict[str, Any] = {}
    for a in anchors:
        if ahead_only and (a.cancelled or a.at < now):
            continue
        keys[a.id] = a.key
        data = {k: v for k, v in a.data.items() if not ahead_only or k != "fingerprint"}
        # A timed event's zone (used by nothing) is only written when the event changes, so
        # one kept from before an X-WR-TIMEZONE change keeps the old one, full sync or not.
        zone = a.timezone if a.all_day or not ahead_only else None
        events[a.key] = [a.title, a.at, a.all_day, zone, a.policy, data, a.cancelled]
    whom = sorted(
        (keys[r.anchor_id], r.phone, names.get(r.contact_id))
        for r in recipients
        if r.anchor_id in keys
    )
    # A notice planned before its number became a contact's keeps no contact (the planner
    # leaves an otherwise unchanged notice alone), so a fresh database differs there.
    sent = sorted(
        (keys[n.anchor_id], n.step, n.phone, None if ahead_only else names.get(n.contact_id))
        + (n.status, n.status_reason, n.send_at, n.kind, n.text)
        for n in notices
        if n.anchor_id in keys and not (ahead_only and (n.send_at < now or n.status != "scheduled"))
    )
    [feed] = source
    return {
        "source": (feed.event_count, feed.warnings, feed.refresh_hint_seconds),
        "events": events,
        "recipients": whom,
        "notices": sent,
    }


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal snapshots, or an error showing only what differs."""
    for name in want:
        mine, theirs = got[name], want[name]
        if isinstance(mine, dict):
            mine, theirs = sorted(mine.items()), sorted(theirs.items())
        if isinstance(mine, list) and mine != theirs:
            extra = [item for item in mine if item not in theirs]
            missing = [item for item in theirs if item not in mine]
            raise AssertionError(f"{name}: only incremental {extra}; only full {missing}")
        assert mine == theirs, name


def report_of(report: SyncReport) -> dict[str, Any]:
    return {**report.__dict__}


@pytest.mark.slow  # 20 random histories of syncs: about 10 s
@examples(
    max_examples=int(os.environ.get("RESYNC_EXAMPLES", "20")),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no slow explain
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_incremental_resync_equals_a_full_one(
    data: st.DataObject, template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("example")
    config = load_settings(database_url=f"sqlite:///{template}", quiet_hours="off")
    incremental = Db(_copy(template, directory, "incremental"), config)
    twin = Db(_copy(template, directory, "twin"), config)
    calendar = Calendar()
    for _ in range(data.draw(st.integers(2, 6), label="series")):
        add(calendar, data)
    now = START
    contacts: list[tuple[str, str]] = []
    try:
        for step in range(data.draw(st.integers(2, 4), label="syncs")):
            if step:
                for edit in data.draw(st.lists(st.sampled_from(EDITS), min_size=1, max_size=3)):
                    edit(calendar, data)
                now += timedelta(hours=data.draw(st.sampled_from([0, 0, 1, 2, 5, 20])))
                if data.draw(st.booleans(), label="a contact for a written number"):
                    contact = (
                        f"Пациент {len(contacts)}",
                        "+359" + PHONES[len(contacts) % 4][1:].replace(" ", ""),
                    )
                    contacts.append(contact)
                    incremental.add_contact(*contact)
                    twin.add_contact(*contact)
            calendar.crlf, calendar.fold = data.draw(st.booleans()), data.draw(st.booleans())
            calendar.zones_last = data.draw(st.booleans())
            calendar.order = data.draw(st.permutations(range(8)))
            calendar.stamp += 1
            body = calendar.export()

            got = incremental.sync(body, now)
            want = twin.sync(body, now, full=True)
            assert got.status in ("synced", "unchanged"), got
            assert report_of(got) == report_of(want)
            assert_same(
                snapshot(incremental, now, ahead_only=False), snapshot(twin, now, ahead_only=False)
            )

            if got.status == "unchanged":
                # Only DTSTAMPs changed: nothing is read, not even whom a number now belongs to
                # (as before), until the feed changes or the next day's sync.
                continue
            fresh = Db(_copy(template, directory, f"fresh{step}"), config)
            for contact in contacts:
                fresh.add_contact(*contact)
            fresh.sync(body, now)
            assert_same(
                snapshot(incremental, now, ahead_only=True), snapshot(fresh, now, ahead_only=True)
            )
            fresh.engine.dispose()
    finally:
        incremental.engine.dispose()
        twin.engine.dispose()


# --- examples, on SQLite and PostgreSQL ------------------------------------------------------


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The UIDs each parse of a sync read, one set per parse."""
    from reminders.sources import sync as sync_module

    seen: list[set[str]] = []
    real = sync_module.parse_feed

    def spy(*args: Any, **kwargs: Any) -> Any:
        feed = real(*args, **kwargs)
        seen.append(set(feed.events))
        return feed

    monkeypatch.setattr(sync_module, "parse_feed", spy)
    return seen


def clinic(size: int = 12) -> Calendar:
    calendar = Calendar()
    for n in range(size):
        uid = f"e{n}@clinic"
        calendar.series[uid] = Series(
            uid=uid,
            day=1 + n % 9,
            hour=8 + n % 8,
            zone="Clinic Time" if n % 4 == 0 else "Europe/Sofia",
            summary="Преглед",
            phone=n % len(PHONES),
            rule="FREQ=WEEKLY;COUNT=4" if n % 3 == 0 else None,
            overrides=((1, 2, False),) if n % 6 == 0 else (),
        )
    return calendar


def test_a_resync_parses_only_what_changed(
    engine: Engine, settings: Settings, parsed: list[set[str]]
) -> None:
    db, calendar = Db(engine, settings), clinic()
    assert db.sync(calendar.export(), START).created == 4 * 4 + 8 + 0
    assert parsed.pop() == set(calendar.series)

    # One appointment renamed, in an export with new DTSTAMPs, folded, with LF line ends.
    calendar.series["e1@clinic"] = replace(calendar.series["e1@clinic"], summary="Зъболекар")
    calendar.stamp, calendar.fold, calendar.crlf = 2, True, False
    renamed = db.sync(calendar.export(), START + timedelta(hours=1))
    assert parsed == [{"e1@clinic"}]
    assert (renamed.moved, renamed.created, renamed.cancelled) == (1, 0, 0), renamed
    assert renamed.unchanged == 4 * 4 + 8 - 1
    assert renamed.notices["moved"] == 0 and renamed.notices["unchanged"] == 2

    # The VTIMEZONE changes: the series whose TZID names it are read again, and move.
    calendar.clinic_offset = "+0300"
    rezoned = db.sync(calendar.export(), START + timedelta(hours=2))
    assert parsed[-1] == {f"e{n}@clinic" for n in (0, 4, 8)}
    # (A series' instances are keyed by their original start in UTC: e0's are new ones.)
    assert (rezoned.moved, rezoned.created, rezoned.cancelled) == (2, 4, 4), rezoned
    assert rezoned.unchanged == 4 * 4 + 8 - 2 - 4

    # A calendar property changes how every time is read: the whole feed.
    calendar.x_wr_timezone = "Europe/London"
    db.sync(calendar.export(), START + timedelta(hours=3))
    assert parsed[-1] == set(calendar.series)


def test_the_first_sync_of_a_day_reads_all_and_finds_what_came_into_the_window(
    engine: Engine, settings: Settings, parsed: list[set[str]]
) -> None:
    """An unchanged series still gets the occurrences its window reaches as days go by."""
    db, calendar = Db(engine, settings), Calendar()
    calendar.series["daily@clinic"] = Series(
        "daily@clinic",
        day=0,
        hour=10,
        zone="Europe/Sofia",
        summary="Процедура",
        phone=0,
        rule="FREQ=DAILY;COUNT=60",
    )
    calendar.series["once@clinic"] = Series(
        "once@clinic", day=3, hour=9, zone="Europe/Sofia", summary="Преглед", phone=1
    )
    first = db.sync(calendar.export(), START)
    window = first.created - 1
    assert window >= 35

    # Later the same day another event moves: only it is read.
    calendar.series["once@clinic"] = replace(calendar.series["once@clinic"], day=4)
    calendar.stamp += 1
    later = START.replace(hour=20)
    assert db.sync(calendar.export(), later).moved == 1
    assert parsed[-1] == {"once@clinic"}

    # The next day the feed is the same but the window reaches a day further.
    calendar.stamp += 1
    next_day = START + timedelta(days=1)
    grown = db.sync(calendar.export(), next_day)
    assert parsed[-1] == set(calendar.series)
    assert grown.created == 1 and grown.cancelled == 0, grown
    with engine.connect() as conn:
        live = conn.execute(
            text("SELECT count(*) FROM anchors WHERE cancelled = false AND at >= :now"),
            {"now": next_day.replace(tzinfo=None)},
        ).scalar()
    assert live == window + 1


def test_a_contact_for_a_written_number_is_found_without_reading_all(
    engine: Engine, settings: Settings, parsed: list[set[str]]
) -> None:
    db, calendar = Db(engine, settings), clinic(8)
    db.sync(calendar.export(), START)
    db.add_contact("Мария", "+359888900003")  # written in e2@clinic and e6@clinic
    calendar.series["e1@clinic"] = replace(calendar.series["e1@clinic"], hour=17)
    calendar.stamp += 1
    report = db.sync(calendar.export(), START + timedelta(minutes=15))
    assert parsed[-1] == {"e1@clinic", "e2@clinic", "e6@clinic"}
    with engine.connect() as conn:
        reminded = conn.execute(
            text(
                "SELECT a.key FROM anchors a JOIN anchor_recipients r ON r.anchor_id = a.id "
                "JOIN contacts c ON c.id = r.contact_id WHERE c.name = 'Мария'"
            )
        ).scalars()
        uids = [key.split(":", 2)[2].split("|")[0] for key in reminded]
    assert set(uids) == {"e2@clinic", "e6@clinic"}
    assert report.moved == 1 + len(uids), report  # e1 moved; e2 and e6 now remind Мария


def test_an_event_the_calendar_dropped_is_not_held_by_a_cancel_through_the_api(
    engine: Engine, settings: Settings
) -> None:
    from reminders.events import cancel_event

    db, calendar = Db(engine, settings), clinic(2)
    db.sync(calendar.export(), START)
    dropped = calendar.series.pop("e1@clinic")
    assert db.sync(calendar.export(), START).cancelled == 1
    with account_session(engine) as session:
        anchor_id = session.execute(
            select(col(Anchor.id)).where(col(Anchor.key).like("%:e1@clinic|%"))
        ).scalar_one()
        assert anchor_id is not None
        anchor, _ = cancel_event(session, None, anchor_id)
        session.commit()
        assert "cancelled_through_api_at" not in anchor.data
    calendar.series[dropped.uid] = dropped
    assert db.sync(calendar.export(), START).restored == 1


@pytest.mark.slow  # two syncs of 500 occurrences each, in two databases: seconds
def test_a_capped_series_is_read_at_every_sync(
    engine: Engine, settings: Settings, parsed: list[set[str]], tmp_path: Path
) -> None:
    """Which 500 occurrences a capped series keeps moves with the window's start."""
    twin_engine = make_engine(f"sqlite:///{tmp_path / 'twin.db'}")
    upgrade(twin_engine)
    db, twin, calendar = Db(engine, settings), Db(twin_engine, settings), clinic(2)
    calendar.series["hourly@clinic"] = Series(
        "hourly@clinic",
        day=0,
        hour=8,
        zone="UTC",
        summary="Дежурство",
        phone=3,
        rule="FREQ=HOURLY;COUNT=900",
    )
    for step, now in enumerate([START, START + timedelta(hours=5)]):
        calendar.series["e1@clinic"] = replace(calendar.series["e1@clinic"], hour=9 + step)
        calendar.stamp += 1
        got, want = db.sync(calendar.export(), now), twin.sync(calendar.export(), now, full=True)
        assert report_of(got) == report_of(want)
        assert 'series "Дежурство" capped at 500 occurrences' in got.warnings
        assert_same(snapshot(db, now, ahead_only=False), snapshot(twin, now, ahead_only=False))
    assert parsed[-2] == {"e1@clinic", "hourly@clinic"}  # not e0@clinic
    twin_engine.dispose()


def test_a_feed_with_an_event_without_uid_is_read_whole(
    engine: Engine, settings: Settings, parsed: list[set[str]]
) -> None:
    db, calendar = Db(engine, settings), clinic(3)
    orphan = "BEGIN:VEVENT\r\nDTSTART:20270325T100000Z\r\nSUMMARY:Без UID\r\nEND:VEVENT\r\n"
    for hour in (10, 11):
        calendar.series["e1@clinic"] = replace(calendar.series["e1@clinic"], hour=hour)
        body = calendar.export().replace(b"END:VCALENDAR", orphan.encode() + b"END:VCALENDAR")
        assert db.sync(body, START).status == "synced"
        assert parsed[-1] == set(calendar.series) | {""}
