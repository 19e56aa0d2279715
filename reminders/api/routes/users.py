"""The account's users (the control panel's people), managed by admin keys.

A provider key acts here in the account its ``Reminders-Account`` header names; provider
administrators themselves are made with the CLI and never appear here.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from reminders.accounts import users
from reminders.api.deps import AccountIdDep, AdminKey, SessionDep
from reminders.api.routes.common import IdPath
from reminders.models import User
from reminders.schemas.users import UserCreate, UserOut, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])


def _out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


@router.get("")
def list_users(session: SessionDep, _: AdminKey) -> list[UserOut]:
    return [_out(u) for u in users.list_users(session)]


@router.post("", status_code=201)
def create_user(
    data: UserCreate, session: SessionDep, account_id: AccountIdDep, _: AdminKey
) -> UserOut:
    """A user of the caller's account. The email is unique across the whole service, in any
    case; the password is stored as an Argon2 hash and never shown."""
    user = users.create_user(
        session,
        email=data.email,
        password=data.password,
        role=data.role,
        account_id=account_id,
        disabled=data.disabled,
    )
    session.commit()
    return _out(user)


@router.get("/{user_id}")
def get_user(user_id: IdPath, session: SessionDep, _: AdminKey) -> UserOut:
    return _out(users.get_user(session, user_id))


@router.patch("/{user_id}")
def update_user(user_id: IdPath, data: UserUpdate, session: SessionDep, _: AdminKey) -> UserOut:
    """Change the named fields. Disabling or demoting the account's last enabled admin user is
    refused with 409: make another one admin first."""
    user = users.update_user(session, user_id, data)
    session.commit()
    return _out(user)


@router.delete("/{user_id}", status_code=204)
def delete_user(user_id: IdPath, session: SessionDep, _: AdminKey) -> Response:
    """Delete a user; the account's last enabled admin user is refused with 409."""
    users.delete_user(session, user_id)
    session.commit()
    return Response(status_code=204)
