"""An endpoint's delivery log, and redelivering one delivery on request."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from reminders.db import utcnow
from reminders.errors import Conflict, NotFound
from reminders.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus
from reminders.paging import page
from reminders.schemas.webhooks import AttemptOut, DeliveryOut
from reminders.webhooks.endpoints import get_endpoint
from reminders.webhooks.outbox import RETRY_FOR

_PENDING = WebhookDeliveryStatus.pending


def list_deliveries(
    session: Session, endpoint_id: int, *, limit: int, cursor: str | None
) -> tuple[list[DeliveryOut], str | None]:
    """The endpoint's deliveries, oldest first, each with its attempts."""
    get_endpoint(session, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    rows, next_cursor = page(session, query, WebhookDelivery.id, limit=limit, cursor=cursor)
    return _with_log(session, rows), next_cursor


def get_delivery(session: Session, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    get_endpoint(session, endpoint_id)
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise NotFound(f"no delivery with id {delivery_id} for this webhook", field="delivery_id")
    return delivery


def delivery_out(session: Session, delivery: WebhookDelivery) -> DeliveryOut:
    return _with_log(session, [delivery])[0]


def redeliver(session: Session, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Attempt the delivery again now, with the same ``webhook-id``, and retry it for three
    more days if it fails (flushed). One being attempted right now is a conflict."""
    delivery = get_delivery(session, endpoint_id, delivery_id)
    now = utcnow()
    claimed = delivery.claimed_until is not None and delivery.claimed_until > now
    if delivery.status == WebhookDeliveryStatus.pending and claimed:
        raise Conflict("this delivery is being attempted now", field="delivery_id")
    delivery.status = WebhookDeliveryStatus.pending
    delivery.next_attempt_at = now
    delivery.give_up_at = now + RETRY_FOR
    delivery.claimed_by, delivery.claimed_until = None, None
    session.add(delivery)
    session.flush()
    return delivery


def _with_log(session: Session, deliveries: Sequence[WebhookDelivery]) -> list[DeliveryOut]:
    ids = [d.id for d in deliveries]
    attempts: dict[int, list[AttemptOut]] = {i: [] for i in ids if i is not None}
    if ids:
        rows = session.exec(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(ids))
            .order_by(col(WebhookAttempt.id))
        )
        for row in rows:
            attempts[row.delivery_id].append(AttemptOut.model_validate(row, from_attributes=True))
    return [
        DeliveryOut(
            id=d.id or 0,
            webhook_id=d.message_id,
            event_type=d.event_type,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status == _PENDING else None,
            last_error=d.last_error,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
            log=attempts.get(d.id or 0, []),
        )
        for d in deliveries
    ]
