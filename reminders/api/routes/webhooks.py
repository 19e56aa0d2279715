"""Webhook endpoints, their secrets and their delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from reminders.api.deps import ReadKey, SessionDep, SettingsDep, WriteKey
from reminders.api.routes.common import Cursor, IdPath, Limit
from reminders.paging import DEFAULT_LIMIT
from reminders.schemas.common import MAX_ID, Page
from reminders.schemas.webhooks import (
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from reminders.settings import Settings
from reminders.webhooks import deliveries, endpoints
from reminders.webhooks.endpoints import Guard, endpoint_out, with_secret

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
DeliveryPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def _guard(settings: Settings) -> Guard:
    return Guard(allow_private=settings.allow_private_webhooks)


@router.post("", status_code=201)
def create_webhook(
    data: WebhookCreate, session: SessionDep, settings: SettingsDep, _: WriteKey
) -> WebhookWithSecret:
    """Register an endpoint. Its signing secret is in this answer, and never shown again."""
    endpoint = endpoints.create_endpoint(session, data, _guard(settings))
    session.commit()
    return with_secret(endpoint)


@router.get("")
def list_webhooks(session: SessionDep, _: ReadKey) -> list[WebhookOut]:
    return [endpoint_out(e) for e in endpoints.list_endpoints(session)]


@router.get("/{webhook_id}")
def get_webhook(webhook_id: IdPath, session: SessionDep, _: ReadKey) -> WebhookOut:
    return endpoint_out(endpoints.get_endpoint(session, webhook_id))


@router.patch("/{webhook_id}")
def update_webhook(
    webhook_id: IdPath,
    data: WebhookUpdate,
    session: SessionDep,
    settings: SettingsDep,
    _: WriteKey,
) -> WebhookOut:
    endpoint = endpoints.update_endpoint(session, webhook_id, data, _guard(settings))
    session.commit()
    return endpoint_out(endpoint)


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: IdPath, session: SessionDep, _: WriteKey) -> Response:
    """Remove the endpoint; its deliveries not yet made are dropped with its log."""
    endpoints.delete_endpoint(session, webhook_id)
    session.commit()
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret")
def rotate_secret(webhook_id: IdPath, session: SessionDep, _: WriteKey) -> WebhookWithSecret:
    """A new signing secret, shown this once; the old one signs nothing from now on."""
    endpoint = endpoints.rotate_secret(session, webhook_id)
    session.commit()
    return with_secret(endpoint)


@router.get("/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: IdPath,
    session: SessionDep,
    _: ReadKey,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[DeliveryOut]:
    """The delivery log: each event sent to this endpoint, with every attempt."""
    items, next_cursor = deliveries.list_deliveries(session, webhook_id, limit=limit, cursor=cursor)
    return Page[DeliveryOut](items=items, next_cursor=next_cursor)


@router.get("/{webhook_id}/deliveries/{delivery_id}")
def get_delivery(
    webhook_id: IdPath, delivery_id: DeliveryPath, session: SessionDep, _: ReadKey
) -> DeliveryOut:
    delivery = deliveries.get_delivery(session, webhook_id, delivery_id)
    return deliveries.delivery_out(session, delivery)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202)
def redeliver(
    webhook_id: IdPath, delivery_id: DeliveryPath, session: SessionDep, _: WriteKey
) -> DeliveryOut:
    """Attempt it again now, with the same webhook-id (and retry it for three more days)."""
    delivery = deliveries.redeliver(session, webhook_id, delivery_id)
    session.commit()
    return deliveries.delivery_out(session, delivery)
