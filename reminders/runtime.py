"""What a running process shares with the scheduler's job function.

APScheduler persists a job as an import path plus arguments, so the job function cannot be
handed the engine or the sender; it finds them here, installed once at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from reminders.metrics import SendMetrics
from reminders.sender.base import Sender
from reminders.sender.rate import SendRate
from reminders.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine  # the scheduler's and the sender's: firing, the job store, outcomes, feeds
    sender: Sender
    token: str = ""  # this process, as recorded on the notices it claims
    scheduler: Any = None  # the process's NoticeScheduler, for jobs that plan notices
    rate: SendRate = field(default_factory=SendRate)
    metrics: SendMetrics = field(default_factory=SendMetrics)
    # The API's, with a pool of its own (``service.build`` makes it). A runtime made by hand
    # (tests, benchmarks) may leave it out: its API then uses ``engine``.
    api_engine: Engine | None = None


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no runtime installed; the scheduler fired outside a running service")
    return _current
