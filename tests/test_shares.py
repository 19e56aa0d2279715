"""Accounts share the bulk lane by their ``rate_share``: one account's backlog does not hold
back another's notices."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.models import Account, Attempt, Notice
from reminders.scheduler.executor import BatchingExecutor
from reminders.scheduler.shares import AccountShares, FairQueue
from reminders.settings import Settings, load_settings
from tests.conftest import wait_for

# --- the turns, in memory ---------------------------------------------------------------------


def test_weights_three_to_one_give_three_of_every_four_picks() -> None:
    fair: FairQueue[str, str] = FairQueue()
    for i in range(12):
        fair.put("utility", f"u{i}")
    for i in range(12):
        fair.put("clinic", f"c{i}")
    picks = fair.take(16, {"utility": 3, "clinic": 1})
    for start in range(0, 16, 4):
        window = picks[start : start + 4]
        assert sum(p.startswith("u") for p in window) == 3, picks
    # Each account's own order is kept.
    assert [p for p in picks if p.startswith("u")] == [f"u{i}" for i in range(12)]
    assert [p for p in picks if p.startswith("c")] == [f"c{i}" for i in range(4)]
    # The utility is done: the clinic has the lane to itself.
    assert fair.take(16, {"utility": 3, "clinic": 1}) == [f"c{i}" for i in range(4, 12)]
    assert not fair and len(fair) == 0


def test_equal_or_unknown_weights_alternate() -> None:
    fair: FairQueue[int | None, str] = FairQueue()
    for i in range(3):
        fair.put(1, f"a{i}")
        fair.put(None, f"n{i}")  # account unknown (the database was away): weight 1
    assert fair.take(10, {}) == ["a0", "n0", "a1", "n1", "a2", "n2"]


def test_a_lone_account_keeps_its_order_and_a_returning_one_starts_even() -> None:
    fair: FairQueue[str, int] = FairQueue()
    for i in range(5):
        fair.put("bank", i)
    assert fair.take(3, {"bank": 1}) == [0, 1, 2]
    assert fair.take(3, {"bank": 1}) == [3, 4]
    # An account that had a long run of turns owes nothing when it comes back later.
    for i in range(40):
        fair.put("utility", i)
    fair.take(30, {"utility": 1, "clinic": 1})
    fair.put("clinic", 100)
    fair.put("clinic", 101)
    assert fair.take(4, {"utility": 1, "clinic": 1}) == [30, 100, 31, 101]
    assert sorted(fair.drain()) == list(range(32, 40))


# --- the lane: a real executor with the accounts given ---------------------------------------


class FixedShares:
    """What ``AccountShares`` reads, given: notice id -> account, and the weights."""

    def __init__(self, accounts: Mapping[int, int], weights: Mapping[int | None, int]) -> None:
        self.accounts = accounts
        self._weights = weights

    def accounts_of(self, notice_ids: Any) -> dict[int, int]:
        return {i: self.accounts[i] for i in notice_ids if i in self.accounts}

    def weights(self) -> Mapping[int | None, int]:
        return self._weights


def job(notice_id: int) -> Any:
    return SimpleNamespace(id=f"notice:{notice_id}", args=(notice_id,), max_instances=1)


def started(shares: FixedShares, handler: Any, max_batch: int) -> BatchingExecutor:
    lane = BatchingExecutor(
        handler,
        lane="bulk",
        threads=1,
        max_batch=max_batch,
        shares=shares,  # type: ignore[arg-type]
    )
    lane.start(SimpleNamespace(_create_lock=threading.RLock), "notices")
    return lane


def test_the_bulk_lane_takes_accounts_in_turn_by_weight() -> None:
    # Notices 1-40 are the utility's (weight 3), 101-120 the clinic's (weight 1), all queued
    # while the lane's one thread is busy with the first batch.
    accounts = {**{i: 1 for i in range(1, 41)}, **{i: 2 for i in range(101, 121)}}
    batches: list[list[int]] = []
    busy = threading.Event()
    go_on = threading.Event()

    def handler(ids: list[int], *_: Any) -> None:
        batches.append(ids)
        busy.set()
        go_on.wait(5)

    lane = started(FixedShares(accounts, {1: 3, 2: 1}), handler, max_batch=4)
    try:
        lane.submit_job(job(1), [])
        assert busy.wait(5)
        for i in [*range(2, 41), *range(101, 121)]:
            lane.submit_job(job(i), [])
        go_on.set()
        wait_for(lambda: sum(map(len, batches)) == 60, what="every notice to be fired")
    finally:
        lane.shutdown()
    assert batches[0] == [1]
    order = [i for batch in batches[1:] for i in batch]
    # While both wait, three of the utility's go for each of the clinic's, in each one's order.
    for start in range(0, 52, 4):
        assert sum(accounts[i] == 1 for i in order[start : start + 4]) == 3, order
    assert [i for i in order if accounts[i] == 2] == list(range(101, 121))
    assert lane.holding() == set()


def test_a_halt_drops_what_waits_in_every_account() -> None:
    accounts = {1: 1, 2: 1, 3: 2, 4: 2}
    fired: list[int] = []
    busy, go_on = threading.Event(), threading.Event()

    def handler(ids: list[int], *_: Any) -> None:
        fired.extend(ids)
        busy.set()
        go_on.wait(5)

    lane = started(FixedShares(accounts, {}), handler, max_batch=1)
    try:
        lane.submit_job(job(1), [])
        assert busy.wait(5)
        for i in (2, 3, 4):
            lane.submit_job(job(i), [])
        assert lane.halt() == 3
        go_on.set()
        wait_for(lambda: lane.holding() == set(), what="the lane to let go of every job")
    finally:
        lane.shutdown()
    assert fired == [1]


# --- the service: two accounts' backlogs through one send rate --------------------------------

RATE = 20  # messages per second: 2 a slice


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
    assert shares.accounts_of([]) == {}
    assert shares.accounts_of([12345]) == {}  # no such notice
    weights = shares.weights()
    assert weights == {account_id(engine, "default"): 1}  # the seeded account, as made
    # The weights are kept for a while: the same mapping until it is read again.
    assert shares.weights() is weights
