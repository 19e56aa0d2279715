"""Reading dates: real phrases in Bulgarian and English at a fixed `now`, never the clock."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reminders.dates import DateParseError, parse_date, parse_datetime

SOFIA = ZoneInfo("Europe/Sofia")
NEW_YORK = ZoneInfo("America/New_York")
# A Wednesday: "петък" is 2026-11-27, "следващия петък" 2026-12-04.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=SOFIA)
EET = timedelta(hours=2)


def assert_exact(result: datetime, wall: datetime, offset: timedelta) -> None:
    """Same wall clock and same offset: aware equality alone would accept any zone."""
    assert result.replace(tzinfo=None) == wall
    assert result.utcoffset() == offset


def refused(message: str) -> AbstractContextManager[Any]:
    """pytest.raises for exactly this user-facing sentence."""
    return pytest.raises(DateParseError, match=f"^{re.escape(message)}$")


UNREADABLE = "could not read '{}' as a date; use e.g. 2026-12-15 10:30 or 'утре 10:00'"


@pytest.mark.parametrize(
    ("text", "wall"),
    [
        ("утре 10:00", datetime(2026, 11, 26, 10, 0)),
        ("утре в 10:00", datetime(2026, 11, 26, 10, 0)),
        # The Bulgarian clock is 24-hour: "в 10" and "10 ч." are 10:00, never 22:00.
        ("утре в 10", datetime(2026, 11, 26, 10, 0)),
        ("утре 10 ч.", datetime(2026, 11, 26, 10, 0)),
        ("утре в 10 ч.", datetime(2026, 11, 26, 10, 0)),
        ("утре 10 часа", datetime(2026, 11, 26, 10, 0)),
        ("УТРЕ В 10 Ч.", datetime(2026, 11, 26, 10, 0)),
        ("утре в 10:00.", datetime(2026, 11, 26, 10, 0)),
        ("10:00 утре", datetime(2026, 11, 26, 10, 0)),
        ("вдругиден 11:00", datetime(2026, 11, 27, 11, 0)),
        ("петък 9:00", datetime(2026, 11, 27, 9, 0)),
        ("в петък 9:00", datetime(2026, 11, 27, 9, 0)),
        ("във вторник 9:00", datetime(2026, 12, 1, 9, 0)),
        # "Next <weekday>" is that weekday in next week (weeks start on Monday).
        ("следващия петък 9:00", datetime(2026, 12, 4, 9, 0)),
        ("next Friday 9am", datetime(2026, 12, 4, 9, 0)),
        ("следващата сряда в 10 ч.", datetime(2026, 12, 2, 10, 0)),
        ("следващия понеделник 9:00", datetime(2026, 11, 30, 9, 0)),
        ("next Monday 9:00", datetime(2026, 11, 30, 9, 0)),
        ("15 декември 2026 10:30", datetime(2026, 12, 15, 10, 30)),
        # "в" before a day of the month is not an hour.
        ("в 10 декември 2026 10:30", datetime(2026, 12, 10, 10, 30)),
        ("15.12.2026 10:30", datetime(2026, 12, 15, 10, 30)),
        ("02/03/2027 10:00", datetime(2027, 3, 2, 10, 0)),
        ("tomorrow 10:00", datetime(2026, 11, 26, 10, 0)),
        ("след 2 часа", datetime(2026, 11, 25, 14, 0)),
        ("утре 10:00:30", datetime(2026, 11, 26, 10, 0)),
        ("2026-12-15T10:30", datetime(2026, 12, 15, 10, 30)),
        ("2026-12-15 10:30", datetime(2026, 12, 15, 10, 30)),
        ("  2026-12-15 10:30  ", datetime(2026, 12, 15, 10, 30)),
    ],
)
def test_phrases_in_sofia_winter(text: str, wall: datetime) -> None:
    assert_exact(parse_datetime(text, zone=SOFIA, now=NOW), wall, EET)


def test_summer_time_gets_the_summer_offset() -> None:
    result = parse_datetime("15.06.2027 10:00", zone=SOFIA, now=NOW)
    assert_exact(result, datetime(2027, 6, 15, 10, 0), timedelta(hours=3))


def test_iso_keeps_seconds_natural_language_drops_them() -> None:
    iso = parse_datetime("2026-12-15T10:30:15", zone=SOFIA, now=NOW)
    assert_exact(iso, datetime(2026, 12, 15, 10, 30, 15), EET)
    late_now = datetime(2026, 11, 25, 12, 0, 37, 500_000, tzinfo=SOFIA)
    relative = parse_datetime("след 2 часа", zone=SOFIA, now=late_now)
    assert_exact(relative, datetime(2026, 11, 25, 14, 0), EET)


@pytest.mark.parametrize(
    ("text", "wall", "offset"),
    [
        ("2026-12-15T10:30:00+02:00", datetime(2026, 12, 15, 10, 30), EET),
        ("2026-12-15T10:30:00+05:00", datetime(2026, 12, 15, 10, 30), timedelta(hours=5)),
        ("2026-12-15T10:30:00Z", datetime(2026, 12, 15, 10, 30), timedelta(0)),
        ("2026-12-15t10:30z", datetime(2026, 12, 15, 10, 30), timedelta(0)),
        ("15.12.2026 10:30 UTC", datetime(2026, 12, 15, 10, 30), timedelta(0)),
        ("15.12.2026 10:30 +05:00", datetime(2026, 12, 15, 10, 30), timedelta(hours=5)),
        ("tomorrow 10:00 +05:00", datetime(2026, 11, 26, 10, 0), timedelta(hours=5)),
        # The offsets the ambiguity message suggests do settle the repeated hour.
        ("2027-10-31T03:30+03:00", datetime(2027, 10, 31, 3, 30), timedelta(hours=3)),
        ("31.10.2027 03:30 +02:00", datetime(2027, 10, 31, 3, 30), EET),
    ],
)
def test_a_written_offset_is_kept(text: str, wall: datetime, offset: timedelta) -> None:
    assert_exact(parse_datetime(text, zone=SOFIA, now=NOW), wall, offset)


def test_a_written_offset_is_the_same_instant() -> None:
    result = parse_datetime("15.12.2026 10:30 +05:00", zone=SOFIA, now=NOW)
    assert result == datetime(2026, 12, 15, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2027-03-28 03:30", "2027-03-28T03:30", "28.03.2027 03:30"])
def test_a_time_skipped_by_dst_is_refused(text: str) -> None:
    message = (
        f"'{text}' does not exist in Europe/Sofia: clocks go forward that night; pick another time"
    )
    with refused(message):
        parse_datetime(text, zone=SOFIA, now=NOW)


@pytest.mark.parametrize("text", ["2027-10-31 03:30", "31.10.2027 03:30", "31.10.2027 в 3:30 ч."])
def test_a_time_repeated_by_dst_is_refused(text: str) -> None:
    message = (
        f"'{text}' is ambiguous in Europe/Sofia: that hour happens twice when clocks go back;"
        " add an offset (+03:00 or +02:00)"
    )
    with refused(message):
        parse_datetime(text, zone=SOFIA, now=NOW)


def test_the_hours_around_dst_changes_are_fine() -> None:
    before = parse_datetime("2027-03-28 02:59", zone=SOFIA, now=NOW)
    assert_exact(before, datetime(2027, 3, 28, 2, 59), EET)
    after = parse_datetime("2027-03-28 04:00", zone=SOFIA, now=NOW)
    assert_exact(after, datetime(2027, 3, 28, 4, 0), timedelta(hours=3))
    once = parse_datetime("2027-10-31 04:00", zone=SOFIA, now=NOW)
    assert_exact(once, datetime(2027, 10, 31, 4, 0), EET)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("15.12.2026", date(2026, 12, 15)),
        ("2026-12-15", date(2026, 12, 15)),
        ("утре", date(2026, 11, 26)),
        ("tomorrow", date(2026, 11, 26)),
        ("петък", date(2026, 11, 27)),
    ],
)
def test_a_bare_day_is_refused_as_an_instant_but_is_a_date(text: str, day: date) -> None:
    with refused(f"'{text}' has no time of day; write e.g. '{text} 10:30'"):
        parse_datetime(text, zone=SOFIA, now=NOW)
    assert parse_date(text, zone=SOFIA, now=NOW) == day


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("in 3 days", date(2026, 11, 28)),
        ("след 3 дни", date(2026, 11, 28)),
        ("15 декември", date(2026, 12, 15)),
        ("следващия петък", date(2026, 12, 4)),
        ("next Friday", date(2026, 12, 4)),
        ("02/03/2027", date(2027, 3, 2)),
        ("утре в 10 ч.", date(2026, 11, 26)),
        ("2026-12-15T10:30", date(2026, 12, 15)),
        # A datetime gives the day it falls on in the zone, not in its own offset.
        ("2026-12-15T23:30Z", date(2026, 12, 16)),
        ("2026-12-15T01:00+05:00", date(2026, 12, 14)),
        # A bill's day is fine even when that night's clock change skips the hour.
        ("2027-03-28 03:30", date(2027, 3, 28)),
    ],
)
def test_parse_date(text: str, day: date) -> None:
    assert parse_date(text, zone=SOFIA, now=NOW) == day


def test_a_month_without_a_day_is_refused() -> None:
    text = "декември 2026"
    with refused(f"'{text}' does not name a day; write e.g. '15.12.2026'"):
        parse_date(text, zone=SOFIA, now=NOW)


@pytest.mark.parametrize(
    "text",
    ["blah", "утре blah 10:00", "tomorrow 25:00", "утре в 25", "2026-02-30", "2026-12-15T25:00"],
)
def test_garbage_is_refused_naming_the_text(text: str) -> None:
    for parse in (parse_datetime, parse_date):
        with refused(UNREADABLE.format(text)):
            parse(text, zone=SOFIA, now=NOW)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_refused(text: str) -> None:
    message = "the date is empty; use e.g. 2026-12-15 10:30 or 'утре 10:00'"
    with refused(message):
        parse_datetime(text, zone=SOFIA, now=NOW)
    with refused(message):
        parse_date(text, zone=SOFIA, now=NOW)


def test_the_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_datetime("blah", zone=SOFIA, now=NOW)


@pytest.mark.parametrize(
    ("text", "wall", "offset"),
    [
        ("tomorrow 10:00", datetime(2026, 11, 26, 10, 0), timedelta(hours=-5)),
        ("утре в 10", datetime(2026, 11, 26, 10, 0), timedelta(hours=-5)),
        ("2026-12-15 10:30", datetime(2026, 12, 15, 10, 30), timedelta(hours=-5)),
        ("15.06.2027 10:00", datetime(2027, 6, 15, 10, 0), timedelta(hours=-4)),
    ],
)
def test_another_zone_gives_its_own_offset(text: str, wall: datetime, offset: timedelta) -> None:
    assert_exact(parse_datetime(text, zone=NEW_YORK, now=NOW), wall, offset)


def test_relative_days_count_from_the_zone_s_own_today() -> None:
    # 03:00 in Sofia is still 20:00 the day before in New York.
    now = datetime(2026, 11, 25, 3, 0, tzinfo=SOFIA)
    result = parse_datetime("tomorrow 10:00", zone=NEW_YORK, now=now)
    assert_exact(result, datetime(2026, 11, 25, 10, 0), timedelta(hours=-5))
    assert parse_date("утре", zone=NEW_YORK, now=now) == date(2026, 11, 25)
    assert parse_date("утре", zone=SOFIA, now=now) == date(2026, 11, 26)


def test_dst_gap_names_the_zone() -> None:
    text = "2027-03-14 02:30"
    message = (
        f"'{text}' does not exist in America/New_York: clocks go forward that night;"
        " pick another time"
    )
    with refused(message):
        parse_datetime(text, zone=NEW_YORK, now=NOW)


def test_next_weekday_said_on_that_weekday_is_a_week_later() -> None:
    friday = datetime(2026, 11, 27, 8, 0, tzinfo=SOFIA)
    bulgarian = parse_datetime("следващия петък 9:00", zone=SOFIA, now=friday)
    english = parse_datetime("next Friday 9am", zone=SOFIA, now=friday)
    assert_exact(bulgarian, datetime(2026, 12, 4, 9, 0), EET)
    assert_exact(english, datetime(2026, 12, 4, 9, 0), EET)


# The night clocks go forward (02:30 EET is 00:30 UTC; at 01:00 UTC 03:00 becomes 04:00) and
# the night they go back (02:30 EEST is 23:30 UTC; at 01:00 UTC 04:00 becomes 03:00).
SPRING_NIGHT = datetime(2027, 3, 28, 2, 30, tzinfo=SOFIA)
AUTUMN_NIGHT = datetime(2027, 10, 31, 2, 30, tzinfo=SOFIA)


@pytest.mark.parametrize(
    ("text", "now", "utc"),
    [
        ("in 2 hours", SPRING_NIGHT, datetime(2027, 3, 28, 2, 30, tzinfo=UTC)),
        ("след 2 часа", SPRING_NIGHT, datetime(2027, 3, 28, 2, 30, tzinfo=UTC)),
        # Wall-clock arithmetic would land on 03:30, which does not exist that night.
        ("in 1 hour", SPRING_NIGHT, datetime(2027, 3, 28, 1, 30, tzinfo=UTC)),
        ("след час", SPRING_NIGHT, datetime(2027, 3, 28, 1, 30, tzinfo=UTC)),
        ("след 90 минути", SPRING_NIGHT, datetime(2027, 3, 28, 2, 0, tzinfo=UTC)),
        ("след час и половина", SPRING_NIGHT, datetime(2027, 3, 28, 2, 0, tzinfo=UTC)),
        ("in 1 hour and 30 minutes", SPRING_NIGHT, datetime(2027, 3, 28, 2, 0, tzinfo=UTC)),
        ("in 1 hour 30 minutes", SPRING_NIGHT, datetime(2027, 3, 28, 2, 0, tzinfo=UTC)),
        ("след 1 час, 30 минути", SPRING_NIGHT, datetime(2027, 3, 28, 2, 0, tzinfo=UTC)),
        ("след половин час", SPRING_NIGHT, datetime(2027, 3, 28, 1, 0, tzinfo=UTC)),
        # ...and here on 03:30, which happens twice: the two readings are different instants.
        ("in 1 hour", AUTUMN_NIGHT, datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        ("in 2 hours", AUTUMN_NIGHT, datetime(2027, 10, 31, 1, 30, tzinfo=UTC)),
        ("In an hour.", AUTUMN_NIGHT, datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        ("in 45 minutes", NOW, datetime(2026, 11, 25, 10, 45, tzinfo=UTC)),
    ],
)
def test_hours_and_minutes_from_now_are_real_time(text: str, now: datetime, utc: datetime) -> None:
    result = parse_datetime(text, zone=SOFIA, now=now)
    # Compared in UTC: Python holds a time in a repeated hour unequal to every other zone's.
    assert result.astimezone(UTC) == utc
    assert result.tzinfo is SOFIA
    assert parse_date(text, zone=SOFIA, now=now) == utc.astimezone(SOFIA).date()


@pytest.mark.parametrize(
    "text",
    ["след 10 минути и половина", "in 2 apples", "след много часа", "in 2 hourses", "in hours x"],
)
def test_odd_durations_are_refused(text: str) -> None:
    with refused(UNREADABLE.format(text)):
        parse_datetime(text, zone=SOFIA, now=NOW)


@pytest.mark.parametrize(
    ("text", "wall"),
    [
        ("tomorrow at 10", datetime(2026, 11, 26, 10, 0)),
        ("at 10 tomorrow", datetime(2026, 11, 26, 10, 0)),
        ("Friday at 9", datetime(2026, 11, 27, 9, 0)),
        ("next Monday at 14", datetime(2026, 11, 30, 14, 0)),
        ("tomorrow at 3 pm", datetime(2026, 11, 26, 15, 0)),
    ],
)
def test_english_at_an_hour(text: str, wall: datetime) -> None:
    assert_exact(parse_datetime(text, zone=SOFIA, now=NOW), wall, EET)
