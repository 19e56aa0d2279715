"""The upcoming screen's calendar: a week or a month of days on the account's clock.

Pure, no I/O. A view is picked by any day inside it (``?view=week&day=2027-03-29``); weeks start
on Monday, as Bulgarian calendars do, and a month is shown as the whole weeks that cover it.
A day's span is midnight to midnight on the zone's clock, so the days a clock changes are 23
and 25 hours long, and what falls between midnight and 02:00 UTC lands on the right day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final, Generic, Literal, TypeVar

from babel import Locale
from babel.dates import format_date

View = Literal["week", "month"]
VIEWS: Final = ("week", "month")
T = TypeVar("T")


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The first instant of ``day`` on ``zone``'s clock, in UTC."""
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Span:
    """The days a view shows, and where its neighbours are."""

    view: View
    first: date  # the first day shown (a Monday)
    last: date  # the last day shown (a Sunday)
    month: date | None  # the 1st of the month a month view is about
    previous: date  # a day in the view before
    following: date  # a day in the view after

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def weeks(self) -> list[list[date]]:
        days = self.days
        return [days[i : i + 7] for i in range(0, len(days), 7)]

    def bounds(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """[start, end) in UTC: from the first day's midnight to the midnight after the last."""
        return local_midnight(self.first, zone), local_midnight(self.last + timedelta(days=1), zone)

    def in_month(self, day: date) -> bool:
        return self.month is None or (day.year, day.month) == (self.month.year, self.month.month)


def span(view: View, day: date) -> Span:
    """The week or the month ``day`` falls in."""
    if view == "week":
        first = monday_of(day)
        return Span(
            "week",
            first,
            first + timedelta(days=6),
            None,
            first - timedelta(days=7),
            first + timedelta(days=7),
        )
    start = day.replace(day=1)
    after = _add_months(start, 1)
    first = monday_of(start)
    last = monday_of(after - timedelta(days=1)) + timedelta(days=6)
    return Span("month", first, last, start, _add_months(start, -1), after)


def parse_day(text: str | None, today: date) -> date:
    """``YYYY-MM-DD`` (a month view takes ``YYYY-MM`` too); ``today`` when absent.

    A ValueError for anything else, or a day outside the years the clock can show."""
    if not text:
        return today
    try:
        if len(text) == 7:
            return date.fromisoformat(text + "-01")
        if len(text) != 10:
            raise ValueError
        parsed = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a day: write it as YYYY-MM-DD") from None
    if not 1971 <= parsed.year <= 2998:
        raise ValueError(f"{text!r} is not a day: the year must be 1971 to 2998")
    return parsed


@dataclass
class Day(Generic[T]):
    day: date
    items: list[T] = field(default_factory=list)


def by_day(
    items: Iterable[T], at: Callable[[T], datetime], shown: Span, zone: tzinfo
) -> list[Day[T]]:
    """Each day of ``shown`` with the items that fall in it on ``zone``'s clock, in time order;
    items outside the days shown are left out."""
    days = {d: Day[T](d) for d in shown.days}
    for item in sorted(items, key=at):
        entry = days.get(at(item).astimezone(zone).date())
        if entry is not None:
            entry.items.append(item)
    return list(days.values())


class DayNames:
    """Days and months written in one language: "понеделник, 30 март 2027", "март 2027"."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale

    def day(self, day: date, width: str = "full") -> str:
        return format_date(day, width, locale=self.locale)

    def weekday(self, day: date) -> str:
        return format_date(day, "EEE", locale=self.locale)

    def month(self, day: date) -> str:
        return format_date(day, "LLLL y", locale=self.locale)
