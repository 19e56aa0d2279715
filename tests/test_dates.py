"""Reading dates: real phrases in Bulgarian and English at a fixed `now`, never the clock."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reminders.dates import DateParseError, accepted_days, parse_date, parse_datetime

SOFIA = ZoneInfo("Europe/Sofia")
NEW_YORK = ZoneInfo("America/New_York")
# A Wednesday: "петък" is 2026-11-27, "следващия петък" 2026-12-04.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=SOFIA)
EET = timedelta(hours=2)
SUMMER = timedelta(hours=3)


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
        ("02.03.2027 10:00", datetime(2027, 3, 2, 10, 0)),
        # Slashes too are read day first when that is the only reading.
        ("20/03/2027 10:00", datetime(2027, 3, 20, 10, 0)),
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


@pytest.mark.parametrize(
    ("text", "wall"),
    [
        ("утре 12:00", datetime(2026, 11, 26, 12, 0)),
        ("tomorrow at 12", datetime(2026, 11, 26, 12, 0)),
        ("вдругиден в 12 ч.", datetime(2026, 11, 27, 12, 0)),
    ],
)
def test_a_time_equal_to_now_s_time_of_day_is_a_time(text: str, wall: datetime) -> None:
    # dateparser calls it a bare day when the time matches its RELATIVE_BASE's (NOW's 12:00).
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
        ("02.03.2027", date(2027, 3, 2)),
        ("20/03/2027", date(2027, 3, 20)),
        ("12/12/2027", date(2027, 12, 12)),
        ("2.3.2027", date(2027, 3, 2)),
        ("15-12-2026", date(2026, 12, 15)),
        ("2027/03/02", date(2027, 3, 2)),
        ("25.12", date(2026, 12, 25)),
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


# A time of day alone is its next occurrence, never a day in the past.
@pytest.mark.parametrize(
    ("text", "now", "wall", "offset"),
    [
        # Still to come today...
        ("10:30", datetime(2026, 11, 25, 9, 0, tzinfo=SOFIA), datetime(2026, 11, 25, 10, 30), EET),
        (
            "10:30",
            datetime(2026, 11, 25, 10, 30, 40, tzinfo=SOFIA),
            datetime(2026, 11, 25, 10, 30),
            EET,
        ),
        # ...or already past: tomorrow, on the last day of a month too (not the 1st of this one).
        (
            "10:30",
            datetime(2026, 11, 25, 10, 31, tzinfo=SOFIA),
            datetime(2026, 11, 26, 10, 30),
            EET,
        ),
        ("10:30", datetime(2026, 11, 30, 12, 0, tzinfo=SOFIA), datetime(2026, 12, 1, 10, 30), EET),
        (
            "в 10:30",
            datetime(2026, 11, 30, 12, 0, tzinfo=SOFIA),
            datetime(2026, 12, 1, 10, 30),
            EET,
        ),
        ("10:30", datetime(2026, 12, 31, 23, 0, tzinfo=SOFIA), datetime(2027, 1, 1, 10, 30), EET),
        ("в 10 ч.", datetime(2026, 11, 30, 9, 0, tzinfo=SOFIA), datetime(2026, 11, 30, 10, 0), EET),
        ("в 10", datetime(2026, 11, 30, 11, 0, tzinfo=SOFIA), datetime(2026, 12, 1, 10, 0), EET),
        ("at 10", datetime(2026, 11, 30, 11, 0, tzinfo=SOFIA), datetime(2026, 12, 1, 10, 0), EET),
        (
            "at 10:30",
            datetime(2026, 11, 30, 11, 0, tzinfo=SOFIA),
            datetime(2026, 12, 1, 10, 30),
            EET,
        ),
        ("10.30", datetime(2026, 11, 30, 11, 0, tzinfo=SOFIA), datetime(2026, 12, 1, 10, 30), EET),
        ("10pm", datetime(2026, 11, 30, 23, 0, tzinfo=SOFIA), datetime(2026, 12, 1, 22, 0), EET),
        (
            "10:30 pm",
            datetime(2026, 11, 30, 21, 0, tzinfo=SOFIA),
            datetime(2026, 11, 30, 22, 30),
            EET,
        ),
        ("12 am", datetime(2026, 11, 30, 21, 0, tzinfo=SOFIA), datetime(2026, 12, 1, 0, 0), EET),
        # Tomorrow's offset after a clock change, not today's.
        (
            "10:30",
            datetime(2027, 3, 27, 12, 0, tzinfo=SOFIA),
            datetime(2027, 3, 28, 10, 30),
            SUMMER,
        ),
        ("09:00", datetime(2027, 10, 30, 20, 0, tzinfo=SOFIA), datetime(2027, 10, 31, 9, 0), EET),
        # The night of the change: 02:30 EET, and an hour later it is 04:30 summer time.
        ("04:00", datetime(2027, 3, 28, 2, 30, tzinfo=SOFIA), datetime(2027, 3, 28, 4, 0), SUMMER),
        ("03:30", datetime(2027, 3, 28, 4, 10, tzinfo=SOFIA), datetime(2027, 3, 29, 3, 30), SUMMER),
        # A written offset: the next time it is 10:30 there.
        ("10:30 UTC", NOW, datetime(2026, 11, 25, 10, 30), timedelta(0)),
        ("10:30 +05:00", NOW, datetime(2026, 11, 26, 10, 30), timedelta(hours=5)),
    ],
)
def test_a_bare_time_is_its_next_occurrence(
    text: str, now: datetime, wall: datetime, offset: timedelta
) -> None:
    assert_exact(parse_datetime(text, zone=SOFIA, now=now), wall, offset)
    assert parse_date(text, zone=SOFIA, now=now) == wall.date()


def test_a_bare_time_is_never_in_the_past() -> None:
    # Every quarter of an hour over the last day of a month and over both clock changes.
    starts = [
        datetime(2026, 11, 30, tzinfo=UTC),
        datetime(2027, 3, 27, 12, tzinfo=UTC),
        datetime(2027, 10, 30, 12, tzinfo=UTC),
    ]
    for start in starts:
        for step in range(4 * 24):
            now = start + timedelta(minutes=15 * step)
            for text in ("00:00", "06:45", "10:30", "18:00", "23:59"):
                result = parse_datetime(text, zone=SOFIA, now=now)
                # A day is 25 hours long when clocks go back.
                assert now - timedelta(minutes=1) < result <= now + timedelta(hours=25), (text, now)
                assert result.astimezone(SOFIA).strftime("%H:%M") == text


def test_a_bare_time_the_clock_change_skips_or_repeats_is_refused() -> None:
    spring = datetime(2027, 3, 28, 1, 0, tzinfo=SOFIA)
    with refused(
        "'03:30' does not exist in Europe/Sofia: clocks go forward that night; pick another time"
    ):
        parse_datetime("03:30", zone=SOFIA, now=spring)
    autumn = datetime(2027, 10, 31, 1, 0, tzinfo=SOFIA)
    with refused(
        "'03:30' is ambiguous in Europe/Sofia: that hour happens twice when clocks go back;"
        " add an offset (+03:00 or +02:00)"
    ):
        parse_datetime("03:30", zone=SOFIA, now=autumn)


@pytest.mark.parametrize("text", ["25:00", "13pm", "0 am", "10:60"])
def test_an_impossible_bare_time_is_refused(text: str) -> None:
    for parse in (parse_datetime, parse_date):
        with refused(UNREADABLE.format(text)):
            parse(text, zone=SOFIA, now=NOW)


# Numbers are read day first, in every field: an impossible day-first date is refused, never
# re-read month first, and a slashed one that could be read both ways is refused.
@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("12.13.2027 10:00", "12.13.2027"),
        ("12.13.27", "12.13.27"),
        ("12/20/2026", "12/20/2026"),
        ("12/20/2026 10:00", "12/20/2026"),
        ("5/13/2027", "5/13/2027"),
        ("12-13-2027 10:00", "12-13-2027"),
        ("31.04.2027 10:00", "31.04.2027"),
        ("29.02.2027", "29.02.2027"),
        ("12/13", "12/13"),
        ("утре 12/13", "12/13"),
    ],
)
def test_an_impossible_numeric_date_is_refused(text: str, found: str) -> None:
    for parse in (parse_datetime, parse_date):
        with refused(f"'{found}' is not a date read day first, as in 15.12.2026"):
            parse(text, zone=SOFIA, now=NOW)


def test_an_impossible_year_first_date_is_refused() -> None:
    for parse in (parse_datetime, parse_date):
        with refused("'2027/13/02' is not a date (year, month, day)"):
            parse("2027/13/02 10:00", zone=SOFIA, now=NOW)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("02/03/2027 10:00", "02/03/2027"),
        ("02/03/2027", "02/03/2027"),
        ("3/2/27 10:00", "3/2/27"),
        ("02-03-2027", "02-03-2027"),
        ("02/03", "02/03"),
    ],
)
def test_a_slashed_date_read_either_way_is_refused(text: str, found: str) -> None:
    message = (
        f"'{found}' could be read day first or month first; write it with dots, day first,"
        " as in 15.12.2026, or year first, as in 2026-12-15"
    )
    for parse in (parse_datetime, parse_date):
        with refused(message):
            parse(text, zone=SOFIA, now=NOW)


def test_a_day_or_a_time_is_refused() -> None:
    message = (
        "'13.12' could be a date or a time of day; add the year for a date (13.12.2026)"
        " or write a time with a colon (13:12)"
    )
    for parse in (parse_datetime, parse_date):
        with refused(message):
            parse("13.12", zone=SOFIA, now=NOW)


def test_a_dotted_time_with_a_day_is_a_time() -> None:
    assert_exact(
        parse_datetime("утре 10.30", zone=SOFIA, now=NOW), datetime(2026, 11, 26, 10, 30), EET
    )


# Dates far off are refused, in every field: 0001-01-01 or 9999-12-31 would overflow when moved
# to another zone, after the row was stored.
WINDOW = "is outside the dates accepted, 2025-11-25 to 2031-11-25 (1 year back to 5 years ahead)"


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:00:00+00:00",
        "0001-01-01T01:00:00+00:00",
        "9999-12-31T23:00",
        "0001-01-01T01:00",
        "31.12.9999 23:00 UTC",
        "01.01.0001 01:00",
        "31 декември 9999 23:00 +00:00",
        "in 99999 hours",
        "2031-11-26 10:00",
        "2025-11-24 23:59",
    ],
)
def test_a_date_outside_the_window_is_refused(text: str) -> None:
    for parse in (parse_datetime, parse_date):
        with refused(f"'{text}' {WINDOW}"):
            parse(text, zone=SOFIA, now=NOW)


@pytest.mark.parametrize(
    "text", ["9999-12-31", "0001-01-01", "2031-11-26", "2025-11-24", "след 9999 дни"]
)
def test_a_day_outside_the_window_is_refused(text: str) -> None:
    with refused(f"'{text}' {WINDOW}"):
        parse_date(text, zone=SOFIA, now=NOW)


def test_the_window_s_own_days_are_taken() -> None:
    assert parse_date("2025-11-25", zone=SOFIA, now=NOW) == date(2025, 11, 25)
    assert parse_date("25.11.2031", zone=SOFIA, now=NOW) == date(2031, 11, 25)
    first = parse_datetime("2025-11-25 00:00", zone=SOFIA, now=NOW)
    assert_exact(first, datetime(2025, 11, 25, 0, 0), EET)
    last = parse_datetime("2031-11-25T23:59", zone=SOFIA, now=NOW)
    assert_exact(last, datetime(2031, 11, 25, 23, 59), EET)
    assert accepted_days(NOW, SOFIA) == (date(2025, 11, 25), date(2031, 11, 25))
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=SOFIA)
    assert accepted_days(leap, SOFIA) == (date(2027, 2, 28), date(2033, 2, 28))
