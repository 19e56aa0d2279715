"""Writing events into the outbox, in the caller's transaction.

Most changes that cause an event are on hot paths (a batch of outcomes, a delivery report), and
most accounts have no webhook. So each process keeps, for a few seconds, which event types each
account's enabled endpoints want (``Subscriptions``): an account without one costs a dictionary
look-up, no query. When the hint says yes, the endpoints are read again inside the transaction,
so a stale hint never writes a delivery for an endpoint that is gone or disabled. A stale "no"
can miss an event for at most ``TTL`` seconds after an endpoint is created or changed in another
process; this process forgets its hint at once (``forget``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from reminders.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from reminders.webhooks.events import ALL, payload, subscribed

TTL: Final = 5.0
# How long a delivery is retried after its event (or after a redelivery was asked for).
RETRY_FOR: Final = timedelta(days=3)

_E = WebhookEndpoint.__table__.c  # type: ignore[attr-defined]
_DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Event:
    account_id: int
    type: str
    data: dict[str, Any]
    at: datetime


class Subscriptions:
    """Per database and account: the event types its enabled endpoints want, for ``TTL`` s."""

    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int], tuple[float, frozenset[str]]] = {}

    def wanted(self, conn: Connection, account_ids: Iterable[int]) -> dict[int, frozenset[str]]:
        """The accounts among ``account_ids`` with an endpoint, and the types they want."""
        database = _database(conn)
        now = time.monotonic()
        found: dict[int, frozenset[str]] = {}
        missing: list[int] = []
        with self._lock:
            for account_id in set(account_ids):
                known = self._known.get((database, account_id))
                if known is None or known[0] <= now:
                    missing.append(account_id)
                elif known[1]:
                    found[account_id] = known[1]
        if missing:
            types: dict[int, set[str]] = {account_id: set() for account_id in missing}
            rows = conn.execute(
                select(_E.account_id, _E.events).where(
                    _E.enabled.is_(True), _E.account_id.in_(missing)
                )
            )
            for account_id, events in rows:
                types[int(account_id)].update(events)
            with self._lock:
                for account_id, wanted in types.items():
                    self._known[(database, account_id)] = (now + self.ttl, frozenset(wanted))
            found.update({a: frozenset(w) for a, w in types.items() if w})
        return found

    def forget(self, database: str, account_id: int) -> None:
        """The account's endpoints changed: read them again at its next event."""
        with self._lock:
            self._known.pop((database, account_id), None)


def database_of(conn: Connection) -> str:
    """What a hint is kept under: the database ``conn`` is to."""
    return _database(conn)


def _database(conn: Connection) -> str:
    # The URL names the database: the API's engine and the workers' share their hints.
    return conn.engine.url.render_as_string(hide_password=True)


SUBSCRIPTIONS = Subscriptions()


def enqueue(conn: Connection, events: Sequence[Event]) -> int:
    """Write a delivery of each event for each enabled endpoint of its account that wants it,
    in ``conn``'s transaction, in one statement; return how many were written."""
    if not events:
        return 0
    wanted = SUBSCRIPTIONS.wanted(conn, (e.account_id for e in events))
    events = [e for e in events if e.account_id in wanted and _any(wanted[e.account_id], e.type)]
    if not events:
        return 0
    endpoints: dict[int, list[tuple[int, list[str]]]] = {}
    rows = conn.execute(
        select(_E.id, _E.account_id, _E.events).where(
            _E.enabled.is_(True), _E.account_id.in_({e.account_id for e in events})
        )
    )
    for endpoint_id, account_id, types in rows:
        endpoints.setdefault(int(account_id), []).append((int(endpoint_id), list(types)))
    deliveries: list[dict[str, Any]] = []
    for event in events:
        body = payload(event.type, event.data, event.at)
        for endpoint_id, types in endpoints.get(event.account_id, []):
            if subscribed(types, event.type):
                deliveries.append(new_delivery(event, endpoint_id, body))
    if deliveries:
        conn.execute(insert(_DELIVERIES), deliveries)
    return len(deliveries)


def new_delivery(event: Event, endpoint_id: int, body: str) -> dict[str, Any]:
    return {
        "account_id": event.account_id,
        "endpoint_id": endpoint_id,
        "message_id": new_message_id(),
        "event_type": event.type,
        "body": body,
        "status": WebhookDeliveryStatus.pending,
        "attempts": 0,
        "next_attempt_at": event.at,
        "give_up_at": event.at + RETRY_FOR,
        "claimed_by": None,
        "claimed_until": None,
        "last_error": None,
        "created_at": event.at,
        "delivered_at": None,
    }


def new_message_id() -> str:
    """A ``webhook-id``: random, so that it says nothing of how many events an account has."""
    return "msg_" + secrets.token_urlsafe(18)


def _any(types: frozenset[str], event_type: str) -> bool:
    return ALL in types or event_type in types
