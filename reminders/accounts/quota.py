"""An account's monthly quota of segments (``monthly_segments``; None: no quota).

What counts: the segments of the account's attempts handed to the gateway in the month (on the
service's clock, ``months.py``) that the gateway took or may have taken, so every attempt but a
``failed`` one (refused by the gateway or its SMSC, never billed). The usage report counts the
same attempts (``usage.py``), so a month's quota and its report always agree.

Two checks, one soft and one hard:

* ``POST /messages`` refuses a message whose segments do not fit in what its month has left
  (``check_message``). It reads the attempts recorded so far and nothing else: two messages
  posted at once, or a message scheduled for later, can each pass alone and not together.
* Firing is the hard stop (``QuotaGuard``): before a batch is claimed, each SMS of an account
  with a quota must fit in what is left, or its notice ends ``failed`` with the reason and
  nothing is sent. One aggregate query per batch, for the batch's accounts with a quota alone.
  The two lanes fire in threads of one process; the guard counts what the other lane has
  claimed and not yet recorded, and serialises its reading with that recording, so the two
  never spend the same segments. Only the few seconds in which two processes may both fire
  (a leader that lost Redis, see the README) can let one batch past the quota.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, tzinfo
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, func, select

from reminders.accounts.months import Month
from reminders.accounts.scoping import current
from reminders.errors import InvalidField
from reminders.models import Account, Attempt, NoticeStatus

T = TypeVar("T")


def billable() -> ColumnElement[bool]:
    """The attempts a quota and a usage report count: all but those the gateway refused."""
    return col(Attempt.status) != NoticeStatus.failed


def used_segments(
    session: Session, account_ids: Iterable[int], start: datetime, end: datetime
) -> dict[int, int]:
    """Segments each account's attempts took in [start, end): one aggregate query, on the
    index that leads with the account."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    query = (
        select(col(Attempt.account_id), func.coalesce(func.sum(col(Attempt.segments)), 0))
        .where(
            col(Attempt.account_id).in_(ids),
            col(Attempt.submitted_at) >= start,
            col(Attempt.submitted_at) < end,
            billable(),
        )
        .group_by(col(Attempt.account_id))
    )
    return {int(account_id): int(used) for account_id, used in session.execute(query)}


def check_message(
    session: Session, *, per_sms: int, send_times: Sequence[datetime], zone: tzinfo
) -> None:
    """Refuse (422 naming ``text``) a message of the session's account whose SMS, ``per_sms``
    segments each, one per time in ``send_times``, do not fit in what their month has left."""
    account = session.get(Account, current(session))
    if account is None or account.monthly_segments is None or not send_times:
        return
    assert account.id is not None
    needed: dict[Month, int] = {}
    for at in send_times:
        month = Month.of(at, zone)
        needed[month] = needed.get(month, 0) + per_sms
    for month, segments in sorted(needed.items()):
        used = used_segments(session, [account.id], *month.bounds(zone)).get(account.id, 0)
        left = max(account.monthly_segments - used, 0)
        if segments > left:
            count = segments // per_sms if per_sms else 0
            raise InvalidField(
                f"the message needs {_counted(segments, 'segment')} ({per_sms} per SMS to "
                f"{_counted(count, 'recipient')}) and the account has {left} of its "
                f"{account.monthly_segments} monthly segments left for {month}",
                field="text",
            )


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def allot(
    wanted: Sequence[tuple[int, int, int]], left: dict[int, int]
) -> tuple[dict[int, tuple[int, int]], dict[int, int]]:
    """Share what each account has ``left`` among ``wanted`` (notice, account, segments), in
    order: returns the notices that fit (notice -> (account, segments)) and those that do not
    (notice -> what was left when its turn came). An account not in ``left`` has no quota.

    A notice that does not fit does not stop a smaller one after it."""
    remaining = dict(left)
    fits: dict[int, tuple[int, int]] = {}
    refused: dict[int, int] = {}
    for notice_id, account_id, segments in wanted:
        if account_id not in remaining:
            continue
        if segments <= remaining[account_id]:
            remaining[account_id] -= segments
            fits[notice_id] = (account_id, segments)
        else:
            refused[notice_id] = max(remaining[account_id], 0)
    return fits, refused


class Reservation:
    """The segments one batch took from its accounts' quotas, from before its claim until its
    outcomes are recorded (``settle``) or it gives up (``release``)."""

    def __init__(self, guard: QuotaGuard, taken: dict[int, tuple[int, int]]) -> None:
        self._guard = guard
        self._taken = taken  # notice -> (account, segments)

    def keep(self, notice_ids: Iterable[int]) -> None:
        """Only these were claimed: the others' segments go back at once."""
        kept = set(notice_ids)
        dropped = {i: v for i, v in self._taken.items() if i not in kept}
        if dropped:
            with self._guard.lock:
                self._guard.give_back(dropped.values())
            self._taken = {i: v for i, v in self._taken.items() if i in kept}

    def settle(self, write: Callable[[], T]) -> T:
        """Run ``write`` (the recording of the batch's attempts) and give the reservation back
        in one step, so that a quota read by the other lane counts those segments once: either
        still reserved or already recorded."""
        if not self._taken:
            return write()
        with self._guard.lock:
            result = write()
            self._guard.give_back(self._taken.values())
            self._taken = {}
        return result

    def release(self) -> None:
        if self._taken:
            with self._guard.lock:
                self._guard.give_back(self._taken.values())
            self._taken = {}


class QuotaGuard:
    """One per database per process (``guard_for``): the segments its firing batches have
    claimed and not yet recorded, per account."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._in_flight: dict[int, int] = {}

    def reserve(
        self,
        session: Session,
        wanted: Sequence[tuple[int, int, int]],
        quotas: dict[int, int],
        month: tuple[datetime, datetime],
    ) -> tuple[Reservation, dict[int, int]]:
        """Take the segments of ``wanted`` (notice, account, segments) that fit in ``quotas``
        (account -> monthly segments) this ``month``; returns the reservation and the notices
        that do not fit (notice -> segments that were left)."""
        asking = {account_id for _, account_id, _ in wanted if account_id in quotas}
        if not asking:
            return Reservation(self, {}), {}
        with self.lock:
            used = used_segments(session, asking, *month)
            left = {
                a: quotas[a] - used.get(a, 0) - self._in_flight.get(a, 0) for a in sorted(asking)
            }
            fits, refused = allot(wanted, left)
            for account_id, segments in fits.values():
                self._in_flight[account_id] = self._in_flight.get(account_id, 0) + segments
        return Reservation(self, fits), refused

    def give_back(self, taken: Iterable[tuple[int, int]]) -> None:
        """Called with ``lock`` held."""
        for account_id, segments in taken:
            self._in_flight[account_id] -= segments
            if not self._in_flight[account_id]:
                del self._in_flight[account_id]


_GUARDS: weakref.WeakKeyDictionary[Engine, QuotaGuard] = weakref.WeakKeyDictionary()
_GUARDS_LOCK = threading.Lock()


def guard_for(engine: Engine) -> QuotaGuard:
    with _GUARDS_LOCK:
        guard = _GUARDS.get(engine)
        if guard is None:
            guard = _GUARDS[engine] = QuotaGuard()
        return guard


def used_up(quota: int, left: int, needed: int, month: Month) -> str:
    """The reason a notice that did not fit ends ``failed``."""
    return (
        f"the account's monthly quota is used up: {quota - left} of its {quota} segments for "
        f"{month} are spent or on their way, and this SMS needs {needed}"
    )
