"""Claiming due deliveries, attempting them, and writing down each attempt and what follows.

A worker claims a batch under a lease (``claimed_by``, ``claimed_until``), on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` so that workers claiming at once each get other rows. The claim is
conditional on no live lease, which is also what keeps two threads of one SQLite process apart.
A worker killed mid-attempt records nothing: once its lease runs out another worker (or the
same one, restarted) attempts the delivery again, with the same ``webhook-id``.

What comes after an attempt (``next_step``):

- 2xx: delivered.
- A network error, a timeout, 429 or 5xx: tried again after an exponential back-off with
  jitter (a 429's or 503's ``Retry-After`` instead, when it gives one), until three days after
  the event; then failed.
- Any other answer (4xx, a redirect not followed), or an address the guard refuses: failed at
  once: the same request would only be refused again.

An endpoint whose deliveries have all failed for ``DISABLE_AFTER`` is disabled, with the reason.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from reminders.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from reminders.scheduler.firing import serial_claims
from reminders.webhooks.posting import Answer, Poster
from reminders.webhooks.signing import headers

log = logging.getLogger(__name__)

FIRST_RETRY: Final = timedelta(seconds=10)
LONGEST_WAIT: Final = timedelta(hours=6)
DISABLE_AFTER: Final = timedelta(days=5)

_D = WebhookDelivery.__table__.c  # type: ignore[attr-defined]
_E = WebhookEndpoint.__table__.c  # type: ignore[attr-defined]
_DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]
_ENDPOINTS = WebhookEndpoint.__table__  # type: ignore[attr-defined]
_ATTEMPTS = WebhookAttempt.__table__  # type: ignore[attr-defined]
_PENDING: Final = WebhookDeliveryStatus.pending.value


@dataclass(frozen=True)
class Claimed:
    id: int
    account_id: int
    endpoint_id: int
    url: str
    secret: str
    message_id: str
    body: str
    attempts: int
    give_up_at: datetime


@dataclass(frozen=True)
class Step:
    """What follows an attempt: delivered, failed, or another attempt at ``retry_at``."""

    status: WebhookDeliveryStatus
    retry_at: datetime | None = None
    reason: str | None = None


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 10 s, 40 s, 2 min 40 s... at most
    6 hours, each give or take a fifth so that an endpoint's backlog does not return at once."""
    wait = min(FIRST_RETRY * 4 ** max(attempts - 1, 0), LONGEST_WAIT)
    return wait * random.uniform(0.8, 1.2)


def next_step(answer: Answer, attempts: int, give_up_at: datetime, now: datetime) -> Step:
    """What to do after ``answer``, the ``attempts``-th attempt (pure: ``now`` is given)."""
    code = answer.status_code
    if code is not None and 200 <= code < 300:
        return Step(WebhookDeliveryStatus.delivered)
    reason = answer.error or f"the endpoint answered {code}"
    retried = not answer.refused and (code is None or code == 429 or code >= 500)
    if not retried:
        return Step(WebhookDeliveryStatus.failed, reason=f"{reason}; not retried")
    wait = backoff(attempts)
    if answer.retry_after is not None and code in (429, 503):
        wait = timedelta(seconds=min(answer.retry_after, LONGEST_WAIT.total_seconds()))
    retry_at = now + wait
    if retry_at > give_up_at:
        return Step(
            WebhookDeliveryStatus.failed,
            reason=f"{reason}; gave up after {attempts} attempt(s) over three days",
        )
    return Step(WebhookDeliveryStatus.pending, retry_at, reason)


def lease_for(batch: int, timeout: float) -> timedelta:
    """How long a claim of ``batch`` deliveries holds: every one may take the whole timeout."""
    return timedelta(seconds=batch * timeout + 5)


def claim(engine: Engine, token: str, now: datetime, count: int, lease: timedelta) -> list[Claimed]:
    """Claim up to ``count`` deliveries due by ``now`` for this worker (``token``)."""
    free = or_(_D.claimed_until.is_(None), _D.claimed_until < now)
    with serial_claims(engine), engine.begin() as conn:
        query = (
            select(_D.id)
            .select_from(_DELIVERIES.join(_ENDPOINTS, _E.id == _D.endpoint_id))
            .where(_D.status == _PENDING, _D.next_attempt_at <= now, free, _E.enabled.is_(True))
            .order_by(_D.next_attempt_at, _D.id)
            .limit(count)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=_DELIVERIES)
        ids = [int(i) for i in conn.execute(query).scalars()]
        if not ids:
            return []
        # Conditional: a row another thread claimed meanwhile (SQLite) is not claimed twice.
        claimed = conn.execute(
            update(_DELIVERIES)
            .where(_D.id.in_(ids), _D.status == _PENDING, free)
            .values(claimed_by=token, claimed_until=now + lease)
            .returning(_D.id)
        ).scalars()
        mine = [int(i) for i in claimed]
        if not mine:
            return []
        rows = conn.execute(
            select(
                _D.id,
                _D.account_id,
                _D.endpoint_id,
                _E.url,
                _E.secret,
                _D.message_id,
                _D.body,
                _D.attempts,
                _D.give_up_at,
            )
            .select_from(_DELIVERIES.join(_ENDPOINTS, _E.id == _D.endpoint_id))
            .where(_D.id.in_(mine))
            .order_by(_D.next_attempt_at, _D.id)
        )
        return [Claimed(**row) for row in rows.mappings()]


def attempt(poster: Poster, delivery: Claimed, now: datetime) -> Answer:
    """POST one delivery, signed at ``now`` (the ``webhook-timestamp`` is the attempt's)."""
    body = delivery.body.encode()
    signed = headers(delivery.secret, delivery.message_id, int(now.timestamp()), body)
    return poster.post(delivery.url, body, signed)


@dataclass(frozen=True)
class Attempted:
    delivery: Claimed
    answer: Answer
    at: datetime


def record(engine: Engine, token: str, done: Sequence[Attempted], now: datetime) -> list[Step]:
    """Write the attempts, each delivery's next step, and the endpoints' health, at once."""
    if not done:
        return []
    steps = [next_step(a.answer, a.delivery.attempts + 1, a.delivery.give_up_at, now) for a in done]
    with engine.begin() as conn:
        conn.execute(
            insert(_ATTEMPTS),
            [
                {
                    "account_id": a.delivery.account_id,
                    "delivery_id": a.delivery.id,
                    "attempt": a.delivery.attempts + 1,
                    "status_code": a.answer.status_code,
                    "latency_ms": a.answer.latency_ms,
                    "response": a.answer.response,
                    "error": (a.answer.error or "")[:500] or None,
                    "attempted_at": a.at,
                }
                for a in done
            ],
        )
        conn.execute(
            update(_DELIVERIES)
            .where(_D.id == bindparam("b_id"), _D.claimed_by == token)
            .values(
                status=bindparam("b_status"),
                attempts=_D.attempts + 1,
                next_attempt_at=bindparam("b_next"),
                claimed_by=None,
                claimed_until=None,
                last_error=bindparam("b_error"),
                delivered_at=bindparam("b_delivered"),
            ),
            [
                {
                    "b_id": a.delivery.id,
                    "b_status": step.status.value,
                    "b_next": step.retry_at or a.at,
                    "b_error": (step.reason or "")[:500] or None,
                    "b_delivered": a.at if step.status == WebhookDeliveryStatus.delivered else None,
                }
                for a, step in zip(done, steps, strict=True)
            ],
        )
        _endpoint_health(conn, done, steps, now)
    return steps


def _endpoint_health(
    conn: Connection, done: Sequence[Attempted], steps: Sequence[Step], now: datetime
) -> None:
    """Endpoints that answered are healthy; those that failed are failing since their first
    failure; one failing for ``DISABLE_AFTER`` is disabled, the reason its last failure."""
    healthy = {
        a.delivery.endpoint_id
        for a, s in zip(done, steps, strict=True)
        if s.status == WebhookDeliveryStatus.delivered
    }
    failing: dict[int, str] = {}
    for a, step in zip(done, steps, strict=True):
        if step.status != WebhookDeliveryStatus.delivered and a.delivery.endpoint_id not in healthy:
            failing[a.delivery.endpoint_id] = step.reason or "it failed"
    if healthy:
        conn.execute(
            update(_ENDPOINTS)
            .where(_E.id.in_(healthy), _E.failing_since.is_not(None))
            .values(failing_since=None)
        )
    if not failing:
        return
    conn.execute(
        update(_ENDPOINTS)
        .where(_E.id.in_(failing), _E.failing_since.is_(None))
        .values(failing_since=now)
    )
    for endpoint_id, reason in failing.items():
        disabled = conn.execute(
            update(_ENDPOINTS)
            .where(
                _E.id == endpoint_id,
                _E.enabled.is_(True),
                _E.failing_since <= now - DISABLE_AFTER,
            )
            .values(
                enabled=False,
                disabled_reason=(
                    f"disabled at {now:%Y-%m-%d %H:%M} UTC: every delivery failed for five "
                    f"days; the last: {reason}"
                )[:500],
                updated_at=now,
            )
        )
        if disabled.rowcount:
            log.warning("webhook endpoint %d disabled: failing for five days", endpoint_id)


def deliver_next(
    engine: Engine,
    poster: Poster,
    *,
    token: str,
    count: int,
    timeout: float,
    clock: Any,
    stop: threading.Event | None = None,
) -> list[Step]:
    """Claim a batch of due deliveries, attempt each, record them; the steps taken (empty:
    nothing was due). ``clock`` gives the time (tests pin it)."""
    claimed = claim(engine, token, clock(), count, lease_for(count, timeout))
    done: list[Attempted] = []
    for delivery in claimed:
        if stop is not None and stop.is_set() and done:
            break  # the rest's leases run out and another worker takes them
        at = clock()
        done.append(Attempted(delivery, attempt(poster, delivery, at), at))
    released = [d.id for d in claimed[len(done) :]]
    if released:
        release(engine, token, released)
    return record(engine, token, done, clock())


def release(engine: Engine, token: str, ids: Sequence[int]) -> None:
    """Give back claimed deliveries never attempted (the worker is stopping)."""
    with engine.begin() as conn:
        conn.execute(
            update(_DELIVERIES)
            .where(_D.id.in_(ids), and_(_D.claimed_by == token))
            .values(claimed_by=None, claimed_until=None)
        )
