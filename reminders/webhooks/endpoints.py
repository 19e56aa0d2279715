"""An account's webhook endpoints: registered, changed, removed, and their secrets rotated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, col, select

from reminders.accounts.scoping import current
from reminders.db import utcnow
from reminders.errors import InvalidField, NotFound
from reminders.models import WebhookEndpoint
from reminders.schemas.webhooks import (
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from reminders.sources.fetch import Resolver, check_address
from reminders.webhooks.outbox import SUBSCRIPTIONS, database_of
from reminders.webhooks.posting import PRIVATE_WEBHOOKS
from reminders.webhooks.signing import new_secret

# Enough for every system an account feeds; each one is a POST per event.
MAX_ENDPOINTS = 20


@dataclass(frozen=True)
class Guard:
    """What a URL is checked against: REMINDERS_ALLOW_PRIVATE_WEBHOOKS (``resolver``: tests)."""

    allow_private: bool
    resolver: Resolver | None = None

    def check(self, url: str) -> None:
        try:
            check_address(
                url,
                allow_private=self.allow_private,
                private_setting=PRIVATE_WEBHOOKS,
                resolver=self.resolver,
            )
        except ValueError as exc:
            raise InvalidField(str(exc), field="url") from None


def create_endpoint(session: Session, data: WebhookCreate, guard: Guard) -> WebhookEndpoint:
    """Register an endpoint with a new secret (flushed)."""
    guard.check(data.url)
    count = len(session.exec(select(WebhookEndpoint.id)).all())
    if count >= MAX_ENDPOINTS:
        raise InvalidField(f"an account may have at most {MAX_ENDPOINTS} endpoints", field="url")
    endpoint = WebhookEndpoint(
        url=data.url,
        events=list(data.events),
        enabled=data.enabled,
        description=data.description,
        secret=new_secret(),
    )
    session.add(endpoint)
    session.flush()
    _changed(session)
    return endpoint


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """This account's endpoint ``endpoint_id``; another account's is not found."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook with id {endpoint_id}", field="id")
    return endpoint


def list_endpoints(session: Session) -> Sequence[WebhookEndpoint]:
    return session.exec(select(WebhookEndpoint).order_by(col(WebhookEndpoint.id))).all()


def update_endpoint(
    session: Session, endpoint_id: int, data: WebhookUpdate, guard: Guard
) -> WebhookEndpoint:
    endpoint = get_endpoint(session, endpoint_id)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    for required in ("url", "events", "enabled"):
        if required in changes and changes[required] is None:
            raise InvalidField("may not be null", field=required)
    if "url" in changes:
        guard.check(changes["url"])
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if changes.get("enabled"):
        # Enabled again by a person: the failures before do not count toward disabling it.
        endpoint.disabled_reason, endpoint.failing_since = None, None
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    session.flush()
    _changed(session)
    return endpoint


def delete_endpoint(session: Session, endpoint_id: int) -> None:
    """Remove the endpoint with its deliveries and their log (flushed)."""
    session.delete(get_endpoint(session, endpoint_id))
    session.flush()
    _changed(session)


def rotate_secret(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """A new secret; the old one signs nothing from now on (flushed)."""
    endpoint = get_endpoint(session, endpoint_id)
    endpoint.secret = new_secret()
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    session.flush()
    return endpoint


def endpoint_out(endpoint: WebhookEndpoint) -> WebhookOut:
    return WebhookOut.model_validate(endpoint, from_attributes=True)


def with_secret(endpoint: WebhookEndpoint) -> WebhookWithSecret:
    """The endpoint and its secret: only where the secret is made (creation, rotation)."""
    return WebhookWithSecret.model_validate(endpoint, from_attributes=True)


def _changed(session: Session) -> None:
    """Make this process read the account's endpoints again: now, and once the change is
    committed (another thread may read the old ones in between)."""
    database, account_id = database_of(session.connection()), current(session)
    SUBSCRIPTIONS.forget(database, account_id)

    def forget(_: Session) -> None:
        SUBSCRIPTIONS.forget(database, account_id)

    event.listen(session, "after_commit", forget, once=True)
