"""`when`: an event's day and time in words true at the moment its reminder is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from reminders.when import when_text

SOFIA = ZoneInfo("Europe/Sofia")
LONDON = ZoneInfo("Europe/London")


def sofia(*args: int) -> datetime:
    return datetime(*args, tzinfo=SOFIA)  # type: ignore[misc]


# Thursday 3 December 2026, 18:00 in Sofia.
MOMENT = sofia(2026, 12, 3, 18, 0)


@pytest.mark.parametrize(
    ("start", "bg", "en"),
    [
        (sofia(2026, 12, 3, 20, 15), "днес в 20:15", "today at 20:15"),
        (sofia(2026, 12, 4, 8, 15), "утре в 8:15", "tomorrow at 8:15"),
        (sofia(2026, 12, 3, 9, 5), "днес в 9:05", "today at 9:05"),
        (sofia(2026, 12, 2, 10, 0), "вчера в 10:00", "yesterday at 10:00"),
        (sofia(2026, 12, 7, 8, 15), "в понеделник, 7.12, в 8:15", "on Monday 7 Dec at 8:15"),
        # "във" before a word that starts with "в".
        (sofia(2026, 12, 8, 0, 30), "във вторник, 8.12, в 0:30", "on Tuesday 8 Dec at 0:30"),
        (sofia(2027, 1, 5, 9, 0), "във вторник, 5.01, в 9:00", "on Tuesday 5 Jan at 9:00"),
        # Far ahead, the year too.
        (
            sofia(2027, 12, 8, 8, 15),
            "в сряда, 8.12.2027, в 8:15",
            "on Wednesday 8 Dec 2027 at 8:15",
        ),
    ],
)
def test_timed_events(start: datetime, bg: str, en: str) -> None:
    assert when_text(start, MOMENT, SOFIA, all_day=False, lang="bg") == bg
    assert when_text(start, MOMENT, SOFIA, all_day=False, lang="en") == en


@pytest.mark.parametrize(
    ("day", "bg", "en"),
    [
        (sofia(2026, 12, 3), "днес", "today"),
        (sofia(2026, 12, 4), "утре", "tomorrow"),
        (sofia(2026, 12, 7), "в понеделник, 7.12", "on Monday 7 Dec"),
    ],
)
def test_all_day_events_have_no_time(day: datetime, bg: str, en: str) -> None:
    assert when_text(day, MOMENT, SOFIA, all_day=True, lang="bg") == bg
    assert when_text(day, MOMENT, SOFIA, all_day=True, lang="en") == en


def test_both_are_read_on_the_recipients_clock() -> None:
    # 23:30 UTC on 3 December is already 4 December in Sofia, still 3 December in London.
    moment = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
    start = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)
    assert when_text(start, moment, SOFIA, all_day=False, lang="bg") == "днес в 9:00"
    assert when_text(start, moment, LONDON, all_day=False, lang="en") == "tomorrow at 7:00"


@pytest.mark.parametrize(
    ("start", "moment", "bg"),
    [
        # Spring, 2027-03-28: the evening before, 16 real hours ahead, is "tomorrow".
        (sofia(2027, 3, 28, 10, 0), sofia(2027, 3, 27, 18, 0), "утре в 10:00"),
        # 23.5 real hours ahead (the day is 23 hours long), still the next date.
        (sofia(2027, 3, 28, 10, 0), sofia(2027, 3, 27, 9, 30), "утре в 10:00"),
        # After the jump from 03:00 to 04:00, the same date.
        (sofia(2027, 3, 28, 10, 0), sofia(2027, 3, 28, 4, 30), "днес в 10:00"),
        # Autumn, 2027-10-31 has 25 hours: 48 h 15 min ahead is only the next date.
        (sofia(2027, 10, 31, 23, 45), sofia(2027, 10, 30, 0, 30), "утре в 23:45"),
        # The repeated hour: 03:30 happens twice on 31 October, both "today".
        (
            datetime(2027, 10, 31, 3, 30, fold=1, tzinfo=SOFIA),
            datetime(2027, 10, 31, 0, 30, tzinfo=UTC),
            "днес в 3:30",
        ),
    ],
)
def test_clock_changes_count_dates_not_hours(start: datetime, moment: datetime, bg: str) -> None:
    assert when_text(start, moment, SOFIA, all_day=False, lang="bg") == bg


def test_an_unknown_language_reads_bulgarian() -> None:
    assert when_text(sofia(2026, 12, 4, 8, 15), MOMENT, SOFIA, all_day=False, lang="de") == (
        "утре в 8:15"
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        when_text(datetime(2026, 12, 4, 8, 15), MOMENT, SOFIA, all_day=False, lang="bg")
