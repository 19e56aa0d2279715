"""When an event is, in words true at the moment its reminder is sent: "утре в 8:15".

A reminder's text cannot know on which day it will go out: quiet hours move a "2 hours before"
step to the evening before, and a notice may go out late after a stop. So the words are chosen
from the two local dates, the event's and the sending moment's, on the recipient's clock. Dates,
not durations: across a clock change a day is 23 or 25 hours long, and "tomorrow" is a date.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date

# The one-word days (as in CLDR's relative day names); other days get a weekday and a date.
_NEAR_DAYS = {
    "bg": {-1: "вчера", 0: "днес", 1: "утре"},
    "en": {-1: "yesterday", 0: "today", 1: "tomorrow"},
}
# Far enough that a weekday and a day of the month could be read as the wrong year.
_SHOW_YEAR_AFTER = 180


def when_text(
    start: datetime, moment: datetime, zone: ZoneInfo, *, all_day: bool, lang: str
) -> str:
    """Words for ``start`` as read at ``moment``, both aware, on the clock of ``zone``.

    Bulgarian (``lang`` "bg", and any language without words here): "днес в 8:15",
    "утре в 8:15", "в понеделник, 7.12, в 8:15". English: "today at 8:15", "tomorrow at 8:15",
    "on Monday 7 Dec at 8:15". An all-day event has no time: "утре", "on Monday 7 Dec".
    """
    if start.tzinfo is None or moment.tzinfo is None:
        raise ValueError("when_text() needs aware datetimes; a naive one has no clock to read.")
    lang = lang if lang in _NEAR_DAYS else "bg"
    local = start.astimezone(zone)
    days = (local.date() - moment.astimezone(zone).date()).days
    clock = None if all_day else f"{local.hour}:{local.minute:02d}"
    near = _NEAR_DAYS[lang].get(days)
    if lang == "en":
        day = near or f"on {_day_and_date(local.date(), abs(days), lang)}"
        return day if clock is None else f"{day} at {clock}"
    if near is not None:
        return near if clock is None else f"{near} в {clock}"
    day = _day_and_date(local.date(), abs(days), lang)
    # "във" before a word that starts with в or ф: "във вторник".
    day = ("във " if day[0] in "вф" else "в ") + day
    return day if clock is None else f"{day}, в {clock}"


def _day_and_date(day: date, distance: int, lang: str) -> str:
    if lang == "en":
        pattern = "EEEE d MMM y" if distance > _SHOW_YEAR_AFTER else "EEEE d MMM"
    else:
        pattern = "EEEE, d.MM.y" if distance > _SHOW_YEAR_AFTER else "EEEE, d.MM"
    return format_date(day, pattern, locale=_locale(lang))


@lru_cache(maxsize=4)
def _locale(lang: str) -> Locale:
    # Given a name, Babel reads the locale's data files on every call; a burst pays for it.
    return Locale.parse(lang)
