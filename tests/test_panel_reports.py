"""Reports: a month's usage by status, lane and day on the account's clock, the same numbers as
``GET /api/v1/usage``, and the same CSV as the API's."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.accounts.months import Month
from reminders.accounts.usage import Tally, usage, usage_by_day
from reminders.models import Account, Attempt, InboundMessage, Notice
from reminders.settings import Settings
from tests.conftest import DEFAULT_ACCOUNT
from tests.test_panel import add_user, sign_in


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add_notice(
    session: Session,
    account_id: int,
    status: str,
    send_at: datetime,
    attempts: Sequence[tuple[datetime, int, str]] = (),
    priority: str = "bulk",
) -> None:
    notice = Notice(account_id=account_id, key=f"t:{status}:{send_at.isoformat()}:{priority}",
                    kind="message", status=status, phone="+359888123456", text="Здравейте",
                    send_at=send_at, priority=priority)  # fmt: skip
    session.add(notice)
    session.flush()
    for when, segments, outcome in attempts:
        session.add(Attempt(account_id=account_id, notice_id=notice.id or 0, provider="console",
                            status=outcome, segments=segments, submitted_at=when))  # fmt: skip
    session.flush()


def march(engine: Engine, other: int) -> None:
    """March 2027 in Sofia: EET until 03:00 on the 28th, EEST after."""
    with Session(engine) as s:
        # 00:30 on the 28th in Sofia is still the 27th in UTC.
        add_notice(s, DEFAULT_ACCOUNT, "delivered", at("2027-03-27T22:00"),
                   [(at("2027-03-27T22:30"), 2, "delivered")])  # fmt: skip
        add_notice(s, DEFAULT_ACCOUNT, "failed", at("2027-03-10T10:00"),
                   [(at("2027-03-10T10:00"), 1, "failed")])  # fmt: skip
        # Handed over twice: its segments on both days, the message on the latest.
        add_notice(s, DEFAULT_ACCOUNT, "delivered", at("2027-03-05T09:00"),
                   [(at("2027-03-05T09:00"), 2, "sent"), (at("2027-03-06T09:00"), 2, "delivered")],
                   priority="transactional")  # fmt: skip
        # Refused by the gateway on the 8th (no segments), sent again on the 9th.
        refused, again = (
            (at("2027-03-08T10:00"), 1, "failed"),
            (at("2027-03-09T10:00"), 1, "delivered"),
        )
        add_notice(s, DEFAULT_ACCOUNT, "delivered", at("2027-03-08T10:00"), [refused, again])
        # Never handed over: on the day it is due, on Sofia's clock.
        add_notice(s, DEFAULT_ACCOUNT, "scheduled", at("2027-02-28T22:30"))  # 1 March, 00:30
        add_notice(s, DEFAULT_ACCOUNT, "scheduled", at("2027-03-31T21:30"))  # 1 April, 00:30
        s.add(InboundMessage(account_id=DEFAULT_ACCOUNT, from_phone="+359888123456", text="СТОП",
                             provider="console", received_at=at("2027-03-15T08:00")))  # fmt: skip
        add_notice(s, other, "delivered", at("2027-03-12T10:00"),
                   [(at("2027-03-12T10:00"), 5, "delivered")])  # fmt: skip
        s.commit()


def test_the_days_add_up_to_the_month(
    engine: Engine, settings: Settings, provider: dict[str, str], client: TestClient
) -> None:
    other = client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider).json()
    march(engine, int(other["id"]))
    month = Month(2027, 3)
    with Session(engine) as session:
        account = session.get_one(Account, DEFAULT_ACCOUNT)
        (whole,) = usage(session, [account], month, settings.zone)
        days = usage_by_day(session, DEFAULT_ACCOUNT, month, settings.zone)
    assert [d.day for d in days] == [date(2027, 3, n) for n in range(1, 32)]
    by_day = {d.day.day: d for d in days}
    assert by_day[28].cells == {("delivered", "bulk"): Tally(1, 2)}
    assert by_day[27].cells == {}
    assert by_day[10].cells == {("failed", "bulk"): Tally(1, 0)}
    assert by_day[5].cells == {("delivered", "transactional"): Tally(0, 2)}
    assert by_day[6].cells == {("delivered", "transactional"): Tally(1, 2)}
    assert by_day[8].cells == {}
    assert by_day[9].cells == {("delivered", "bulk"): Tally(1, 1)}
    assert by_day[1].cells == {("scheduled", "bulk"): Tally(1, 0)}
    assert by_day[31].cells == {} and by_day[12].cells == {}
    assert by_day[15].received == 1
    summed: dict[tuple[str, str], Tally] = {}
    for day in days:
        for key, tally in day.cells.items():
            summed.setdefault(key, Tally()).add(tally)
    assert {k: t for k, t in summed.items() if t.messages or t.segments} == whole.cells
    assert sum(d.received for d in days) == whole.received == 1


def numbers(html: str) -> dict[str, str]:
    return dict(re.findall(r'id="(total-[a-z]+)">([^<]*)<', html))


def test_the_page_shows_the_apis_numbers_and_its_csv(
    client: TestClient, engine: Engine, provider: dict[str, str], reader: dict[str, str]
) -> None:
    other = client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider).json()
    march(engine, int(other["id"]))
    quota = {"monthly_segments": 1000}
    assert client.patch("/api/v1/accounts/default", json=quota, headers=provider).status_code == 200
    api = client.get("/api/v1/usage?month=2027-03", headers=reader).json()["accounts"][0]
    add_user(engine, "ana@clinic.bg", role="viewer")
    sign_in(client, "ana@clinic.bg")
    page = client.get("/reports?month=2027-03", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert numbers(page.text) == {
        "total-messages": str(api["messages"]),
        "total-segments": str(api["segments"]),
        "total-received": str(api["received"]),
    }
    assert api["messages"] == 5 and api["segments"] == 7  # bank-b's 5 segments are not ours
    assert api["segments_left"] == 993 and 'id="segments-left">993<' in page.text
    for status, tally in api["by_status"].items():
        row = re.search(rf'<tr data-status="{status}">(.*?)</tr>', page.text, re.S)
        assert row is not None
        assert re.findall(r"<td>([^<]*)</td>", row.group(1)) == [
            str(tally["messages"]), str(tally["segments"])]  # fmt: skip
    for lane, tally in api["by_lane"].items():
        row = re.search(rf'<tr data-lane="{lane}">(.*?)</tr>', page.text, re.S)
        assert row is not None and f"<td>{tally['segments']}</td>" in row.group(1)
    day = re.search(r'<tr data-day="2027-03-28">(.*?)</tr>', page.text, re.S)
    assert day is not None
    assert re.findall(r"<td>([^<]*)</td>", day.group(1)) == ["1", "2", "1", "0", "0"]
    assert 'href="/reports?month=2027-04" rel="next"' in page.text
    assert 'href="/reports?month=2027-02" rel="prev"' in page.text
    # The CSV is the API's, byte for byte.
    mine = client.get("/reports/usage.csv?month=2027-03")
    theirs = client.get("/api/v1/reports/usage.csv?month=2027-03", headers=reader)
    assert mine.status_code == 200 and mine.headers["content-type"].startswith("text/csv")
    assert 'filename="usage-2027-03.csv"' in mine.headers["content-disposition"]
    assert mine.content == theirs.content
    assert "bank-b" not in mine.text and "default,2027-03,received,,1,0" in mine.text
    # In Bulgarian, the month and the days in Bulgarian.
    bg = client.get("/reports?month=2027-03", headers={"Accept-Language": "bg"})
    assert "Потребление за март 2027" in bg.text and "По статус" in bg.text


def test_a_month_that_is_not_one_is_answered_beside_the_picker(
    client: TestClient, engine: Engine
) -> None:
    add_user(engine, "ana@clinic.bg", role="viewer")
    sign_in(client, "ana@clinic.bg")
    for wrong in ("2027-13", "март", "2027-3"):
        bad = client.get(f"/reports?month={wrong}", headers={"Accept-Language": "bg"})
        assert bad.status_code == 422, wrong
        assert 'aria-invalid="true"' in bad.text and "ГГГГ-ММ" in bad.text
        assert client.get(f"/reports/usage.csv?month={wrong}").status_code == 422
    assert client.get("/reports").status_code == 200
