"""Every ``serve`` and ``worker`` process delivers webhooks: a few threads, each claiming a
batch of due deliveries, POSTing them and recording them, and polling when none is due."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from sqlalchemy.engine import Engine

from reminders.db import utcnow
from reminders.metrics import SendMetrics
from reminders.models import WebhookDeliveryStatus
from reminders.scheduler.retrying import log_failure, reason
from reminders.settings import Settings
from reminders.webhooks.delivery import deliver_next
from reminders.webhooks.posting import Poster
from reminders.webhooks.retention import prune

log = logging.getLogger(__name__)

PRUNE_AFTER_START: Final = 60.0  # seconds: not in the way of a start-up's backlog
PRUNE_EVERY: Final = 600.0


class WebhookWorkers:
    """The delivering threads of one process."""

    def __init__(
        self, engine: Engine, settings: Settings, *, token: str, metrics: SendMetrics | None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.token = token
        self.metrics = metrics
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            return
        for i in range(self.settings.webhook_threads):
            thread = threading.Thread(
                target=self._work, args=(i == 0,), name=f"webhooks-{i}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, *, wait: bool = True) -> None:
        """Claim no more; the delivery being POSTed finishes and is recorded."""
        self._stop.set()
        if wait:
            for thread in self._threads:
                thread.join(timeout=self.settings.webhook_timeout + 5)

    def dead_threads(self) -> list[str]:
        if self._stop.is_set():
            return []
        return [t.name for t in self._threads if not t.is_alive()]

    def _work(self, prunes: bool) -> None:
        """Deliver until stopped; the first thread also forgets old deliveries, now and then
        (every process does: when there is nothing to forget it costs one index probe)."""
        settings = self.settings
        next_prune = time.monotonic() + PRUNE_AFTER_START
        poster = Poster(
            allow_private=settings.allow_private_webhooks, timeout=settings.webhook_timeout
        )
        try:
            while not self._stop.is_set():
                try:
                    steps = deliver_next(
                        self.engine,
                        poster,
                        token=self.token,
                        count=settings.webhook_batch,
                        timeout=settings.webhook_timeout,
                        clock=utcnow,
                        stop=self._stop,
                    )
                except Exception as exc:
                    # The database away, or a bug: what was claimed is attempted again once
                    # its lease runs out; look again after a pause rather than spin.
                    log_failure(log, "delivering webhooks", exc)
                    self._stop.wait(1.0)
                    continue
                if prunes and time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY
                    self._prune()
                if self.metrics is not None and steps:
                    self.metrics.count_webhooks(
                        [WebhookDeliveryStatus(s.status).value for s in steps]
                    )
                if not steps:
                    self._stop.wait(settings.webhook_poll)
        finally:
            poster.close()

    def _prune(self) -> None:
        try:
            gone = prune(self.engine, utcnow(), self.settings.webhook_retention)
        except Exception as exc:  # tried again at the next turn
            log.warning("could not forget old webhook deliveries (%s)", reason(exc))
            return
        if gone:
            log.info("forgot %d webhook deliveries older than the retention", gone)
