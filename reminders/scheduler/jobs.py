"""Job functions at stable import paths: APScheduler stores the path, so never move them."""

from __future__ import annotations

from reminders import runtime
from reminders.scheduler.firing import fire


def fire_notice(notice_id: int) -> None:
    rt = runtime.current()
    fire(rt.engine, rt.sender, notice_id, settings=rt.settings)
