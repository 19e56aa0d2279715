"""Reading the dates people type: ISO 8601 or natural language in Bulgarian and English.

ISO 8601 is read without dateparser so that machine clients get exact, predictable results.
Everything else goes through a thin Bulgarian normalisation and then dateparser, because
dateparser 1.5 misreads several of the most natural Bulgarian phrasings (measured in the
team's dateparser notes): the preposition "в", the hour marker "ч."/"часа" and
"следващия <weekday>". Whatever is ambiguous is refused rather than guessed, and the caller
echoes the result back so the user sees what was understood.

Numbers are read day first, as Bulgarians (and the British) write them: 02.03.2027 is 2 March.
A numeric date that is impossible that way (12.13.2027) is refused, never re-read month first;
one with slashes or dashes whose order cannot be known (02/03/2027) is refused as ambiguous, and
so is "13.12", which may be a day or a time. A time of day alone ("10:30", "в 10") is its next
occurrence: today, or tomorrow once it has passed. Every date must fall between a year before
today and five years after it (`accepted_days`).

"Next <weekday>" ("следващия петък", "next Friday") means that weekday in the next calendar
week, weeks starting on Monday as in Bulgaria: on Wednesday 2026-11-25 "next Friday" is
2026-12-04 (2026-11-27 is "this Friday", written simply "петък" / "Friday") and "next Monday"
is 2026-11-30. dateparser alone would answer 2026-11-27 for English and nothing for Bulgarian.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from dateparser.date import DateDataParser
from dateparser.timezone_parser import pop_tz_offset_from_string

EXAMPLES = "use e.g. 2026-12-15 10:30 or 'утре 10:00'"
# The dates taken anywhere, around today. Further out is a typo or a client's placeholder
# (0001-01-01, 9999-12-31), and a value at either end of Python's range overflows as soon as
# it is moved to another zone: stored, it could never be read back.
YEARS_BACK = 1
YEARS_AHEAD = 5


class DateParseError(ValueError):
    """The text is not a date we can read unambiguously; str(exc) is one sentence for the user."""


# Only the shapes we promise; datetime.fromisoformat alone would also take week dates and
# compact forms that nobody types by hand and that we do not want to document.
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?",
    re.IGNORECASE,
)

# "10 ч.", "10 часа", "10:30 ч." mark a clock hour; dateparser reads "10 ч." as 22:00. After
# "след"/"преди"/"за" the same words are a duration ("след 2 часа" = in two hours), kept as is.
_HOUR_MARK = re.compile(
    r"(?:\b(след|преди|за)\s+)?\b(\d{1,2})(?::(\d{2}))?\s*(?:часа|ч\b\.?)", re.IGNORECASE
)
# A bare "в 10" is an hour only at the end ("утре в 10"); elsewhere "в 10 декември" is a day.
_AT_BARE_HOUR = re.compile(r"\bв(?:ъв)?\s+(\d{1,2})$", re.IGNORECASE)
# "в"/"във" ("at"/"on") make dateparser give up; they carry no meaning for a date.
_PREPOSITION = re.compile(r"\bв(?:ъв)?\s+", re.IGNORECASE)

_WEEKDAYS = {
    "понеделник": 0, "вторник": 1, "сряда": 2, "четвъртък": 3,
    "петък": 4, "събота": 5, "неделя": 6,
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3,
    "friday": 4, "saturday": 5, "sunday": 6,
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
}  # fmt: skip
# Longest names first so that "friday" is not cut to "fri".
_NEXT_WEEKDAY = re.compile(
    r"\b(?:следващ(?:ия|ият|ата|ото)|next)\s+("
    + "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
    + r")\b",
    re.IGNORECASE,
)

# "in 2 hours", "след 30 минути", "след час и половина" are durations on the real timeline: a
# DST change in between does not stretch or shrink them. dateparser adds them to the wall
# clock instead, which across the change is an hour off or lands on a time that does not exist.
_DURATION = re.compile(r"(?:in|след)\s+(.+)", re.IGNORECASE)
_DURATION_PART = re.compile(
    r"(\d{1,5}|an?|one|един|една|половин)?\s*"
    r"(hours?|hrs?|minutes?|mins?|часа|час|минути|минута|мин)\.?",
    re.IGNORECASE,
)
_DURATION_GAP = re.compile(r"\s*(?:,|\band\b|\bи\b)?\s*", re.IGNORECASE)
_MINUTE = timedelta(minutes=1)
_HALF = re.compile(r"\s+(?:и\s+половина|and\s+a\s+half)$", re.IGNORECASE)
# English "at 10" before the end or a day word is ten o'clock; dateparser drops the hour.
_AT_HOUR_EN = re.compile(
    r"\bat\s+(\d{1,2})(?=\s*$|\s+(?:today|tomorrow|tonight|on|next|this)\b)", re.IGNORECASE
)

# A time of day alone, once normalised ("в 10:30" is "10:30" by then, "10 ч." is "10:00"):
# dateparser puts it on the wrong day, even on the 1st of the month on a month's last day.
_CLOCK_ONLY = re.compile(
    r"(?:at\s+)?(\d{1,2})(?::(\d{2})(?::\d{2})?)?\s*(?:([ap])\.?\s*m\.?)?", re.IGNORECASE
)
# A numeric date: day.month[.year] (or with / or -), or year-month-day. dateparser swaps day and
# month when day first is impossible ("12.13.2027" becomes 13 December), so check first.
_NUMERIC_DATE = re.compile(
    r"(?<![\d.:/-])(\d{1,4})([./-])(\d{1,2})(?:\2(\d{1,4}))?(?![\d:/-]|\.\d)"
)
_DAY_FIRST = "day first, as in 15.12.2026"

# A clock time in the text that dateparser did not use means it skipped part of what was
# written ("tomorrow 25:00" comes back as tomorrow at the current time): refuse, don't guess.
_CLOCK = re.compile(r"\d:\d\d")


def parse_datetime(text: str, *, zone: ZoneInfo, now: datetime) -> datetime:
    """An instant for an event start or a message's send time.

    Returns an aware datetime, in `zone` unless the text had its own offset. A text without
    a time of day ("утре", "15.12.2026") is refused rather than given a guessed hour, and so
    is a local time that `zone` skips or repeats at a DST change.
    """
    shown = text.strip()
    _check_now(now)
    iso = _read_iso(shown)
    if isinstance(iso, datetime):
        _check_window(iso.date(), shown, zone, now)
        if iso.tzinfo is not None:
            return iso
        return _localize(iso, zone, shown)
    if iso is not None:
        raise _no_time(shown)
    delta = _read_duration(shown)
    if delta is not None:
        # In UTC: adding to a zoned datetime in Python moves its wall clock, not the instant.
        value = (now.astimezone(UTC) + delta).astimezone(zone).replace(second=0, microsecond=0)
        _check_window(value.date(), shown, zone, now)
        return value

    normal = _normalise(shown, now.astimezone(zone).date())
    clock = _read_clock(normal, shown, zone, now)
    if clock is not None:
        wall, offset = clock
        return wall.replace(tzinfo=offset) if offset is not None else _localize(wall, zone, shown)
    value, has_time, offset = _read_natural(normal, shown, zone, now)
    if not has_time:
        raise _no_time(shown)
    _check_window(value.date(), shown, zone, now)
    if offset is not None:
        return value.astimezone(offset)
    return _localize(value.replace(tzinfo=None), zone, shown)


def parse_date(text: str, *, zone: ZoneInfo, now: datetime) -> date:
    """A calendar day for a bill's due date.

    A text with a time of day gives the day it falls on in `zone`; an explicit offset is
    converted to `zone` first.
    """
    shown = text.strip()
    _check_now(now)
    iso = _read_iso(shown)
    if isinstance(iso, datetime):
        _check_window(iso.date(), shown, zone, now)
        return iso.astimezone(zone).date() if iso.tzinfo is not None else iso.date()
    if iso is not None:
        _check_window(iso, shown, zone, now)
        return iso
    delta = _read_duration(shown)
    if delta is not None:
        day = (now.astimezone(UTC) + delta).astimezone(zone).date()
        _check_window(day, shown, zone, now)
        return day

    normal = _normalise(shown, now.astimezone(zone).date())
    clock = _read_clock(normal, shown, zone, now)
    if clock is not None:
        wall, offset = clock
        if offset is not None:
            return wall.replace(tzinfo=offset).astimezone(zone).date()
        return wall.date()
    value, _, offset = _read_natural(normal, shown, zone, now)
    _check_window(value.date(), shown, zone, now)
    if offset is not None:
        return value.astimezone(zone).date()
    # dateparser's own offset can be wrong around DST changes; the wall-clock day is not.
    return value.date()


def accepted_days(now: datetime, zone: ZoneInfo) -> tuple[date, date]:
    """The first and last day a date may fall on: a year before today to five years after."""
    today = now.astimezone(zone).date()
    return _add_years(today, -YEARS_BACK), _add_years(today, YEARS_AHEAD)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February, in a year that has none
        return day.replace(year=day.year + years, day=28)


def _check_window(day: date, shown: str, zone: ZoneInfo, now: datetime) -> None:
    first, last = accepted_days(now, zone)
    if not first <= day <= last:
        raise _outside(shown, zone, now)


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")


def _read_iso(text: str) -> datetime | date | None:
    """The ISO 8601 reading of `text`: a datetime (naive if no offset), a date, or None."""
    if not _ISO.fullmatch(text):
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.upper())
    except ValueError:
        # Shaped like ISO but impossible (2026-02-30, 25:00): no other reading is better.
        raise _unreadable(text) from None


def _read_clock(
    normal: str, shown: str, zone: ZoneInfo, now: datetime
) -> tuple[datetime, timezone | None] | None:
    """A time of day alone, as its next occurrence: (local wall clock, the text's own offset).

    Today if that time is still to come (this minute included), else tomorrow; never a day
    in the past. None if the text says more than a time of day.
    """
    rest, found = pop_tz_offset_from_string(normal)
    match = _CLOCK_ONLY.fullmatch(rest.strip())
    if match is None or (match[2] is None and match[3] is None):
        return None  # a bare number ("10") is a day of the month to dateparser, not a time
    hour, minute, half = int(match[1]), int(match[2] or 0), match[3]
    if half is not None:
        if not 1 <= hour <= 12:
            raise _unreadable(shown)
        hour = hour % 12 + (12 if half.lower() == "p" else 0)
    if hour > 23 or minute > 59:
        raise _unreadable(shown)
    offset = timezone(found.utcoffset(None)) if found is not None else None
    local_now = now.astimezone(offset or zone).replace(tzinfo=None, second=0, microsecond=0)
    # Compared on the wall clock: the day is what is being chosen, and a clock change that
    # night is then settled by _localize (a skipped or repeated time is refused).
    wall = datetime.combine(local_now.date(), time(hour, minute))
    if wall < local_now:
        wall += timedelta(days=1)
    return wall, offset


def _read_natural(
    normal: str, shown: str, zone: ZoneInfo, now: datetime
) -> tuple[datetime, bool, timezone | None]:
    """Natural-language reading: (value, whether it had a time of day, the text's own offset).

    `value` is aware; without an offset of its own its wall clock is local time in `zone`.
    """
    if not normal:
        raise DateParseError(f"the date is empty; {EXAMPLES}")
    base = now.astimezone(zone).replace(tzinfo=None)
    settings: dict[str, Any] = {
        "TIMEZONE": zone.key,
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": base,
        "DATE_ORDER": "DMY",
        # Tells a time of day ("time") from a bare day ("day"), which we must not guess.
        "RETURN_TIME_AS_PERIOD": True,
    }
    try:
        data = DateDataParser(languages=["bg", "en"], settings=settings).get_date_data(normal)
        value: datetime | None = data.date_obj
        if value is None:
            raise _unreadable(shown)
        if data.period in ("month", "year") and not _names_a_day(normal, settings):
            # dateparser fills the missing day from today: "декември 2026" becomes 25 December.
            raise DateParseError(f"'{shown}' does not name a day; write e.g. '15.12.2026'")
    except OverflowError:
        # dateparser converts between zones: a date at the end of Python's range overflows.
        raise _outside(shown, zone, now) from None
    # period is "time" only when the time differs from RELATIVE_BASE's: "утре 12:00" said at
    # noon comes back as "day". parts (dateparser 1.5) says whether the text named a time.
    has_time = data.period == "time" or "time" in getattr(data, "parts", ())
    if not has_time and _CLOCK.search(normal):
        raise _unreadable(shown)
    # dateparser reports an offset found in the text only by converting to it (or to `zone`),
    # so ask its own tokenizer whether there was one. Not in its documented API: the tests
    # with written offsets are what would catch a change.
    _, found = pop_tz_offset_from_string(normal)
    offset = timezone(found.utcoffset(None)) if found is not None else None
    return value.replace(second=0, microsecond=0), has_time, offset


def _read_duration(text: str) -> timedelta | None:
    """The duration in "in 2 hours" / "след час и половина", or None for anything else."""
    found = _DURATION.fullmatch(" ".join(text.split()).rstrip(".,;:!? "))
    if found is None:
        return None
    rest = found[1]
    half = _HALF.search(rest)
    if half:
        rest = rest[: half.start()]
    total, units, end = timedelta(0), [], 0
    for piece in _DURATION_PART.finditer(rest):
        # Only spaces, a comma or "and" between the parts: "in 2 hours 30 minutes".
        if not _DURATION_GAP.fullmatch(rest[end : piece.start()]):
            return None
        end = piece.end()
        word = (piece[1] or "1").lower()
        amount = 0.5 if word == "половин" else int(word) if word.isdigit() else 1
        unit = timedelta(hours=1) if piece[2].lower().startswith(("h", "час")) else _MINUTE
        total += amount * unit
        units.append(unit)
    if not units or rest[end:].strip():
        return None
    if half:
        if units != [timedelta(hours=1)]:
            return None  # "and a half" only after a number of hours
        total += 30 * _MINUTE
    return total


def _names_a_day(normal: str, settings: dict[str, Any]) -> bool:
    """Whether a month- or year-level reading still pins a day ("in 1 month" does)."""
    # REQUIRE_PARTS cannot be set for every text: weekday names do not count as a day part.
    strict = {**settings, "REQUIRE_PARTS": ["day"]}
    data = DateDataParser(languages=["bg", "en"], settings=strict).get_date_data(normal)
    return data.date_obj is not None


def _normalise(text: str, today: date) -> str:
    """Rewrite the Bulgarian phrasings dateparser misreads into ones it reads correctly."""
    text = " ".join(text.split()).rstrip(".,;:!? ")
    text = _NUMERIC_DATE.sub(lambda match: _numeric_date(match, today.year), text)
    text = _HOUR_MARK.sub(_hour_mark, text)
    text = _AT_BARE_HOUR.sub(lambda m: f"{int(m[1])}:00", text)
    text = _AT_HOUR_EN.sub(lambda m: f"{int(m[1])}:00", text)
    text = _PREPOSITION.sub("", text)
    monday_next_week = today + timedelta(days=7 - today.weekday())

    def next_weekday(match: re.Match[str]) -> str:
        day = monday_next_week + timedelta(days=_WEEKDAYS[match[1].lower()])
        # Day-first numeric form, which DATE_ORDER='DMY' reads back unambiguously.
        return day.strftime("%d.%m.%Y")

    return _NEXT_WEEKDAY.sub(next_weekday, text)


def _numeric_date(match: re.Match[str], this_year: int) -> str:
    """Check a numeric date before dateparser sees it; "10.30", a time, gets its colon."""
    found, first, sep, second, third = match[0], match[1], match[2], match[3], match[4]
    if len(first) == 4:
        if third is not None and not _is_date(int(first), int(second), int(third)):
            raise DateParseError(f"'{found}' is not a date (year, month, day)")
        return found
    if len(first) > 2 or (third is not None and len(third) not in (2, 4)):
        return found  # not a shape we promise: dateparser decides, and refuses most
    day, month = int(first), int(second)
    if third is None:
        if sep == "-":
            return found  # "13-15" is a range of hours or days, not a date
        year = 2028  # a leap year: 29.02 is a date
        hour, minute = day, month
        if sep == "." and len(second) == 2 and hour <= 23 and minute <= 59:
            if _is_date(year, month, day):
                raise DateParseError(
                    f"'{found}' could be a date or a time of day; add the year for a date"
                    f" ({found}.{this_year}) or write a time with a colon ({first}:{second})"
                )
            return f"{first}:{second}"
    else:
        year = int(third) + (2000 if len(third) == 2 else 0)
    if not _is_date(year, month, day):
        raise DateParseError(f"'{found}' is not a date read {_DAY_FIRST}")
    if sep != "." and day != month and month <= 12 and day <= 12:
        # With slashes or dashes the writer may be American: month first.
        raise DateParseError(
            f"'{found}' could be read day first or month first; write it with dots, {_DAY_FIRST},"
            " or year first, as in 2026-12-15"
        )
    return found


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _hour_mark(match: re.Match[str]) -> str:
    if match[1]:
        return match[0]
    return f"{int(match[2])}:{match[3] or '00'}"


def _localize(wall: datetime, zone: ZoneInfo, shown: str) -> datetime:
    """`wall` as local time in `zone`, refusing times skipped or repeated at a DST change."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    # A skipped time does not survive the round trip through UTC: 03:30 comes back as 04:30.
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        raise DateParseError(
            f"'{shown}' does not exist in {zone.key}: clocks go forward that night;"
            " pick another time"
        )
    if first.utcoffset() != second.utcoffset():
        raise DateParseError(
            f"'{shown}' is ambiguous in {zone.key}: that hour happens twice when clocks go back;"
            f" add an offset ({_offset(first)} or {_offset(second)})"
        )
    return first


def _offset(value: datetime) -> str:
    """The UTC offset of `value` as written in ISO 8601, e.g. '+03:00'."""
    text = value.strftime("%z")
    return f"{text[:3]}:{text[3:]}"


def _no_time(shown: str) -> DateParseError:
    return DateParseError(f"'{shown}' has no time of day; write e.g. '{shown} 10:30'")


def _unreadable(shown: str) -> DateParseError:
    return DateParseError(f"could not read '{shown}' as a date; {EXAMPLES}")


def _outside(shown: str, zone: ZoneInfo, now: datetime) -> DateParseError:
    first, last = accepted_days(now, zone)
    return DateParseError(
        f"'{shown}' is outside the dates accepted, {first.isoformat()} to {last.isoformat()}"
        f" ({YEARS_BACK} year back to {YEARS_AHEAD} years ahead)"
    )
