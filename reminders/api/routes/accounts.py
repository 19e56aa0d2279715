"""Accounts: the organisations this deployment serves; provider keys only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from reminders.accounts import crud
from reminders.api.deps import ProviderKey, UnscopedSessionDep
from reminders.models import Account
from reminders.schemas.accounts import AccountCreate, AccountOut, AccountUpdate

router = APIRouter(prefix="/accounts", tags=["accounts"])
SlugPath = Annotated[str, Path(min_length=1, max_length=40)]


def _out(account: Account) -> AccountOut:
    return AccountOut.model_validate(account, from_attributes=True)


@router.get("")
def list_accounts(session: UnscopedSessionDep, _: ProviderKey) -> list[AccountOut]:
    return [_out(a) for a in crud.list_accounts(session)]


@router.post("", status_code=201)
def create_account(data: AccountCreate, session: UnscopedSessionDep, _: ProviderKey) -> AccountOut:
    """A new account, with the two default policies (``appointment`` and ``bill``)."""
    account = crud.create_account(session, data)
    session.commit()
    return _out(account)


@router.get("/{slug}")
def get_account(slug: SlugPath, session: UnscopedSessionDep, _: ProviderKey) -> AccountOut:
    return _out(crud.get_account(session, slug))


@router.patch("/{slug}")
def update_account(
    slug: SlugPath, data: AccountUpdate, session: UnscopedSessionDep, _: ProviderKey
) -> AccountOut:
    """Change the named fields. ``status: suspended`` turns the account's keys away (403, with
    ``status_reason``) and holds its due notices until it is active again; none is lost."""
    account = crud.update_account(session, slug, data)
    session.commit()
    return _out(account)
