"""An account's monthly quota of segments: refused at the API, a hard stop when firing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders.accounts import crud
from reminders.accounts.months import Month
from reminders.accounts.quota import QuotaGuard, allot, used_segments
from reminders.db import utcnow
from reminders.messages import create_message
from reminders.models import Attempt, Notice, NoticeStatus
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.firing import fire_many
from reminders.schemas.accounts import AccountCreate, AccountUpdate
from reminders.schemas.messages import MessageCreate
from reminders.sender.outbox import OutboxSender
from reminders.settings import Settings
from tests.conftest import account_session, fall_due, make_key

SOFIA = ZoneInfo("Europe/Sofia")
ONE = "Hello"  # one GSM-7 segment
TWO = "x" * 200  # two GSM-7 segments (153 + 47)
CYRILLIC = "Здравейте, часът ви при д-р Иванова е утре в 10:30, кабинет 5. Моля, елате навреме."


def new_account(engine: Engine, slug: str, **fields: Any) -> int:
    with Session(engine) as session:
        account = crud.create_account(session, AccountCreate(slug=slug, **fields))
        session.commit()
        assert account.id is not None
        return account.id


def spent(
    engine: Engine,
    account_id: int,
    segments: int,
    *,
    at: datetime | None = None,
    status: str = "delivered",
) -> None:
    """An attempt of ``segments`` already handed over for the account (a notice of its own)."""
    at = at or utcnow()
    with Session(engine) as session:
        notice = Notice(
            account_id=account_id,
            key=f"spent:{at.timestamp()}:{segments}:{status}",
            kind="message",
            status=status,
            phone="+359888000000",
            text="earlier",
            send_at=at,
        )
        session.add(notice)
        session.flush()
        assert notice.id is not None
        session.add(
            Attempt(
                account_id=account_id,
                notice_id=notice.id,
                provider="outbox",
                status=status,
                segments=segments,
                submitted_at=at,
            )
        )
        session.commit()


def messages(
    engine: Engine, account_id: int, texts: list[str], phone: str = "0888 600 {:03d}"
) -> list[int]:
    """One message per text, one recipient each, due now; their notices' ids in order."""
    ids = []
    for index, body in enumerate(texts):
        data = MessageCreate.model_validate({"to": {"phones": [phone.format(index)]}, "text": body})
        with account_session(engine, account_id, expire_on_commit=False) as session:
            _, [notice] = create_message(session, None, data, region="BG")
            commit_and_schedule(session)
        assert notice.id is not None
        fall_due(engine, notice.id)
        ids.append(notice.id)
    return ids


def notice(engine: Engine, notice_id: int) -> Notice:
    with Session(engine) as session:
        return session.get_one(Notice, notice_id)


def attempts(engine: Engine, notice_id: int) -> int:
    with Session(engine) as session:
        return len(session.exec(select(Attempt).where(Attempt.notice_id == notice_id)).all())


# --- the API ------------------------------------------------------------------------------


def post(client: TestClient, key: dict[str, str], body: str, phones: list[str], **more: Any) -> Any:
    return client.post(
        "/api/v1/messages",
        json={
            "to": {"phones": phones},
            "text": body,
            "send_at": (utcnow() + timedelta(minutes=5)).isoformat(),
            **more,
        },
        headers=key,
    )


def test_a_message_past_the_quota_is_refused_saying_what_is_left(
    client: TestClient, engine: Engine
) -> None:
    clinic = new_account(engine, "clinic-a", monthly_segments=10)
    key = make_key(engine, "write", "clinic-a")
    spent(engine, clinic, 7)
    spent(engine, clinic, 5, status="failed")  # refused by the gateway: not counted
    spent(engine, clinic, 100, at=Month.of(utcnow(), SOFIA).start(SOFIA) - timedelta(seconds=1))

    # Two segments to each of two recipients: 4 needed, 3 left.
    refused = post(client, key, TWO, ["0888 600 101", "0888 600 102"])
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "text"
    assert "needs 4 segments (2 per SMS to 2 recipients)" in error["message"]
    assert "3 of its 10 monthly segments left" in error["message"]
    with Session(engine) as session:  # nothing was written
        assert not session.exec(select(Notice).where(Notice.phone == "+359888600101")).all()

    # Three one-segment SMS fit exactly.
    made = post(client, key, ONE, ["0888 600 101", "0888 600 102", "0888 600 103"])
    assert made.status_code == 201, made.text


def test_the_api_composes_the_text_as_the_sender_will(client: TestClient, engine: Engine) -> None:
    """Cyrillic is UCS-2 (70 a segment): 84 characters are 2 segments, 1 once transliterated."""
    new_account(engine, "clinic-a", monthly_segments=1)
    key = make_key(engine, "write", "clinic-a")
    refused = post(client, key, CYRILLIC, ["0888 600 201"])
    assert refused.status_code == 422 and "needs 2 segments" in refused.json()["detail"]
    made = post(client, key, CYRILLIC, ["0888 600 201"], transliterate=True)
    assert made.status_code == 201, made.text


def test_opted_out_recipients_and_accounts_without_a_quota_cost_nothing(
    client: TestClient, engine: Engine, writer: dict[str, str]
) -> None:
    new_account(engine, "clinic-a", monthly_segments=1)
    key = make_key(engine, "write", "clinic-a")
    contact = client.post(
        "/api/v1/contacts",
        json={"name": "Иван", "phone": "0888 600 301", "opted_out": True},
        headers=key,
    )
    assert contact.status_code == 201, contact.text
    made = post(client, key, ONE, ["0888 600 301", "0888 600 302"])
    assert made.status_code == 201, made.text
    assert sorted(n["status"] for n in made.json()["notices"]) == ["scheduled", "suppressed"]
    # The default account has no quota.
    assert (
        post(client, writer, TWO * 8, [f"0888 600 {i:03d}" for i in range(400, 450)]).status_code
        == 201
    )


def test_a_message_for_a_later_month_counts_against_that_month(
    client: TestClient, engine: Engine
) -> None:
    clinic = new_account(engine, "clinic-a", monthly_segments=2)
    key = make_key(engine, "write", "clinic-a")
    spent(engine, clinic, 2)
    now = post(client, key, ONE, ["0888 600 501"])
    assert now.status_code == 422 and "0 of its 2" in now.json()["detail"]
    following = Month.of(utcnow(), SOFIA).next().start(SOFIA) + timedelta(days=2)
    later = post(client, key, ONE, ["0888 600 501"], send_at=following.isoformat())
    assert later.status_code == 201, later.text


# --- firing -------------------------------------------------------------------------------


def test_firing_stops_at_the_quota_and_says_so(engine: Engine, settings: Settings) -> None:
    clinic = new_account(engine, "clinic-a", monthly_segments=6)
    spent(engine, clinic, 1)
    # Passed the API's check one by one (5 left each time), then all fall due at once.
    ids = messages(engine, clinic, [TWO, TWO, TWO, ONE])
    more, last = messages(engine, clinic, [ONE, ONE], phone="0888 602 {:03d}")
    other = messages(engine, 1, [TWO], phone="0888 601 {:03d}")  # the default account: none

    got = fire_many(engine, OutboxSender(settings, engine), ids + other, settings=settings)

    # 1 + 2 + 2 = 5 spent; the third needs 2 and 1 is left: it fails, the one-segment SMS fits.
    assert got == {
        ids[0]: "sent",
        ids[1]: "sent",
        ids[2]: "failed",
        ids[3]: "sent",
        other[0]: "sent",
    }
    failed = notice(engine, ids[2])
    assert failed.status_reason is not None
    assert "quota" in failed.status_reason
    assert "5 of its 6 segments" in failed.status_reason and "needs 2" in failed.status_reason
    assert attempts(engine, ids[2]) == 0  # nothing handed over, nothing to bill
    with engine.connect() as conn:
        outbox = conn.execute(text("SELECT count(*) FROM outbox")).scalar()
    assert outbox == 4
    with Session(engine) as session:
        month = Month.of(utcnow(), settings.zone).bounds(settings.zone)
        assert used_segments(session, [clinic], *month) == {clinic: 6}

    # Used up: the next one fails too; a new quota lets the one after it out.
    assert fire_many(engine, OutboxSender(settings, engine), [more], settings=settings) == {
        more: "failed"
    }
    with Session(engine) as session:
        crud.update_account(session, "clinic-a", AccountUpdate(monthly_segments=7))
        session.commit()
    assert fire_many(engine, OutboxSender(settings, engine), [last], settings=settings) == {
        last: "sent"
    }


def test_a_suspended_accounts_notices_wait_before_the_quota_is_looked_at(
    engine: Engine, settings: Settings
) -> None:
    clinic = new_account(engine, "clinic-a")
    [held] = messages(engine, clinic, [ONE])
    with Session(engine) as session:
        update = AccountUpdate(status="suspended", monthly_segments=0)
        crud.update_account(session, "clinic-a", update)
        session.commit()
    assert fire_many(engine, OutboxSender(settings, engine), [held], settings=settings) == {}
    assert notice(engine, held).status == NoticeStatus.due


# --- the guard: two lanes never spend the same segments ----------------------------------


@pytest.fixture
def guarded(engine: Engine) -> Iterator[tuple[int, QuotaGuard, Session]]:
    clinic = new_account(engine, "clinic-a", monthly_segments=5)
    with Session(engine) as session:
        yield clinic, QuotaGuard(), session


def test_what_one_lane_has_claimed_counts_for_the_other(
    engine: Engine, guarded: tuple[int, QuotaGuard, Session]
) -> None:
    clinic, guard, session = guarded
    month = Month.of(utcnow(), SOFIA).bounds(SOFIA)
    quotas = {clinic: 5}
    first, refused = guard.reserve(session, [(1, clinic, 3)], quotas, month)
    assert refused == {}
    # The other lane, while the first batch is on its way: 2 left.
    second, refused = guard.reserve(session, [(2, clinic, 3), (3, clinic, 2)], quotas, month)
    assert refused == {2: 2}
    second.release()

    # The first batch is recorded (3 segments) and its reservation given back in one step.
    first.settle(lambda: spent(engine, clinic, 3))
    third, refused = guard.reserve(session, [(4, clinic, 3), (5, clinic, 2)], quotas, month)
    assert refused == {4: 2}
    third.release()

    # A notice reserved but not claimed (another process had it) gives its segments back.
    fourth, _ = guard.reserve(session, [(6, clinic, 1), (7, clinic, 1)], quotas, month)
    fourth.keep([6])
    fifth, refused = guard.reserve(session, [(8, clinic, 1), (9, clinic, 1)], quotas, month)
    assert refused == {9: 0}


@pytest.mark.parametrize(
    ("wanted", "left", "fits", "refused"),
    [
        ([(1, 7, 2), (2, 7, 2), (3, 7, 1)], {7: 3}, {1: (7, 2), 3: (7, 1)}, {2: 1}),
        ([(1, 7, 2), (2, 8, 9)], {7: 1}, {}, {1: 1}),  # account 8 has no quota
        ([(1, 7, 1)], {7: -4}, {}, {1: 0}),  # over already (a quota lowered)
        ([(1, 7, 0)], {7: 0}, {1: (7, 0)}, {}),
    ],
)
def test_allot(
    wanted: list[tuple[int, int, int]],
    left: dict[int, int],
    fits: dict[int, tuple[int, int]],
    refused: dict[int, int],
) -> None:
    assert allot(wanted, left) == (fits, refused)
