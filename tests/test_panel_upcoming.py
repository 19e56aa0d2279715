"""The upcoming screen: weeks and months of events, bills and planned reminders on the account's
clock, and cancelling one planned reminder."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.db import utcnow
from reminders.models import Notice
from reminders.panel.calendar import DayNames, by_day, parse_day, span
from reminders.scheduler.notice_scheduler import job_id
from tests.test_panel import add_user, csrf, sign_in

SOFIA = ZoneInfo("Europe/Sofia")


def last_sunday(year: int, month: int) -> date:
    end = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return end - timedelta(days=(end.weekday() + 1) % 7)


def test_a_week_starts_on_monday_and_its_neighbours_are_a_week_away() -> None:
    week = span("week", date(2027, 3, 31))  # a Wednesday
    assert week.first == date(2027, 3, 29) and week.last == date(2027, 4, 4)
    assert week.previous == date(2027, 3, 22) and week.following == date(2027, 4, 5)
    assert len(week.days) == 7 and week.month is None


def test_a_month_is_the_whole_weeks_that_cover_it() -> None:
    march = span("month", date(2027, 3, 17))
    assert march.month == date(2027, 3, 1)
    assert march.first == date(2027, 3, 1)  # a Monday
    assert march.last == date(2027, 4, 4)  # the Sunday after the 31st
    assert [len(w) for w in march.weeks] == [7] * 5
    assert march.in_month(date(2027, 3, 31)) and not march.in_month(date(2027, 4, 1))
    assert march.previous == date(2027, 2, 1) and march.following == date(2027, 4, 1)
    december = span("month", date(2026, 12, 5))
    assert december.first == date(2026, 11, 30) and december.last == date(2027, 1, 3)
    assert december.following == date(2027, 1, 1) and december.previous == date(2026, 11, 1)


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2027, 3, 28), 7 * 24 - 1), (date(2027, 10, 31), 7 * 24 + 1), (date(2027, 6, 9), 168)],
)
def test_a_week_with_a_clock_change_is_an_hour_shorter_or_longer(day: date, hours: int) -> None:
    start, end = span("week", day).bounds(SOFIA)
    assert end - start == timedelta(hours=hours)
    assert start.astimezone(SOFIA).hour == 0 and end.astimezone(SOFIA).hour == 0


def test_items_land_on_their_day_on_the_accounts_clock() -> None:
    week = span("week", date(2027, 3, 28))  # 22 to 28 March; the clocks go forward on the 28th
    items = [
        datetime(2027, 3, 27, 22, 30, tzinfo=UTC),  # 00:30 on Sunday the 28th in Sofia (EET)
        datetime(2027, 3, 28, 20, 59, tzinfo=UTC),  # 23:59 on Sunday in Sofia (EEST)
        datetime(2027, 3, 28, 21, 0, tzinfo=UTC),  # Monday the 29th: the next week
        datetime(2027, 3, 21, 21, 59, tzinfo=UTC),  # 23:59 on Sunday the 21st: the week before
        datetime(2027, 3, 21, 22, 0, tzinfo=UTC),  # 00:00 on Monday the 22nd
    ]
    days = by_day(items, lambda at: at, week, SOFIA)
    assert [d.day for d in days] == week.days
    assert days[-1].items == [items[0], items[1]]
    assert days[0].items == [items[4]]
    assert sum(len(d.items) for d in days) == 3


def test_a_day_is_read_strictly() -> None:
    today = date(2027, 3, 1)
    assert parse_day(None, today) == today
    assert parse_day("2027-03-29", today) == date(2027, 3, 29)
    assert parse_day("2027-10", today) == date(2027, 10, 1)
    for wrong in ("29.03.2027", "2027-13-01", "tomorrow", "0001-01-01", "2027-3-1"):
        with pytest.raises(ValueError):
            parse_day(wrong, today)


def test_days_are_written_in_the_viewers_language() -> None:
    bg = DayNames(Locale.parse("bg"))
    assert bg.day(date(2027, 3, 29)) == "понеделник, 29 март 2027\u202fг."
    assert bg.month(date(2027, 3, 1)).startswith("март 2027")
    assert DayNames(Locale.parse("en")).weekday(date(2027, 3, 29)) == "Mon"


def add_event(client: TestClient, writer: dict[str, str], start: datetime, title: str) -> int:
    to = {"phones": ["+359888123456"]}
    made = client.post(
        "/api/v1/events",
        json={"title": title, "start": start.isoformat(), "recipients": to},
        headers=writer,
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def notices_of(engine: Engine, event_id: int) -> list[Notice]:
    with Session(engine) as session:
        found = session.exec(text("SELECT id FROM notices WHERE anchor_id = :a ORDER BY send_at"),
                             params={"a": event_id}).all()  # type: ignore[call-overload]  # fmt: skip
        return [session.get_one(Notice, row[0]) for row in found]


def has_job(engine: Engine, notice_id: int) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT 1 FROM apscheduler_jobs WHERE id = :id"), {"id": job_id(notice_id)}
        ).first()
    return found is not None


def autumn_change() -> date:
    """A last Sunday of October ahead of today, whenever the test runs."""
    return last_sunday(utcnow().year + 1, 10)


def test_the_week_of_a_clock_change_shows_events_and_reminders_on_local_days(
    client: TestClient, engine: Engine, writer: dict[str, str], provider: dict[str, str]
) -> None:
    sunday = autumn_change()
    # 00:30 on the Sunday the clocks go back is still Saturday in UTC; its reminders are the
    # day before at 18:00 and two hours before: 22:30 on Saturday.
    start = datetime(sunday.year, sunday.month, sunday.day, 0, 30, tzinfo=SOFIA)
    event_id = add_event(client, writer, start, "Преглед при д-р Петрова")
    bill = client.post(
        "/api/v1/bills",
        json={"external_id": "ток-10", "contact": {"name": "Иван", "phone": "+359888765432"},
              "amount": "84.20", "currency": "BGN", "due": sunday.isoformat(), "title": "Ток"},
        headers=writer,
    )  # fmt: skip
    assert bill.status_code == 201, bill.text
    add_user(engine, "ana@clinic.bg", role="viewer")
    sign_in(client, "ana@clinic.bg")
    page = client.get(f"/upcoming?view=week&day={sunday.isoformat()}",
                      headers={"Accept-Language": "bg"})  # fmt: skip
    assert page.status_code == 200
    days = dict(re.findall(r'data-day="([0-9-]+)">(.*?)</section>', page.text, re.S))
    saturday = (sunday - timedelta(days=1)).isoformat()
    assert "Преглед при д-р Петрова" in days[sunday.isoformat()]
    assert "<td>0:30</td>" in days[sunday.isoformat()]
    assert days[saturday].count('class="reminder"') == 2
    assert "18:00" in days[saturday] and "22:30" in days[saturday]
    assert "Напомняне" in page.text and "Събитие" in page.text
    # The bill is due that Sunday, all day, its amount written the Bulgarian way; its reminder
    # of the due day goes at 10:00 on Sofia's clock, after the clocks went back.
    bill_row = re.search(r'<tr class="bill">(.*?)</tr>', days[sunday.isoformat()], re.S)
    assert bill_row is not None and "Ток" in bill_row.group(1) and "84,20" in bill_row.group(1)
    assert "Целодневно" in bill_row.group(1) and "Сметка" in bill_row.group(1)
    assert "<td>10:00</td>" in days[sunday.isoformat()]
    # A viewer sees no cancel button, and the server refuses the cancel anyway.
    assert "/cancel" not in page.text
    first = notices_of(engine, event_id)[0]
    refused = client.post(f"/upcoming/notices/{first.id}/cancel",
                          data={"csrf": csrf(page.text)}, follow_redirects=False)  # fmt: skip
    assert refused.status_code == 403
    assert notices_of(engine, event_id)[0].status == "scheduled"
    # The month shows the counts on the same days, and links to their weeks.
    month = client.get(f"/upcoming?view=month&day={sunday.isoformat()}")
    assert month.status_code == 200
    cells = dict(re.findall(r'data-day="([0-9-]+)">(.*?)</td>', month.text, re.S))
    assert "2 events and bills" in cells[sunday.isoformat()]
    assert "2 reminders" in cells[saturday]
    november = date(sunday.year, 11, 1).isoformat()
    assert f'href="/upcoming?view=month&amp;day={november}" rel="next"' in month.text
    assert f'href="/upcoming?view=week&amp;day={saturday}"' in month.text
    # Another account sees none of it.
    client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    add_user(engine, "boris@bank.bg", role="admin", account="bank-b")
    client.cookies.clear()
    sign_in(client, "boris@bank.bg")
    theirs = client.get(f"/upcoming?view=week&day={sunday.isoformat()}")
    assert "Преглед" not in theirs.text and 'class="reminder"' not in theirs.text


def test_an_operator_cancels_one_planned_reminder(
    client: TestClient, engine: Engine, writer: dict[str, str], provider: dict[str, str]
) -> None:
    sunday = autumn_change()
    start = datetime(sunday.year, sunday.month, sunday.day, 10, 0, tzinfo=SOFIA)
    event_id = add_event(client, writer, start, "Преглед")
    day_before, two_hours = notices_of(engine, event_id)
    assert has_job(engine, day_before.id or 0)
    add_user(engine, "ana@clinic.bg", role="operator")
    sign_in(client, "ana@clinic.bg")
    page = client.get(f"/upcoming?day={sunday.isoformat()}")
    assert f'action="/upcoming/notices/{day_before.id}/cancel"' in page.text
    token = csrf(page.text)
    # Without the form's token: refused, nothing changes.
    forged = client.post(f"/upcoming/notices/{day_before.id}/cancel", data={"csrf": "guess"})
    assert forged.status_code == 403
    done = client.post(
        f"/upcoming/notices/{day_before.id}/cancel",
        data={"csrf": token, "view": "week", "day": sunday.isoformat()},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"/upcoming?view=week&day={sunday.isoformat()}")
    after = [n.status for n in notices_of(engine, event_id)]
    assert after == ["cancelled", "scheduled"]
    assert notices_of(engine, event_id)[0].status_reason == "cancelled in the control panel"
    assert not has_job(engine, day_before.id or 0) and has_job(engine, two_hours.id or 0)
    shown = client.get(done.headers["location"])
    assert "The reminder was cancelled." in shown.text
    assert f'id="notice-{day_before.id}"' not in shown.text
    # Again: it is no longer planned, and the page says so.
    again = client.post(f"/upcoming/notices/{day_before.id}/cancel", data={"csrf": token})
    assert again.status_code == 409 and "no longer planned" in again.text
    # With htmx, the row is swapped for the outcome; the token travels in the header.
    htmx = {"HX-Request": "true", "X-CSRF-Token": token}
    row = client.post(f"/upcoming/notices/{two_hours.id}/cancel", headers=htmx)
    assert row.status_code == 200 and "<html" not in row.text
    assert f'id="notice-{two_hours.id}"' in row.text and "The reminder was cancelled." in row.text
    assert notices_of(engine, event_id)[1].status == "cancelled"
    assert not has_job(engine, two_hours.id or 0)
    again = client.post(f"/upcoming/notices/{two_hours.id}/cancel", headers=htmx)
    assert "no longer planned" in again.text and "<html" not in again.text
    wrong = {"HX-Request": "true", "X-CSRF-Token": "guess"}
    assert client.post(f"/upcoming/notices/{two_hours.id}/cancel", headers=wrong).status_code == 403
    # Another account's reminder is not found, and stays planned.
    later_id = add_event(client, writer, start + timedelta(days=1), "Контролен преглед")
    planned = notices_of(engine, later_id)[0]
    client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    add_user(engine, "boris@bank.bg", role="admin", account="bank-b")
    client.cookies.clear()
    sign_in(client, "boris@bank.bg")
    theirs = client.get("/upcoming")
    other = client.post(f"/upcoming/notices/{planned.id}/cancel", data={"csrf": csrf(theirs.text)})
    assert other.status_code == 404 and "Not found" in other.text
    assert notices_of(engine, later_id)[0].status == "scheduled"
    assert has_job(engine, planned.id or 0)


def test_a_day_that_is_not_one_is_answered_beside_the_picker(
    client: TestClient, engine: Engine
) -> None:
    add_user(engine, "ana@clinic.bg", role="viewer")
    sign_in(client, "ana@clinic.bg")
    bad = client.get("/upcoming?day=31.02.2027", headers={"Accept-Language": "bg"})
    assert bad.status_code == 422
    assert 'aria-invalid="true"' in bad.text and 'id="day-error"' in bad.text
    assert "ГГГГ-ММ-ДД" in bad.text
    assert client.get("/upcoming?view=year").status_code == 422
    assert client.get("/upcoming?view=month&day=2027-03").status_code == 200
