"""The panel's notice list and notice page: filters, keyset pages, bulk cancel, CSV, timeline."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.db import utcnow
from reminders.models import Attempt, Notice
from reminders.panel.notice_list import Filters, list_page, parse_filters
from reminders.settings import Settings, load_settings
from tests.conftest import DEFAULT_ACCOUNT
from tests.test_panel import add_notices, add_user, csrf, sign_in

SOFIA = ZoneInfo("Europe/Sofia")
Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Pinned: the "moved out of quiet hours" test depends on them, and the others on nothing.
    return load_settings(database_url=database_url, quiet_hours="21:00-08:00")


def shown_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<a href="/notices/(\d+)">', html)]


def ids_of(engine: Engine, **where: str) -> list[int]:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "1 = 1"
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id FROM notices WHERE {clause} ORDER BY id"), where)
        return [int(r[0]) for r in rows]


@pytest.fixture
def operator(client: TestClient, engine: Engine) -> TestClient:
    add_user(engine, "ana@clinic.bg", role="operator")
    assert sign_in(client, "ana@clinic.bg").status_code == 303
    return client


def test_the_list_is_the_accounts_newest_first(
    operator: TestClient, engine: Engine, provider: Headers
) -> None:
    made = operator.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    now = utcnow()
    add_notices(engine, DEFAULT_ACCOUNT, {"delivered": 1}, now - timedelta(hours=2))
    add_notices(engine, DEFAULT_ACCOUNT, {"failed": 1}, now - timedelta(hours=1))
    add_notices(engine, int(made.json()["id"]), {"failed": 3}, now)
    page = operator.get("/notices", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    mine = ids_of(engine, account_id=str(DEFAULT_ACCOUNT))
    assert sorted(shown_ids(page.text)) == mine and len(mine) == 2
    assert shown_ids(page.text) == sorted(mine, reverse=True)  # the failed one came later
    # Another account's notice is not found, as if it did not exist.
    theirs = ids_of(engine, account_id=str(made.json()["id"]))[0]
    assert operator.get(f"/notices/{theirs}").status_code == 404
    assert operator.get("/notices/abc").status_code == 404
    assert operator.get("/notices/99999999999").status_code == 404


def test_filters_by_status_lane_kind_day_and_what_it_is_about(
    operator: TestClient, engine: Engine
) -> None:
    now = utcnow()
    add_notices(engine, DEFAULT_ACCOUNT, {"failed": 2, "delivered": 1}, now - timedelta(minutes=5))
    add_notices(engine, DEFAULT_ACCOUNT, {"sent": 1}, now - timedelta(days=3))  # no report by now
    add_notices(engine, DEFAULT_ACCOUNT, {"sent": 1}, now - timedelta(seconds=30))  # waiting
    failed = ids_of(engine, status="failed")
    old_sent = min(ids_of(engine, status="sent"))

    def shown(query: str) -> list[int]:
        page = operator.get(f"/notices?{query}")
        assert page.status_code == 200, page.text
        return sorted(shown_ids(page.text))

    assert shown("status=failed") == failed
    assert shown("status=failed&day=today") == failed
    assert shown("status=no_report") == [old_sent]
    assert shown("status=sent") == [max(ids_of(engine, status="sent"))]
    assert shown("kind=message&status=delivered") == ids_of(engine, status="delivered")
    assert shown("kind=bill_due") == []
    assert shown("lane=transactional") == []
    three_days_ago = (now - timedelta(days=3)).astimezone(SOFIA).date().isoformat()
    assert shown(f"since={three_days_ago}&until={three_days_ago}") == [old_sent]
    phone = operator.get(f"/notices/{failed[0]}").text
    number = re.search(r"\+3598886\d{5}", phone)
    assert number is not None
    assert failed[0] in shown(f"phone=%2B{number.group(0)[1:]}")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=lost", "status"),
        ("kind=sms", "kind"),
        ("lane=fast", "lane"),
        ("since=2026-13-01", "since"),
        ("since=2026-12-05&until=2026-12-01", "until"),
        ("contact=-1", "contact"),
        ("group=abc", "group"),
        ("after=not-a-cursor", "after"),
    ],
)
def test_a_bad_filter_says_which_and_is_not_a_500(
    operator: TestClient, query: str, field: str
) -> None:
    page = operator.get(f"/notices?{query}")
    assert page.status_code == 422
    assert f"This filter cannot be used: {field}" in page.text


def test_keyset_pages_cover_every_notice_once(operator: TestClient, engine: Engine) -> None:
    at = utcnow() - timedelta(hours=1)
    add_notices(engine, DEFAULT_ACCOUNT, {"delivered": 60}, at)  # the same send time: ids decide
    add_notices(engine, DEFAULT_ACCOUNT, {"failed": 60}, at - timedelta(minutes=1))
    seen: list[int] = []
    url = "/notices"
    pages = 0
    while url:
        page = operator.get(url)
        assert page.status_code == 200
        seen += shown_ids(page.text)
        pages += 1
        found = re.search(r'<a href="(/notices\?[^"]*after=[^"]+)" rel="next">', page.text)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert pages == 3
    assert sorted(seen) == ids_of(engine) and len(seen) == len(set(seen)) == 120
    # The filter is kept from page to page.
    first = operator.get("/notices?status=failed")
    assert "status=failed" in re.search(r'href="([^"]*)" rel="next"', first.text).group(1)  # type: ignore[union-attr]


def test_list_page_keeps_its_order_with_equal_send_times(engine: Engine) -> None:
    at = datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # the night Sofia's clocks go forward
    add_notices(engine, DEFAULT_ACCOUNT, {"scheduled": 7}, at)
    with Session(engine) as db:
        first = list_page(db, Filters(), zone=SOFIA, dlr_timeout=timedelta(hours=1), limit=3)
        second = list_page(
            db, Filters(), zone=SOFIA, dlr_timeout=timedelta(hours=1), limit=3,
            after=first.next_cursor,
        )  # fmt: skip
    ids = [n.id for n in first.notices + second.notices]
    assert ids == sorted(ids_of(engine), reverse=True)[:6]
    # A local day across the change is 23 hours; 03:30 Sofia on that night is 00:30 UTC.
    day = parse_filters({"since": ["2027-03-28"], "until": ["2027-03-28"]}, at.date())
    with Session(engine) as db:
        assert len(list_page(db, day, zone=SOFIA, dlr_timeout=timedelta(hours=1)).notices) == 7


def schedule_messages(client: TestClient, writer: Headers, count: int) -> int:
    later = (datetime.now(SOFIA) + timedelta(days=2)).replace(hour=12, minute=0, microsecond=0)
    made = client.post(
        "/api/v1/messages",
        headers=writer,
        json={
            "to": {"phones": [f"+35988877{i:04d}" for i in range(count)]},
            "text": "Утре няма ток от 9 до 12 ч.",
            "send_at": later.isoformat(),
        },
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def jobs(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT id FROM apscheduler_jobs"))}


def test_an_operator_cancels_the_selected_scheduled_notices(
    operator: TestClient, engine: Engine, writer: Headers
) -> None:
    message = schedule_messages(operator, writer, 3)
    add_notices(engine, DEFAULT_ACCOUNT, {"delivered": 1}, utcnow())
    scheduled = ids_of(engine, status="scheduled")
    delivered = ids_of(engine, status="delivered")
    assert {f"notice:{i}" for i in scheduled} <= jobs(engine)
    page = operator.get(f"/notices?message={message}")
    assert sorted(shown_ids(page.text)) == scheduled
    done = operator.post(
        "/notices/cancel",
        data={
            "csrf": csrf(page.text),
            "notice": [str(scheduled[0]), str(scheduled[1]), str(delivered[0]), "99999"],
            "back": f"message={message}",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/notices?message={message}&cancelled=2"
    assert ids_of(engine, status="cancelled") == scheduled[:2]
    assert ids_of(engine, status="delivered") == delivered  # a sent notice stays as it was
    left = jobs(engine)
    assert f"notice:{scheduled[0]}" not in left and f"notice:{scheduled[2]}" in left
    shown = operator.get(done.headers["location"])
    assert "2 notices cancelled." in shown.text
    # On its own page, the reason and the cancel button for what is still scheduled.
    detail = operator.get(f"/notices/{scheduled[0]}", headers={"Accept-Language": "en"})
    assert "cancelled in the control panel" in detail.text
    assert "Cancel this notice" in operator.get(f"/notices/{scheduled[2]}").text


def test_a_viewer_sees_but_cannot_cancel(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    schedule_messages(client, writer, 1)
    add_user(engine, "view@clinic.bg", role="viewer")
    sign_in(client, "view@clinic.bg")
    page = client.get("/notices")
    assert page.status_code == 200 and 'name="notice"' not in page.text
    scheduled = ids_of(engine, status="scheduled")
    refused = client.post(
        "/notices/cancel", data={"csrf": csrf(page.text), "notice": [str(scheduled[0])]}
    )
    assert refused.status_code == 403
    assert ids_of(engine, status="scheduled") == scheduled


def test_cancel_needs_the_csrf_token(operator: TestClient, engine: Engine, writer: Headers) -> None:
    schedule_messages(operator, writer, 1)
    scheduled = ids_of(engine, status="scheduled")
    refused = operator.post("/notices/cancel", data={"notice": [str(scheduled[0])]})
    assert refused.status_code == 403
    assert ids_of(engine, status="scheduled") == scheduled


def test_the_csv_is_the_current_filter(operator: TestClient, engine: Engine) -> None:
    at = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    add_notices(engine, DEFAULT_ACCOUNT, {"failed": 2, "delivered": 3}, at)
    got = operator.get("/notices.csv?status=failed")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert sorted(int(r["id"]) for r in rows) == ids_of(engine, status="failed")
    assert {r["send_at"] for r in rows} == {"2026-11-20T10:15:00+02:00"}  # Sofia's clock
    assert operator.get("/notices.csv?status=lost").status_code == 422


def test_a_notice_page_tells_its_story(operator: TestClient, engine: Engine) -> None:
    at = utcnow() - timedelta(minutes=10)
    add_notices(engine, DEFAULT_ACCOUNT, {"undelivered": 1}, at)
    notice_id = ids_of(engine)[0]
    with Session(engine) as db:
        db.add(Attempt(account_id=DEFAULT_ACCOUNT, notice_id=notice_id, provider="kannel",
                       provider_message_id="k-77", status="undelivered", error_code="0x0b",
                       error="absent subscriber", segments=1, encoding="ucs2",
                       submitted_at=at, delivered_at=at + timedelta(seconds=20)))  # fmt: skip
        notice = db.get(Notice, notice_id)
        assert notice is not None
        notice.status_reason = "the operator could not deliver it"
        db.add(notice)
        db.commit()
    page = operator.get(f"/notices/{notice_id}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    words = ("Planned", "Due", "Handed to the gateway", "Delivery report", "absent subscriber")
    order = [page.text.index(word) for word in words]
    assert order == sorted(order)
    assert "k-77" in page.text and "0x0b" in page.text
    assert "the operator could not deliver it" in page.text
    bg = operator.get(f"/notices/{notice_id}", headers={"Accept-Language": "bg"})
    assert "Отчет за доставка" in bg.text


def test_the_page_says_a_reminder_was_moved_out_of_quiet_hours(
    operator: TestClient, engine: Engine, writer: Headers
) -> None:
    # Two hours before 09:00 is 07:00, inside 21:00-08:00: sent the evening before instead.
    day = (datetime.now(SOFIA) + timedelta(days=5)).date()
    start = datetime(day.year, day.month, day.day, 9, 0)
    made = operator.post(
        "/api/v1/events",
        headers=writer,
        json={
            "title": "Д-р Петрова",
            "start": start.isoformat(timespec="minutes"),
            "timezone": "Europe/Sofia",
            "recipients": {"phones": ["0888 700 001"]},
        },
    )
    assert made.status_code == 201, made.text
    second = next(n for n in made.json()["notices"] if n["step"] == 1)
    page = operator.get(f"/notices/{second['id']}", headers={"Accept-Language": "en"})
    assert "step 2 of the policy appointment" in page.text
    assert "Moved:" in page.text and "quiet hours" in page.text
    first = next(n for n in made.json()["notices"] if n["step"] == 0)
    assert "Moved:" not in operator.get(f"/notices/{first['id']}").text


@pytest.mark.parametrize(
    ("status", "reason", "error_code", "english", "bulgarian"),
    [
        ("suppressed", "the contact opted out", None, "the recipient had opted out",
         "получателят се е отказал"),
        ("failed", "the account's monthly quota is used up: 100 of its 100 segments", None,
         "monthly quota was used up", "месечната квота"),
        ("failed", "'name' is undefined", "template", "its template could not be filled in",
         "шаблонът му"),
        ("expired", "its time had passed when it was planned", None, "its time had passed",
         "часът му е минал"),
    ],
)  # fmt: skip
def test_a_notice_that_did_not_go_says_why_in_words(
    operator: TestClient,
    engine: Engine,
    status: str,
    reason: str,
    error_code: str | None,
    english: str,
    bulgarian: str,
) -> None:
    add_notices(engine, DEFAULT_ACCOUNT, {status: 1}, utcnow() - timedelta(minutes=1))
    notice_id = ids_of(engine)[0]
    with Session(engine) as db:
        notice = db.get(Notice, notice_id)
        assert notice is not None
        notice.status_reason = reason
        db.add(notice)
        if error_code:
            db.add(Attempt(account_id=DEFAULT_ACCOUNT, notice_id=notice_id, provider="outbox",
                           status="failed", error_code=error_code, error=reason))  # fmt: skip
        db.commit()
    en = operator.get(f"/notices/{notice_id}", headers={"Accept-Language": "en"})
    assert english in en.text and reason.replace("'", "&#39;") in en.text
    bg = operator.post("/language", data={"lang": "bg", "csrf": csrf(en.text),
                                          "next": f"/notices/{notice_id}"})  # fmt: skip
    assert bulgarian in bg.text


def test_an_operator_cancels_a_whole_campaign_after_seeing_how_many(
    operator: TestClient, engine: Engine, writer: Headers
) -> None:
    campaign = schedule_messages(operator, writer, 5)
    other = schedule_messages(operator, writer, 2)
    add_notices(engine, DEFAULT_ACCOUNT, {"delivered": 1}, utcnow())
    confirm = operator.get(f"/notices/cancel-all?message={campaign}")
    assert confirm.status_code == 200
    assert "This cancels 5 scheduled notices" in confirm.text
    done = operator.post(
        "/notices/cancel-all",
        data={"csrf": csrf(confirm.text), "back": f"message={campaign}"},
        follow_redirects=False,
    )
    assert done.headers["location"] == f"/notices?message={campaign}&cancelled=5"
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT message_id, status, count(*) FROM notices GROUP BY message_id, status")
        ).all()
    assert {(m, s): n for m, s, n in rows} == {
        (campaign, "cancelled"): 5,
        (other, "scheduled"): 2,
        (None, "delivered"): 1,
    }
    left = jobs(engine)
    assert not any(f"notice:{i}" in left for i in ids_of(engine, status="cancelled"))
    assert {f"notice:{i}" for i in ids_of(engine, status="scheduled")} <= left
    # Nothing left to cancel; and a bad filter is refused, not widened to everything.
    assert "no scheduled notices" in operator.get(f"/notices/cancel-all?message={campaign}").text
    bad = operator.post(
        "/notices/cancel-all", data={"csrf": csrf(confirm.text), "back": "status=lost"}
    )
    assert bad.status_code == 422
    assert ids_of(engine, status="scheduled") != []


def test_a_viewer_cannot_cancel_a_campaign(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    schedule_messages(client, writer, 2)
    add_user(engine, "view@clinic.bg", role="viewer")
    sign_in(client, "view@clinic.bg")
    assert client.get("/notices/cancel-all").status_code == 403
    page = client.get("/notices")
    assert "cancel-all" not in page.text
    refused = client.post("/notices/cancel-all", data={"csrf": csrf(page.text), "back": ""})
    assert refused.status_code == 403
    assert len(ids_of(engine, status="scheduled")) == 2
