"""API keys, managed by admin keys only."""

from __future__ import annotations

from fastapi import APIRouter

from reminders import apikeys
from reminders.api.deps import AdminKey, CallerDep, SessionDep
from reminders.api.routes.common import IdPath
from reminders.errors import InvalidField
from reminders.models import Scope
from reminders.schemas.keys import KeyCreate, KeyCreated, KeyOut

router = APIRouter(prefix="/keys", tags=["keys"])


@router.get("")
def list_keys(session: SessionDep, _: AdminKey) -> list[KeyOut]:
    return [KeyOut.model_validate(k, from_attributes=True) for k in apikeys.list_keys(session)]


@router.post("", status_code=201)
def create_key(data: KeyCreate, session: SessionDep, caller: CallerDep, _: AdminKey) -> KeyCreated:
    """A key of the caller's account; provider keys are made with the CLI."""
    if data.scope == Scope.provider:
        raise InvalidField(
            "a provider key is made with `reminders apikey create NAME --scope provider`",
            field="scope",
        )
    new = apikeys.create_key(
        session, name=data.name, scope=data.scope, account_id=caller.account_id
    )
    session.commit()
    return KeyCreated(
        **KeyOut.model_validate(new.key, from_attributes=True).model_dump(), key=new.secret
    )


@router.delete("/{key_id}")
def revoke_key(key_id: IdPath, session: SessionDep, _: AdminKey) -> KeyOut:
    key = apikeys.revoke_key(session, key_id)
    session.commit()
    return KeyOut.model_validate(key, from_attributes=True)
