"""Accounts share the bulk lane by their ``rate_share``: one account's backlog does not hold
back another's notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.models import Account, Attempt, Notice
from reminders.process import Process
from reminders.scheduler.claims import LanePicker, waiting_accounts
from reminders.scheduler.shares import AccountShares, Turns
from reminders.settings import Settings, load_settings
from tests.conftest import wait_for

# --- the turns, in memory ---------------------------------------------------------------------


def test_weights_three_to_one_give_three_of_every_four_slots() -> None:
    turns: Turns[str] = Turns()
    for _ in range(4):
        assert turns.allot(4, ["utility", "clinic"], {"utility": 3, "clinic": 1}) == {
            "utility": 3,
            "clinic": 1,
        }
    # Alone, an account has the whole batch.
    assert turns.allot(16, ["clinic"], {"utility": 3, "clinic": 1}) == {"clinic": 16}
    assert turns.allot(0, ["clinic", "utility"]) == {}
    assert turns.allot(5, []) == {}


def test_small_batches_share_as_fairly_as_large_ones() -> None:
    """The credits carry from one batch to the next: one slot at a time still gives 3:1."""
    turns: Turns[int] = Turns()
    firsts = [next(iter(turns.allot(1, [1, 2], {1: 3, 2: 1}))) for _ in range(40)]
    for start in range(0, 40, 4):
        assert firsts[start : start + 4].count(1) == 3, firsts


def test_equal_or_unknown_weights_alternate_and_a_returning_account_starts_even() -> None:
    turns: Turns[int | None] = Turns()
    assert [next(iter(turns.allot(1, [1, None], {}))) for _ in range(4)] == [1, None, 1, None]
    # A long run alone earns an account nothing; one that stops waiting is forgotten.
    for _ in range(30):
        turns.allot(1, [1], {1: 1, 2: 1})
    assert [next(iter(turns.allot(1, [1, 2], {1: 1, 2: 1}))) for _ in range(4)] == [1, 2, 1, 2]


# --- the claims: who the bulk lane picks from the table ---------------------------------------


def post_due(client: TestClient, keys: dict[str, str], base: int, count: int) -> list[int]:
    posted = client.post(
        "/api/v1/messages",
        headers=keys,
        json={"to": {"phones": [f"+35988862{base + i:04d}" for i in range(count)]}, "text": "b"},
    )
    assert posted.status_code == 201, posted.text
    return [n["id"] for n in posted.json()["notices"]]


def pick(engine: Engine, picker: LanePicker, count: int) -> list[int]:
    """One pick, taken out of the queue as a lane's claim would."""
    with Session(engine) as session:
        ids = picker(session, datetime.now(UTC), count)
        session.execute(update(Notice).where(col(Notice.id).in_(ids)).values(status="sending"))
        session.commit()
    return ids


def test_the_bulk_lane_picks_accounts_in_turn_by_weight_oldest_first(
    client: TestClient,
    provider: dict[str, str],
    two: tuple[dict[str, str], dict[str, str]],
    engine: Engine,
    process: Process,
) -> None:
    assert process.scheduler.sending is not None
    process.scheduler.sending.stop()  # this test picks instead of the lanes
    clinic, bank = two
    patched = client.patch("/api/v1/accounts/clinic-a", json={"rate_share": 3}, headers=provider)
    assert patched.status_code == 200, patched.text
    clinic_ids = post_due(client, clinic, 0, 12)
    bank_ids = post_due(client, bank, 100, 12)
    picker = LanePicker("bulk", AccountShares(engine))
    picked = [pick(engine, picker, 4) for _ in range(4)]
    for batch in picked:
        assert len([i for i in batch if i in clinic_ids]) == 3, picked
    # Within each account, oldest first.
    flat = [i for batch in picked for i in batch]
    assert [i for i in flat if i in clinic_ids] == clinic_ids
    assert [i for i in flat if i in bank_ids] == bank_ids[:4]
    # A suspended account's notices are not picked: they wait, due.
    with engine.begin() as conn:
        conn.execute(
            update(Account).where(col(Account.slug) == "bank-b").values(status="suspended")
        )
    assert pick(engine, picker, 4) == []
    assert pick(engine, LanePicker("bulk"), 4) == []
    assert pick(engine, LanePicker("transactional"), 4) == []


def rows_read(plan: dict[str, Any], table: str) -> int:
    """How many rows a plan's nodes on ``table`` returned, over all their loops."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if plan.get("Relation Name") == table else 0
    return own + sum(rows_read(child, table) for child in plan.get("Plans", []))


@pytest.mark.slow  # PostgreSQL's planner
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_finding_the_accounts_with_due_notices_does_not_read_the_backlog(engine: Engine) -> None:
    """With statistics taken before a burst was marked due (as autovacuum leaves them in the
    burst's first minutes), an ``EXISTS`` was planned as a read of every due row, grouped by
    account: a cost per batch that grew with the backlog. One probe per account instead."""
    account_id_created(engine, "clinic-b")  # a second account, with nothing due
    now = datetime.now(UTC)
    backlog = [
        {"account_id": 1, "key": f"a{i}", "kind": "message", "status": "scheduled",
         "phone": f"+3598880{i:05d}", "text": "t", "is_template": False,
         "send_at": now - timedelta(minutes=1), "created_at": now, "updated_at": now}
        for i in range(20_000)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Notice), backlog)
        conn.execute(text("ANALYZE notices"))
        # The burst, after the statistics: most already sent, the rest due.
        conn.execute(text("UPDATE notices SET status = 'sent' WHERE key < 'a15000'"))
        conn.execute(text("UPDATE notices SET status = 'due' WHERE status = 'scheduled'"))
    query = waiting_accounts("bulk", now)
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        assert list(conn.execute(query).scalars()) == [1]  # the clinic has none due
        plan = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).scalar_one()
    # One probe for each of the two accounts, each stopping at its first due row (or none);
    # the EXISTS read all 5,000 due rows here (50,000 with a larger backlog).
    assert rows_read(plan[0]["Plan"], "notices") <= 2, plan


def account_id_created(engine: Engine, slug: str) -> int:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(Account).values(slug=slug, name=slug, sender_ids=[],
                                            inbound_numbers=[], rate_share=1, status="active",
                                            created_at=now, updated_at=now))  # fmt: skip
    return account_id(engine, slug)


# --- the service: two accounts' backlogs through one send rate --------------------------------

RATE = 20  # messages per second: 4 a slice


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, send_rate=RATE, quiet_hours="off")


@pytest.mark.slow  # real clocks and a real send rate: not in the fast tier
def test_two_accounts_backlogs_share_the_rate_by_their_rate_share(
    client: TestClient,
    provider: dict[str, str],
    two: tuple[dict[str, str], dict[str, str]],
    engine: Engine,
) -> None:
    clinic, bank = two
    patched = client.patch("/api/v1/accounts/clinic-a", json={"rate_share": 3}, headers=provider)
    assert patched.status_code == 200, patched.text
    # Both backlogs come due at the same moment, a little ahead, so that both are queued
    # before the first goes.
    due = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    for keys, base in ((clinic, 0), (bank, 100)):
        posted = client.post(
            "/api/v1/messages",
            headers=keys,
            json={
                "to": {"phones": [f"+35988861{base + i:04d}" for i in range(60)]},
                "text": "bulk",
                "send_at": due,
            },
        )
        assert posted.status_code == 201, posted.text

    clinic_id = account_id(engine, "clinic-a")

    def attempts() -> list[str]:
        with Session(engine) as session:
            rows = session.exec(
                select(Notice.account_id)
                .join(Attempt, col(Attempt.notice_id) == col(Notice.id))
                .order_by(col(Attempt.submitted_at), col(Attempt.id))
            ).all()
        return ["clinic" if a == clinic_id else "bank" for a in rows]

    wait_for(lambda: len(attempts()) >= 40, timeout=30, what="40 messages to go out")
    first = attempts()[:40]
    # Three of the clinic's for each of the bank's: 30 of 40, give or take the batch or two
    # taken before both backlogs were queued (first come, first served would send 40 of the
    # clinic's, equal shares 20).
    assert 26 <= first.count("clinic") <= 34, first
    assert first.count("bank") >= 6, first
    wait_for(lambda: len(attempts()) == 120, timeout=30, what="both backlogs to drain")


def account_id(engine: Engine, slug: str) -> int:
    with Session(engine) as session:
        account = session.exec(select(Account).where(Account.slug == slug)).one()
        assert account.id is not None
        return account.id


def test_account_shares_read_the_accounts_and_their_weights(engine: Engine) -> None:
    shares = AccountShares(engine)
    weights = shares.weights()
    assert weights == {account_id(engine, "default"): 1}  # the seeded account, as made
    # The weights are kept for a while: the same mapping until it is read again.
    assert shares.weights() is weights
