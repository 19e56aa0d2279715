"""Job functions at stable import paths: APScheduler stores the path, so never move them."""

from __future__ import annotations

import threading

from reminders import runtime
from reminders.models import Priority
from reminders.scheduler.firing import fire_many


def fire_notice(notice_id: int) -> None:
    """The job of one notice, when run by a plain executor (jobs stored before batching)."""
    fire_notices([notice_id])


def fire_notices(
    notice_ids: list[int],
    lane: str = Priority.bulk,
    stop: threading.Event | None = None,
    shutdown: threading.Event | None = None,
) -> None:
    """What a lane's batching executor calls with the notice ids of the jobs it collected:
    ``stop`` when it must claim no more (deposed or stopping), ``shutdown`` when the process
    stops (see ``fire_many``)."""
    rt = runtime.current()
    fire_many(
        rt.engine,
        rt.sender,
        notice_ids,
        settings=rt.settings,
        token=rt.token,
        scheduler=rt.scheduler,
        rate=rt.rate,
        lane=lane,
        stop=stop,
        shutdown=shutdown,
        metrics=rt.metrics,
    )
