"""Creating, reading and changing accounts; a new one starts with the two default policies."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reminders.accounts.defaults import DEFAULT_POLICIES
from reminders.accounts.numbers import check_numbers_free
from reminders.accounts.scoping import account_of
from reminders.db import utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import Account, AccountStatus, Policy
from reminders.schemas.accounts import SLUG_RULE, AccountCreate, AccountUpdate, valid_slug

DEFAULT_SLUG = "default"  # the account the migration put every earlier row in


def _unscoped(session: Session) -> None:
    if account_of(session) is not None:
        raise RuntimeError("accounts are managed above any one account")


def create_account(session: Session, data: AccountCreate) -> Account:
    """A new account and its two default policies; flushed, the caller commits."""
    _unscoped(session)
    _check_default_sender(data.default_sender_id, data.sender_ids)
    if get_account_or_none(session, data.slug) is not None:
        raise Conflict(f"an account {data.slug!r} already exists", field="slug")
    numbers = list(dict.fromkeys(data.inbound_numbers))
    check_numbers_free(session, numbers, None)
    account = Account(
        slug=data.slug,
        name=data.name or data.slug,
        sender_ids=list(dict.fromkeys(data.sender_ids)),
        default_sender_id=data.default_sender_id,
        rate_share=data.rate_share,
        monthly_segments=data.monthly_segments,
        inbound_numbers=numbers,
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError:
        # Two requests racing for the same slug; the caller rolls its transaction back.
        raise Conflict(f"an account {data.slug!r} already exists", field="slug") from None
    assert account.id is not None
    for policy in DEFAULT_POLICIES:
        session.add(Policy(account_id=account.id, **policy))
    session.flush()
    return account


def _check_default_sender(default: str | None, allowed: list[str]) -> None:
    if default is not None and allowed and default not in allowed:
        raise InvalidField(
            f"{default!r} is not one of the account's sender_ids", field="default_sender_id"
        )


def get_account_or_none(session: Session, slug: str) -> Account | None:
    return session.exec(select(Account).where(Account.slug == slug)).first()


def get_account(session: Session, slug: str) -> Account:
    try:
        valid_slug(slug)
    except ValueError:
        raise InvalidField(f"{slug!r} is not a slug: {SLUG_RULE}", field="slug") from None
    account = get_account_or_none(session, slug)
    if account is None:
        raise NotFound(f"no account {slug!r}", field="slug")
    return account


def account_id_of(session: Session, slug: str) -> int:
    account = get_account(session, slug)
    assert account.id is not None
    return account.id


def list_accounts(session: Session) -> list[Account]:
    return list(session.exec(select(Account).order_by(col(Account.id))))


def update_account(session: Session, slug: str, data: AccountUpdate) -> Account:
    """Change the fields named in ``data``; flushed, the caller commits."""
    _unscoped(session)
    account = get_account(session, slug)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "rate_share", "status", "inbound_numbers"):
        if name in changes and changes[name] is None:
            raise InvalidField("may not be null", field=name)
    if "sender_ids" in changes:
        changes["sender_ids"] = list(dict.fromkeys(changes["sender_ids"] or []))
    if "inbound_numbers" in changes:
        changes["inbound_numbers"] = list(dict.fromkeys(changes["inbound_numbers"]))
        check_numbers_free(session, changes["inbound_numbers"], account.id)
    allowed = changes.get("sender_ids", account.sender_ids)
    _check_default_sender(changes.get("default_sender_id", account.default_sender_id), allowed)
    status = changes.get("status", account.status)
    if status == AccountStatus.active:
        changes["status_reason"] = None
    elif "status_reason" not in changes and account.status != AccountStatus.suspended:
        changes["status_reason"] = "suspended by the provider"
    for name, value in changes.items():
        setattr(account, name, value)
    account.updated_at = utcnow()
    session.add(account)
    session.flush()
    return account
