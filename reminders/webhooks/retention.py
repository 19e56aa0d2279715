"""Forgetting old deliveries: the log of what was delivered (or given up) is kept for
``REMINDERS_WEBHOOK_RETENTION``, then deleted a chunk at a time, so that the outbox does not
grow with every event ever sent. Deliveries still pending are never touched."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from reminders.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus

CHUNK: Final = 1000  # deliveries a transaction
_D = WebhookDelivery.__table__  # type: ignore[attr-defined]
_A = WebhookAttempt.__table__  # type: ignore[attr-defined]


def prune(engine: Engine, now: datetime, keep: timedelta, *, chunk: int = CHUNK) -> int:
    """Delete the finished deliveries made before ``now - keep``, with their attempts; return
    how many. Read by the index on their time: only the old ones are looked at."""
    cutoff = now - keep
    gone = 0
    while True:
        with engine.begin() as conn:
            ids = list(
                conn.execute(
                    select(_D.c.id)
                    .where(
                        _D.c.status != WebhookDeliveryStatus.pending,
                        _D.c.created_at < cutoff,
                    )
                    .order_by(_D.c.created_at)
                    .limit(chunk)
                ).scalars()
            )
            if ids:
                # The attempts first: no reliance on the database cascading for us.
                conn.execute(delete(_A).where(_A.c.delivery_id.in_(ids)))
                conn.execute(delete(_D).where(_D.c.id.in_(ids)))
        gone += len(ids)
        if len(ids) < chunk:
            return gone
