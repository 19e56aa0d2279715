"""Job functions at stable import paths: APScheduler stores the path, so never move them.

APScheduler 3 calls a stored job as ``func(*args)`` with what the database holds (a notice id,
a source id), so nothing of the running process can reach it through its arguments: the same
row is fired by whichever process leads, and a Runtime cannot be pickled. What the job needs is
bound instead to the threads of the executor that runs it: each ``NoticeScheduler`` starts its
default executor's pool with ``bind_worker(self)``, so a job finds the scheduler (and through
it the Runtime) that owns the thread it runs on. Keyed by executor thread rather than kept in
one module-level slot: two schedulers in one interpreter (tests, benchmarks, a failover
rehearsal) each run their jobs with their own process's engine, sender and token.

Notices' jobs go through the lanes' executors (``BatchingExecutor``), which are handed
``mark_notices`` bound to their scheduler when it is built: the stored function is never called
on that path. A notice's job only marks it due; the sending lanes of every process send it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from reminders.models import Priority
from reminders.scheduler.retrying import Backoff, until_written

_MARKING = Backoff()

if TYPE_CHECKING:
    from reminders.scheduler.notice_scheduler import NoticeScheduler

_worker = threading.local()


def bind_worker(scheduler: NoticeScheduler) -> None:
    """The default executor's thread initializer: jobs run on this thread are ``scheduler``'s."""
    _worker.scheduler = scheduler


def worker_scheduler() -> NoticeScheduler:
    """The scheduler whose executor runs the current job."""
    scheduler: NoticeScheduler | None = getattr(_worker, "scheduler", None)
    if scheduler is None:
        raise RuntimeError("a stored job ran outside the executor of a NoticeScheduler")
    return scheduler


def fire_notice(notice_id: int) -> None:
    """The job of one notice, when run by a plain executor (jobs stored before batching)."""
    mark_notices(worker_scheduler(), [notice_id])


def mark_notices(
    scheduler: NoticeScheduler,
    notice_ids: list[int],
    lane: str = Priority.bulk,
    stop: threading.Event | None = None,
    shutdown: threading.Event | None = None,
) -> None:
    """What a lane's batching executor calls with the notice ids of the jobs it collected: mark
    them due. Tried again while the database is away, until ``stop`` (deposed or stopping):
    what is not marked then is marked by the next leader's periodic check."""
    until_written(
        lambda: scheduler.signal.mark(notice_ids),
        _MARKING,
        stop,
        what=f"marking {len(notice_ids)} notice(s) due",
    )
