"""Notices' jobs wait for their notices' commit: domain functions queue them, the caller writes.

A notice's APScheduler job is written through the scheduler's job store, in a transaction of
its own (``NoticeScheduler.schedule``). Domain functions flush and leave the commit to their
caller, so the job changes they make are queued on the session (``schedule_after_commit``,
``unschedule_after_commit``), and the caller commits with ``commit_and_schedule``: the notices
first, then their jobs. A job never points at a notice that is not committed (it would fire
into nothing, or into a notice then rolled back); if the process dies between the two, the
scheduler's reconcile gives the committed notices their jobs. A rollback forgets the queue,
and a plain ``session.commit()`` with jobs queued is refused: they would be lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

_KEY = "reminders.pending_jobs"
# (notice id, send time) or (notice id, send time, priority): the priority picks the lane the
# notice is fired from, "bulk" when left out.
JobItem = tuple[int, datetime] | tuple[int, datetime, str]


class JobScheduler(Protocol):
    """What the data layer needs from the scheduler: put jobs in and take them out."""

    def schedule(self, items: Sequence[JobItem], *, new: bool = False) -> None: ...

    def unschedule(self, notice_ids: Sequence[int]) -> None: ...


@dataclass
class _Pending:
    scheduler: JobScheduler
    # Notice id -> its job, or None to drop it: the last change queued for a notice wins.
    jobs: dict[int, JobItem | None] = field(default_factory=dict)
    new: set[int] = field(default_factory=set)  # inserted in this transaction: no job yet

    def write(self) -> None:
        new = [item for i, item in self.jobs.items() if item is not None and i in self.new]
        changed = [item for i, item in self.jobs.items() if item is not None and i not in self.new]
        dropped = [i for i, item in self.jobs.items() if item is None and i not in self.new]
        if new:
            self.scheduler.schedule(new, new=True)
        if changed:
            self.scheduler.schedule(changed)
        if dropped:
            self.scheduler.unschedule(dropped)


def schedule_after_commit(
    session: Session,
    scheduler: JobScheduler | None,
    items: Iterable[JobItem],
    *,
    new: bool = False,
) -> None:
    """Create or replace these notices' jobs once the caller commits (``new``: notices
    inserted in this transaction, which have no job to replace)."""
    pending = _pending(session, scheduler)
    if pending is None:
        return
    for item in items:
        pending.jobs[item[0]] = item
        if new:
            pending.new.add(item[0])


def unschedule_after_commit(
    session: Session, scheduler: JobScheduler | None, notice_ids: Iterable[int]
) -> None:
    """Drop these notices' jobs once the caller commits."""
    pending = _pending(session, scheduler)
    if pending is None:
        return
    for notice_id in notice_ids:
        pending.jobs[notice_id] = None


def commit_and_schedule(session: Session) -> None:
    """Commit, then write the jobs queued in this transaction.

    Whatever took the keys' locks (``keylocks``) holds them until this commit.
    """
    pending: _Pending | None = session.info.pop(_KEY, None)
    session.commit()
    if pending is not None:
        pending.write()


def _pending(session: Session, scheduler: JobScheduler | None) -> _Pending | None:
    if scheduler is None:
        return None  # no scheduler in this process: the jobs are someone else's (tests, tools)
    if session.in_nested_transaction():
        # A savepoint rolled back would leave its changes queued: queue them after it ends.
        raise RuntimeError("job changes are queued outside savepoints")
    pending: _Pending | None = session.info.get(_KEY)
    if pending is None:
        pending = session.info[_KEY] = _Pending(scheduler)
        if not event.contains(session, "after_transaction_end", _forget):
            event.listen(session, "after_transaction_end", _forget)
            event.listen(session, "before_commit", _refuse_plain_commit)
    elif pending.scheduler is not scheduler:
        raise RuntimeError("one transaction's jobs go to one scheduler")
    return pending


def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction itself, not a savepoint, ended
        session.info.pop(_KEY, None)


def _refuse_plain_commit(session: Session, *_: Any) -> None:
    if _KEY in session.info and not session.in_nested_transaction():
        raise RuntimeError("jobs are queued in this transaction: commit with commit_and_schedule")
