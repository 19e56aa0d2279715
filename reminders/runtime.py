"""What a running process shares with the work its scheduler fires.

``process.build`` makes one and hands it to the ``NoticeScheduler``, which passes it on: to its
lanes' firing, and to the stored jobs its default executor runs (see ``scheduler.jobs``).
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
    rate: SendRate = field(default_factory=SendRate)
    metrics: SendMetrics = field(default_factory=SendMetrics)
    # The API's, with a pool of its own (``process.build`` makes it). A runtime made by hand
    # (tests, benchmarks) may leave it out: its API then uses ``engine``.
    api_engine: Engine | None = None
    # Shared state between processes (the rate, the metrics, the panel's sign-in throttle).
    redis: Any = None  # redis.Redis | None
