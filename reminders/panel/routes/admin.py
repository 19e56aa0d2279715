"""Administration: the account's users and roles, its API keys, and its sender IDs.

Account admins, and a provider administrator acting in the account. Every change goes through
the function the API's route uses (``accounts/users.py``, ``apikeys.py``, ``accounts/crud.py``),
so the rules are the domain's: the last enabled admin and the last admin key are refused there,
and shown here. Sender IDs are the provider's to set, as the API gives them to provider keys.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from reminders import apikeys
from reminders.accounts import crud, users
from reminders.api.routes.common import IdPath
from reminders.errors import Conflict, DomainError, InvalidField, NotFound
from reminders.models import Role, Scope
from reminders.panel.errors import not_found
from reminders.panel.pages import (
    Admin,
    Forbidden,
    Viewer,
    account_session,
    check_csrf,
    render,
    state_of,
)
from reminders.schemas.accounts import AccountUpdate
from reminders.schemas.keys import KeyCreate
from reminders.schemas.users import UserUpdate

router = APIRouter(include_in_schema=False)
ROLES = (Role.admin, Role.operator, Role.viewer)
KEY_SCOPES = (Scope.read, Scope.write, Scope.admin)


def _page(
    request: Request,
    who: Viewer,
    *,
    errors: dict[str, str] | None = None,
    given: dict[str, Any] | None = None,
    new_key: str | None = None,
    done: str | None = None,
    status_code: int = 200,
) -> Response:
    """The page; ``errors`` maps a field (or a row, ``user-3``) to the code of its message."""
    with account_session(request, who) as db:
        people = users.list_users(db)
        keys = apikeys.list_keys(db)
    context = {
        "people": people,
        "keys": keys,
        "roles": [str(r) for r in ROLES],
        "scopes": [str(s) for s in KEY_SCOPES],
        "account": who.account,
        "errors": errors or {},
        "given": given or {},
        "new_key": new_key,
        "done": done,
    }
    response = render(request, "admin.html", who, context, status_code=status_code)
    if new_key is not None:
        response.headers["Cache-Control"] = "no-store"  # the key is shown this once
    return response


def _back(done: str) -> Response:
    return RedirectResponse(f"/admin?done={done}", status_code=303)


def _code(exc: DomainError) -> str:
    """What the page says about a refusal: a code its template words in the viewer's language."""
    if isinstance(exc, Conflict):
        return "taken" if exc.field == "email" else "last"
    return "invalid"


@router.get("/admin")
def admin_page(request: Request, who: Admin, done: str | None = None) -> Response:
    return _page(request, who, done=done if done in DONE else None)


DONE = ("user_created", "user_changed", "key_revoked", "senders_changed")


@router.post("/admin/users", dependencies=[Depends(check_csrf)])
def create_user(
    request: Request,
    who: Admin,
    email: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=2000)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """A user of the account, as ``POST /api/v1/users``."""
    given = {"email": email, "role": role}
    with account_session(request, who) as db:
        try:
            users.create_user(
                db, email=email, password=password, role=role or None, account_id=who.account.id
            )
            db.commit()
        except DomainError as exc:
            db.rollback()
            field = exc.field if exc.field in ("email", "password", "role") else "email"
            errors = {field: _code(exc)}
            return _page(request, who, errors=errors, given=given, status_code=422)
    return _back("user_created")


def _change_user(request: Request, who: Admin, user_id: int, change: dict[str, Any]) -> Response:
    """Change one user as ``PATCH /api/v1/users/{id}``; the domain keeps the last admin."""
    try:
        data = UserUpdate.model_validate(change)
    except ValidationError:
        return _page(request, who, errors={f"user-{user_id}": "invalid"}, status_code=422)
    with account_session(request, who) as db:
        try:
            users.update_user(db, user_id, data)
            db.commit()
        except NotFound:
            db.rollback()
            return not_found(request, who)
        except DomainError as exc:
            db.rollback()
            status_code = 409 if isinstance(exc, Conflict) else 422
            errors = {f"user-{user_id}": _code(exc)}
            return _page(request, who, errors=errors, status_code=status_code)
    return _back("user_changed")


@router.post("/admin/users/{user_id}/role", dependencies=[Depends(check_csrf)])
def change_role(
    request: Request, who: Admin, user_id: IdPath, role: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    return _change_user(request, who, user_id, {"role": role})


@router.post("/admin/users/{user_id}/disabled", dependencies=[Depends(check_csrf)])
def change_disabled(
    request: Request, who: Admin, user_id: IdPath, disabled: Annotated[bool, Form()] = False
) -> Response:
    return _change_user(request, who, user_id, {"disabled": disabled})


@router.post("/admin/keys", dependencies=[Depends(check_csrf)])
def create_key(
    request: Request,
    who: Admin,
    name: Annotated[str, Form(max_length=400)] = "",
    scope: Annotated[str, Form(max_length=20)] = "read",
) -> Response:
    """A key of the account, as ``POST /api/v1/keys``: its secret is shown on this page, once."""
    given = {"key_name": name, "scope": scope}
    try:
        data = KeyCreate.model_validate({"name": name, "scope": scope})
    except ValidationError as exc:
        where = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
        field = "scope" if where == {"scope"} else "key_name"
        return _page(request, who, errors={field: "invalid"}, given=given, status_code=422)
    if data.scope not in KEY_SCOPES:  # a provider key is made with the CLI, as for the API
        return _page(request, who, errors={"scope": "invalid"}, given=given, status_code=422)
    with account_session(request, who) as db:
        try:
            new = apikeys.create_key(
                db, name=data.name, scope=data.scope, account_id=who.account.id
            )
            db.commit()
        except InvalidField as exc:
            db.rollback()
            field = "scope" if exc.field == "scope" else "key_name"
            return _page(request, who, errors={field: "invalid"}, given=given, status_code=422)
    return _page(request, who, new_key=new.secret)


@router.post("/admin/keys/{key_id}/revoke", dependencies=[Depends(check_csrf)])
def revoke_key(request: Request, who: Admin, key_id: IdPath) -> Response:
    """Revoke a key, as ``DELETE /api/v1/keys/{id}``; the last admin key is refused."""
    with account_session(request, who) as db:
        try:
            apikeys.revoke_key(db, key_id)
            db.commit()
        except NotFound:
            db.rollback()
            return not_found(request, who)
        except Conflict:
            db.rollback()
            return _page(request, who, errors={f"key-{key_id}": "last"}, status_code=409)
    return _back("key_revoked")


@router.post("/admin/senders", dependencies=[Depends(check_csrf)])
def change_senders(
    request: Request,
    who: Admin,
    sender_ids: Annotated[str, Form(max_length=2000)] = "",
    default_sender_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """The account's sender IDs, as ``PATCH /api/v1/accounts/{slug}``: provider administrators
    only, as that route is for provider keys."""
    if not who.provider:
        raise Forbidden
    given = {"sender_ids": sender_ids, "default_sender_id": default_sender_id}
    listed = [s.strip() for s in sender_ids.replace(",", "\n").splitlines() if s.strip()]
    try:
        data = AccountUpdate.model_validate(
            {"sender_ids": listed, "default_sender_id": default_sender_id.strip() or None}
        )
    except ValidationError as exc:
        where = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
        field = "default_sender_id" if where == {"default_sender_id"} else "sender_ids"
        return _page(request, who, errors={field: "invalid"}, given=given, status_code=422)
    with Session(state_of(request).engine, expire_on_commit=False) as db:
        try:
            crud.update_account(db, who.account.slug, data)
            db.commit()
        except InvalidField:
            db.rollback()
            errors = {"default_sender_id": "not_listed"}
            return _page(request, who, errors=errors, given=given, status_code=422)
    return _back("senders_changed")
