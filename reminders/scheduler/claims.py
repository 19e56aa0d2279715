"""Which ``due`` notices a lane claims next.

A lane's batch is picked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, in the transaction that
then prepares and claims it (``firing.py``): processes that pick at the same moment each get
other rows, and never wait for one another. SQLite has one writer: its process picks and claims
one batch at a time (``firing.serial_claims``).

- The transactional lane takes the oldest due first, whatever their account.
- The bulk lane shares each batch among the accounts with notices due, by their
  ``rate_share`` (``shares.py``), oldest first within each account.
- A suspended account's notices are not picked: they stay due until it is active again.
- Only a notice whose ``send_at`` has come is picked: one moved later after it was marked due
  is not sent early.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, literal_column, select
from sqlalchemy.orm import Session

from reminders.models import Account, AccountStatus, Notice, Priority
from reminders.scheduler.shares import AccountShares, Turns

_N = Notice.__table__.c  # type: ignore[attr-defined]
_A = Account.__table__.c  # type: ignore[attr-defined]
# Written as a literal, not a bound parameter: the partial indexes on the due rows
# ("WHERE status = 'due'") serve a statement only if the planner can see the same predicate,
# which a generic plan for a parameter hides from it.
_DUE: ColumnElement[Any] = literal_column("'due'")
_SUSPENDED: ColumnElement[Any] = literal_column(f"'{AccountStatus.suspended.value}'")


def _due(lane: str, now: datetime):  # type: ignore[no-untyped-def]
    return (_N.status == _DUE, _N.priority == lane, _N.send_at <= now)


def _lock(query, session: Session):  # type: ignore[no-untyped-def]
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


class LanePicker:
    """Picks a lane's next batch; for the bulk lane, keeps the accounts' turns between batches."""

    def __init__(self, lane: str, shares: AccountShares | None = None) -> None:
        self.lane = lane
        self._shares = shares
        self._turns: Turns[int] = Turns()
        self._lock = threading.Lock()

    def __call__(self, session: Session, now: datetime, count: int) -> list[int]:
        if self.lane == Priority.bulk and self._shares is not None:
            return self._by_turns(session, now, count)
        return self._oldest(session, now, count)

    def _oldest(self, session: Session, now: datetime, count: int) -> list[int]:
        suspended = select(_A.id).where(_A.status == _SUSPENDED)
        query = (
            select(_N.id)
            .where(*_due(self.lane, now), _N.account_id.not_in(suspended))
            .order_by(_N.send_at, _N.id)
            .limit(count)
        )
        return [int(i) for i in session.execute(_lock(query, session)).scalars()]

    def waiting_accounts(self, session: Session, now: datetime) -> list[int]:
        """The active accounts with notices due in this lane (one index probe each)."""
        return [int(i) for i in session.execute(waiting_accounts(self.lane, now)).scalars()]

    def _by_turns(self, session: Session, now: datetime, count: int) -> list[int]:
        accounts = self.waiting_accounts(session, now)
        if not accounts:
            return []
        assert self._shares is not None
        weights = self._shares.weights()
        with self._lock:
            slots = self._turns.allot(count, accounts, weights)
        picked: list[int] = []
        for account_id, wanted in slots.items():
            query = (
                select(_N.id)
                .where(*_due(self.lane, now), _N.account_id == account_id)
                .order_by(_N.send_at, _N.id)
                .limit(wanted)
            )
            picked.extend(int(i) for i in session.execute(_lock(query, session)).scalars())
        return picked


def waiting_accounts(lane: str, now: datetime) -> Select[Any]:
    """The query for the active accounts with notices due in ``lane``.

    A correlated ``LIMIT 1`` rather than ``EXISTS``: PostgreSQL may turn an ``EXISTS`` into a
    join that reads every due row of the lane and groups them by account, and it does so when
    its statistics lag a burst (a backlog just marked due looks empty to it). That cost grew
    with the backlog: 50 ms a batch with 200,000 due, a quarter of the bulk lane's time at 200
    a second. A scalar subquery runs once per account, as one probe of the due rows' index.
    """
    first_due = (
        select(_N.id)
        .where(*_due(lane, now), _N.account_id == _A.id)
        .limit(1)
        .correlate(Account.__table__)  # type: ignore[attr-defined]
        .scalar_subquery()
    )
    return select(_A.id).where(_A.status != _SUSPENDED, first_due.is_not(None)).order_by(_A.id)
