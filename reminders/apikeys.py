"""API keys: random bearer tokens, stored as SHA-256 digests, each with a scope."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from reminders.db import utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import ApiKey, Scope

KEY_PREFIX = "rmd_"
# Writing last_used_at on every request would turn each read into a write; a minute is plenty.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, name: str, scope: str, account_id: int | None) -> NewKey:
    """A key of ``account_id`` (a provider key: None, with the provider scope); flushed."""
    name = name.strip()
    if not name:
        raise InvalidField("a key needs a name", field="name")
    try:
        parsed = Scope(scope)
    except ValueError:
        raise InvalidField(
            f"{scope!r} is not one of read, write, admin, provider", field="scope"
        ) from None
    if (parsed == Scope.provider) != (account_id is None):
        message = (
            "a provider key belongs to no account"
            if parsed == Scope.provider
            else "a read, write or admin key belongs to an account"
        )
        raise InvalidField(message, field="scope")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        account_id=account_id,
        name=name,
        scope=parsed,
        key_hash=hash_key(secret),
        prefix=secret[:10],
    )
    session.add(key)
    session.flush()
    return NewKey(key=key, secret=secret)


def authenticate(session: Session, secret: str) -> ApiKey | None:
    """Return the live key matching ``secret``, or None; its last use is flushed."""
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if key is None or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        key.last_used_at = now
        session.add(key)
        session.flush()
    return key


def count_live_keys(session: Session) -> int:
    return session.exec(
        select(func.count()).select_from(ApiKey).where(col(ApiKey.revoked_at).is_(None))
    ).one()


def list_keys(session: Session) -> list[ApiKey]:
    """The keys the session sees: its account's, or every key for an unscoped one."""
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.id))))


def revoke_key(session: Session, key_id: int) -> ApiKey:
    """Revoke a key, unless it is the last live admin key (nobody could manage keys after it).

    The caller commits. Two revocations of the last two admin keys at once must not both pass:
    the live admin keys are locked first (PostgreSQL; SQLite runs one writer at a time anyway),
    so the second waits for the first, and the update itself only applies while another live
    admin key remains.
    """
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key with id {key_id}", field="id")
    if key.revoked_at is not None:
        return key
    # The last admin key of its account (or the last provider key) is the one kept.
    last_of = Scope.provider if key.scope == Scope.provider else Scope.admin
    same_owner = (
        col(ApiKey.account_id).is_(None)
        if key.account_id is None
        else col(ApiKey.account_id) == key.account_id
    )
    if key.scope == last_of:
        session.exec(
            select(ApiKey.id)
            .where(ApiKey.scope == last_of, col(ApiKey.revoked_at).is_(None), same_owner)
            .order_by(col(ApiKey.id))
            .with_for_update()
        ).all()
    other = aliased(ApiKey)
    other_owner = (
        col(other.account_id).is_(None)
        if key.account_id is None
        else col(other.account_id) == key.account_id
    )
    another_admin = (
        select(other.id)
        .where(
            other.scope == last_of,
            col(other.revoked_at).is_(None),
            other.id != key_id,
            other_owner,
        )
        .exists()
    )
    result = session.exec(  # type: ignore[call-overload]
        update(ApiKey)
        .where(
            col(ApiKey.id) == key_id,
            col(ApiKey.revoked_at).is_(None),
            or_(col(ApiKey.scope) != last_of, another_admin),
        )
        .values(revoked_at=utcnow())
    )
    session.refresh(key)
    if not result.rowcount and key.revoked_at is None:
        raise Conflict(
            f"key {key_id} is the last {last_of} key; create another {last_of} key before "
            "revoking it",
            field="id",
        )
    return key
