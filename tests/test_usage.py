"""Usage per account and month: what a provider bills from, exact on known data."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.accounts import crud
from reminders.accounts.months import Month
from reminders.accounts.quota import used_segments
from reminders.models import Attempt, InboundMessage, Notice
from reminders.schemas.accounts import AccountCreate
from tests.conftest import make_key

SOFIA = ZoneInfo("Europe/Sofia")
Headers = dict[str, str]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- months on the service's clock (pure) -------------------------------------------------


@pytest.mark.parametrize(
    ("month", "start", "end"),
    [
        # Summer time (+03:00) at its start, winter time (+02:00) at its end: the last Sunday
        # of October 2026 is the 25th.
        ("2026-10", "2026-09-30T21:00:00", "2026-10-31T22:00:00"),
        ("2027-03", "2027-02-28T22:00:00", "2027-03-31T21:00:00"),
        ("2026-12", "2026-11-30T22:00:00", "2026-12-31T22:00:00"),
    ],
)
def test_a_month_is_read_on_the_services_clock(month: str, start: str, end: str) -> None:
    assert Month.parse(month).bounds(SOFIA) == (utc(start), utc(end))
    assert str(Month.parse(month)) == month


def test_an_instant_falls_in_the_month_of_the_services_clock() -> None:
    assert Month.of(utc("2026-10-31T21:59:59"), SOFIA) == Month(2026, 10)
    assert Month.of(utc("2026-10-31T22:00:00"), SOFIA) == Month(2026, 11)
    assert Month.of(utc("2026-12-31T22:00:00"), SOFIA).next() == Month(2027, 2)


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "x", "0001-01"]
)
def test_a_bad_month_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="month|year"):
        Month.parse(text)


# --- known data: October 2026 in Sofia ----------------------------------------------------


def account(session: Session, slug: str, **fields: Any) -> int:
    made = crud.create_account(session, AccountCreate(slug=slug, **fields))
    assert made.id is not None
    return made.id


def notice(
    session: Session,
    account_id: int,
    name: str,
    status: str,
    send_at: str,
    *attempts: tuple[str, int, str],
    lane: str = "bulk",
) -> None:
    """A notice and its attempts (status, segments, submitted at), times in UTC."""
    row = Notice(
        account_id=account_id,
        key=f"test:{name}",
        kind="message",
        status=status,
        phone="+359888700001",
        text=name,
        send_at=utc(send_at),
        priority=lane,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    for state, segments, at in attempts:
        session.add(
            Attempt(
                account_id=account_id,
                notice_id=row.id,
                provider="outbox",
                status=state,
                segments=segments,
                submitted_at=utc(at),
            )
        )


def received(session: Session, account_id: int, at: str) -> None:
    session.add(
        InboundMessage(
            account_id=account_id,
            provider="outbox",
            from_phone="+359888700001",
            text="ok",
            received_at=utc(at),
        )
    )


@pytest.fixture
def october(engine: Engine) -> dict[str, int]:
    """Two accounts' notices around October 2026 on Sofia's clock (+03:00 until the 25th,
    then +02:00): October is [2026-09-30T21:00Z, 2026-10-31T22:00Z)."""
    with Session(engine) as session:
        a = account(session, "clinic-a", monthly_segments=20)
        b = account(session, "bank-b")
        # The first instant of October, and the last second of September.
        notice(
            session,
            a,
            "n1",
            "delivered",
            "2026-09-30T20:00:00",
            ("delivered", 2, "2026-09-30T21:00:00"),
        )
        notice(session, a, "n2", "sent", "2026-09-30T20:00:00", ("sent", 4, "2026-09-30T20:59:59"))
        # The last second of October (after the clock went back), and the first of November.
        notice(
            session,
            a,
            "n3",
            "undelivered",
            "2026-10-31T21:59:00",
            ("undelivered", 3, "2026-10-31T21:59:59"),
            lane="transactional",
        )
        notice(
            session,
            a,
            "n4",
            "delivered",
            "2026-10-31T21:59:00",
            ("delivered", 1, "2026-10-31T22:00:00"),
        )
        # Refused by the gateway: a message, no segments.
        notice(
            session, a, "n5", "failed", "2026-10-15T10:00:00", ("failed", 1, "2026-10-15T10:00:00")
        )
        # Failed in October, retried and sent in November: November's, with its segment.
        notice(
            session,
            a,
            "n6",
            "sent",
            "2026-10-31T21:30:00",
            ("failed", 1, "2026-10-31T21:30:00"),
            ("sent", 1, "2026-10-31T22:30:00"),
        )
        # The gateway may have taken it: counted.
        notice(
            session,
            a,
            "n7",
            "unknown",
            "2026-10-10T10:00:00",
            ("unknown", 1, "2026-10-10T10:00:01"),
        )
        # Never handed over: in the month of their send time.
        notice(session, a, "n8", "scheduled", "2026-10-20T10:00:00")
        notice(session, a, "n9", "expired", "2026-10-25T00:30:00")  # the night the clock changes
        notice(session, a, "n10", "failed", "2026-10-05T09:00:00")  # the quota was used up
        notice(session, a, "n11", "scheduled", "2026-10-31T22:00:00")  # 1 November, 00:00
        notice(
            session,
            a,
            "n12",
            "delivered",
            "2026-10-12T08:00:00",
            ("delivered", 2, "2026-10-12T08:00:01"),
            lane="transactional",
        )
        received(session, a, "2026-09-30T21:00:00")
        received(session, a, "2026-10-31T21:59:59")
        received(session, a, "2026-10-31T22:00:00")
        notice(
            session,
            b,
            "b1",
            "delivered",
            "2026-10-10T10:00:00",
            ("delivered", 5, "2026-10-10T10:00:00"),
        )
        session.commit()
        return {"clinic-a": a, "bank-b": b}


CLINIC_OCTOBER = {
    "account": "clinic-a",
    "name": "clinic-a",
    "messages": 8,
    "segments": 8,
    "received": 2,
    "monthly_segments": 20,
    "segments_left": 12,
    "by_status": {
        "delivered": {"messages": 2, "segments": 4},
        "expired": {"messages": 1, "segments": 0},
        "failed": {"messages": 2, "segments": 0},
        "scheduled": {"messages": 1, "segments": 0},
        "undelivered": {"messages": 1, "segments": 3},
        "unknown": {"messages": 1, "segments": 1},
    },
    "by_lane": {
        "bulk": {"messages": 6, "segments": 3},
        "transactional": {"messages": 2, "segments": 5},
    },
    "rows": [
        {"status": "delivered", "lane": "bulk", "messages": 1, "segments": 2},
        {"status": "delivered", "lane": "transactional", "messages": 1, "segments": 2},
        {"status": "expired", "lane": "bulk", "messages": 1, "segments": 0},
        {"status": "failed", "lane": "bulk", "messages": 2, "segments": 0},
        {"status": "scheduled", "lane": "bulk", "messages": 1, "segments": 0},
        {"status": "undelivered", "lane": "transactional", "messages": 1, "segments": 3},
        {"status": "unknown", "lane": "bulk", "messages": 1, "segments": 1},
    ],
}


def test_an_accounts_month_is_exact(
    client: TestClient, engine: Engine, october: dict[str, int]
) -> None:
    key = make_key(engine, "read", "clinic-a")
    got = client.get("/api/v1/usage?month=2026-10", headers=key)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["month"], body["timezone"]) == ("2026-10", "Europe/Sofia")
    assert body["start"] == "2026-10-01T00:00:00+03:00"
    assert body["end"] == "2026-11-01T00:00:00+02:00"
    assert body["accounts"] == [CLINIC_OCTOBER]  # its own alone

    # What the quota counts for the month is what the report bills.
    with Session(engine) as session:
        used = used_segments(session, [october["clinic-a"]], *Month(2026, 10).bounds(SOFIA))
    assert used == {october["clinic-a"]: CLINIC_OCTOBER["segments"]}

    november = client.get("/api/v1/usage?month=2026-11", headers=key).json()["accounts"][0]
    assert november["rows"] == [
        {"status": "delivered", "lane": "bulk", "messages": 1, "segments": 1},
        {"status": "scheduled", "lane": "bulk", "messages": 1, "segments": 0},
        {"status": "sent", "lane": "bulk", "messages": 1, "segments": 1},
    ]
    assert november["received"] == 1
    september = client.get("/api/v1/usage?month=2026-09", headers=key).json()["accounts"][0]
    assert (september["messages"], september["segments"], september["received"]) == (1, 4, 0)


def test_a_provider_sees_every_account_or_the_one_it_names(
    client: TestClient, engine: Engine, october: dict[str, int]
) -> None:
    provider = make_key(engine, "provider")
    every = client.get("/api/v1/usage?month=2026-10", headers=provider).json()["accounts"]
    assert [a["account"] for a in every] == ["bank-b", "clinic-a", "default"]
    assert every[1] == CLINIC_OCTOBER
    assert (every[0]["messages"], every[0]["segments"], every[0]["segments_left"]) == (1, 5, None)
    assert (every[2]["messages"], every[2]["segments"], every[2]["rows"]) == (0, 0, [])

    named = client.get(
        "/api/v1/usage?month=2026-10", headers={**provider, "Reminders-Account": "bank-b"}
    )
    assert [a["account"] for a in named.json()["accounts"]] == ["bank-b"]
    # An account's key cannot borrow another's name.
    mine = make_key(engine, "read", "clinic-a")
    borrowed = client.get("/api/v1/usage", headers={**mine, "Reminders-Account": "bank-b"})
    assert borrowed.status_code == 403


def test_the_csv_has_a_row_per_account_status_and_lane(
    client: TestClient, engine: Engine, october: dict[str, int]
) -> None:
    provider = make_key(engine, "provider")
    got = client.get("/api/v1/reports/usage.csv?month=2026-10", headers=provider)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/csv")
    assert 'filename="usage-2026-10.csv"' in got.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows == [
        ["account", "month", "status", "lane", "messages", "segments"],
        ["bank-b", "2026-10", "delivered", "bulk", "1", "5"],
        ["bank-b", "2026-10", "received", "", "0", "0"],
        ["clinic-a", "2026-10", "delivered", "bulk", "1", "2"],
        ["clinic-a", "2026-10", "delivered", "transactional", "1", "2"],
        ["clinic-a", "2026-10", "expired", "bulk", "1", "0"],
        ["clinic-a", "2026-10", "failed", "bulk", "2", "0"],
        ["clinic-a", "2026-10", "scheduled", "bulk", "1", "0"],
        ["clinic-a", "2026-10", "undelivered", "transactional", "1", "3"],
        ["clinic-a", "2026-10", "unknown", "bulk", "1", "1"],
        ["clinic-a", "2026-10", "received", "", "2", "0"],
        ["default", "2026-10", "received", "", "0", "0"],
    ]
    mine = client.get(
        "/api/v1/reports/usage.csv?month=2026-10", headers=make_key(engine, "read", "bank-b")
    )
    assert [r[0] for r in csv.reader(io.StringIO(mine.text))][1:] == ["bank-b", "bank-b"]


@pytest.mark.parametrize("path", ["/api/v1/usage", "/api/v1/reports/usage.csv"])
@pytest.mark.parametrize("month", ["2026-13", "2026-1", "November", "2026-11-01"])
def test_a_bad_month_is_a_422_naming_it(
    client: TestClient, reader: Headers, path: str, month: str
) -> None:
    got = client.get(path, params={"month": month}, headers=reader)
    assert got.status_code == 422, got.text
    assert [e["field"] for e in got.json()["errors"]] == ["month"]


def test_the_month_defaults_to_the_current_one(client: TestClient, reader: Headers) -> None:
    from reminders.db import utcnow

    before = str(Month.of(utcnow(), SOFIA))
    got = client.get("/api/v1/usage", headers=reader).json()
    assert got["month"] in (before, str(Month.of(utcnow(), SOFIA)))
    assert [a["account"] for a in got["accounts"]] == ["default"]


def test_what_goes_out_is_what_the_month_reports(client: TestClient, engine: Engine) -> None:
    """Through the service itself: posted, fired by its scheduler, counted."""
    from tests.conftest import wait_for

    with Session(engine) as session:
        account(session, "clinic-a", monthly_segments=10)
        session.commit()
    key = make_key(engine, "write", "clinic-a")
    body = {"to": {"phones": ["0888 700 101", "0888 700 102"]}, "text": "x" * 200}
    posted = client.post("/api/v1/messages", json=body, headers=key)
    assert posted.status_code == 201, posted.text
    message_id = posted.json()["id"]

    def sent() -> bool:
        got = client.get(f"/api/v1/messages/{message_id}", headers=key).json()
        return all(n["status"] == "sent" for n in got["notices"])

    wait_for(sent, what="the message to go out")
    [mine] = client.get("/api/v1/usage", headers=key).json()["accounts"]
    assert mine["rows"] == [{"status": "sent", "lane": "bulk", "messages": 2, "segments": 4}]
    assert mine["segments_left"] == 6
    refused = client.post("/api/v1/messages", json={**body, "text": "x" * 500}, headers=key)
    assert refused.status_code == 422 and "6 of its 10" in refused.json()["detail"]
