"""The groups screen: the account's groups with their sizes, and a group's members.

Everyone reads; operators create, rename and delete groups and add members (found by a
search, or numbers pasted: ``panel/groups.py``) or remove them. Through the same functions as
``/api/v1/groups`` (``reminders/groups.py``).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from reminders import contacts, groups
from reminders.errors import DomainError, InvalidField, NotFound
from reminders.field_errors import field_errors
from reminders.models import Group, Role
from reminders.panel.compose import read_numbers
from reminders.panel.groups import contacts_for_numbers
from reminders.panel.pages import (
    CSRF,
    Operator,
    Reader,
    Viewer,
    account_session,
    render,
    state_of,
)
from reminders.panel.routes.compose import refused_number
from reminders.panel.said import Errors, _, add
from reminders.schemas.common import MAX_ID, as_id
from reminders.schemas.groups import GroupCreate, GroupUpdate

router = APIRouter(include_in_schema=False)
PAGE = 50
SEARCH_LIMIT = 20
Text = Annotated[str, Form(max_length=20_000)]


def _group_id(raw: str) -> int:
    found = as_id(raw)
    if found is None:
        raise NotFound("no such group", field="id")
    return found


def _missing(request: Request, who: Viewer) -> Response:
    return render(request, "not_found.html", who, status_code=404)


def _name_errors(exc: ValidationError | DomainError, errors: Errors) -> None:
    if isinstance(exc, ValidationError):
        for error in field_errors(GroupCreate, exc.errors()):
            add(errors, "name", _("Refused: %(reason)s", reason=error.message))
    elif "already exists" in exc.message:
        add(errors, "name", _("Another group already has this name."))
    else:
        add(errors, "name", _("Refused: %(reason)s", reason=exc.message))


# --- the list


def _list_page(
    request: Request,
    who: Viewer,
    db: Session,
    *,
    cursor: str | None = None,
    name: str = "",
    errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    try:
        rows, next_cursor = groups.list_groups(db, limit=PAGE, cursor=cursor)
    except InvalidField:  # a cursor we did not give out: the first page
        rows, next_cursor = groups.list_groups(db, limit=PAGE, cursor=None)
    counts = groups.member_counts(db, [g.id for g in rows if g.id is not None])
    context = {
        "rows": [(g, counts.get(g.id or 0, 0)) for g in rows],
        "next_cursor": next_cursor,
        "name": name,
        "errors": errors or {},
    }
    return render(request, "groups.html", who, context, status_code=status_code)


@router.get("/groups")
def group_list(request: Request, who: Reader, cursor: str | None = None) -> Response:
    with account_session(request, who) as db:
        return _list_page(request, who, db, cursor=(cursor or "")[:200] or None)


@router.post("/groups", dependencies=CSRF)
def create_group(request: Request, who: Operator, name: Text = "") -> Response:
    errors: Errors = {}
    with account_session(request, who) as db:
        try:
            group = groups.create_group(db, GroupCreate(name=name))
            db.commit()
        except (ValidationError, DomainError) as exc:
            db.rollback()
            _name_errors(exc, errors)
            return _list_page(request, who, db, name=name, errors=errors, status_code=422)
    return RedirectResponse(f"/groups/{group.id}", status_code=303)


# --- one group


def _group_page(
    request: Request,
    who: Viewer,
    db: Session,
    group: Group,
    *,
    cursor: str | None = None,
    q: str = "",
    numbers: str = "",
    name: str | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    assert group.id is not None
    try:
        members, next_cursor = groups.list_members(db, group.id, limit=PAGE, cursor=cursor)
    except InvalidField:  # a cursor we did not give out: the first page
        members, next_cursor = groups.list_members(db, group.id, limit=PAGE, cursor=None)
    found: list[Any] = []
    if q and who.may(Role.operator):
        rows, _next = contacts.list_contacts(db, q=q, limit=SEARCH_LIMIT, cursor=None)
        found = list(rows)
    context = {
        "group": group,
        "count": groups.member_counts(db, [group.id])[group.id],
        "members": members,
        "next_cursor": next_cursor,
        "q": q,
        "found": found,
        "numbers": numbers,
        "name": group.name if name is None else name,
        "errors": errors or {},
        "done": {k: int(v) for k, v in request.query_params.items() if k in DONE and v.isdigit()},
    }
    return render(request, "group.html", who, context, status_code=status_code)


# What a change says when its redirect comes back (the counts it made, in the query).
DONE = ("added", "already", "created", "removed", "renamed")


def _back(group_id: int, **done: int) -> Response:
    query = urlencode({k: v for k, v in done.items()})
    return RedirectResponse(f"/groups/{group_id}" + (f"?{query}" if query else ""), 303)


@router.get("/groups/{group_id}")
def group_page(
    request: Request, who: Reader, group_id: str, cursor: str | None = None, q: str = ""
) -> Response:
    with account_session(request, who) as db:
        try:
            group = groups.get_group(db, _group_id(group_id))
        except NotFound:
            return _missing(request, who)
        return _group_page(request, who, db, group, cursor=cursor, q=q.strip()[:200])


@router.get("/groups/{group_id}/search")
def member_search(request: Request, who: Operator, group_id: str, q: str = "") -> Response:
    """The contacts a search finds, to add (htmx's live search; without it, the page's own)."""
    with account_session(request, who) as db:
        try:
            group = groups.get_group(db, _group_id(group_id))
        except NotFound:
            return _missing(request, who)
        rows, _next = contacts.list_contacts(db, q=q.strip()[:200], limit=SEARCH_LIMIT, cursor=None)
        context = {"group": group, "found": list(rows) if q.strip() else [], "q": q.strip()}
        return render(request, "group_found.html", who, context)


@router.post("/groups/{group_id}/rename", dependencies=CSRF)
def rename(request: Request, who: Operator, group_id: str, name: Text = "") -> Response:
    with account_session(request, who) as db:
        try:
            group = groups.get_group(db, _group_id(group_id))
        except NotFound:
            return _missing(request, who)
        try:
            groups.update_group(db, group.id or 0, GroupUpdate(name=name))
            db.commit()
        except (ValidationError, DomainError) as exc:
            db.rollback()
            errors: Errors = {}
            _name_errors(exc, errors)
            group = groups.get_group(db, group.id or 0)
            return _group_page(request, who, db, group, name=name, errors=errors, status_code=422)
    return _back(group.id or 0, renamed=1)


@router.post("/groups/{group_id}/delete", dependencies=CSRF)
def delete(
    request: Request, who: Operator, group_id: str, sure: Annotated[str, Form()] = ""
) -> Response:
    with account_session(request, who) as db:
        try:
            group = groups.get_group(db, _group_id(group_id))
            if sure != "yes":  # the box the form requires, in case the browser did not
                errors: Errors = {"sure": [_("Tick the box to delete the group.")]}
                return _group_page(request, who, db, group, errors=errors, status_code=422)
            groups.delete_group(db, group.id or 0)
        except NotFound:
            return _missing(request, who)
        db.commit()
    return RedirectResponse("/groups", status_code=303)


async def ticked(request: Request) -> list[int]:
    """The contacts ticked in a search (a dependency: the body is read once, the CSRF
    check's). A value that is no id of ours stays in, to be not found like another
    account's."""
    form = await request.form()
    ids = []
    for value in form.getlist("contact"):
        found = as_id(value) if isinstance(value, str) else None
        ids.append(found if found is not None else MAX_ID)
    return ids


@router.post("/groups/{group_id}/members", dependencies=CSRF)
def add_found(
    request: Request,
    who: Operator,
    group_id: str,
    ids: Annotated[list[int], Depends(ticked)],
) -> Response:
    """Add the contacts ticked in a search."""
    with account_session(request, who) as db:
        try:
            group = groups.get_group(db, _group_id(group_id))
            if not ids:
                errors: Errors = {"search": [_("Tick the contacts to add.")]}
                return _group_page(request, who, db, group, errors=errors, status_code=422)
            change = groups.add_members(db, group.id or 0, ids)
        except (NotFound, InvalidField):
            # Another account's group or contact: as if it did not exist.
            return _missing(request, who)
        db.commit()
    return _back(group.id or 0, added=change.added, already=change.already_members)


@router.post("/groups/{group_id}/numbers", dependencies=CSRF)
def add_numbers(request: Request, who: Operator, group_id: str, numbers: Text = "") -> Response:
    """Add pasted numbers: each one's contact, made where there is none."""
    region = state_of(request).settings.default_region
    with account_session(request, who) as db:
        try:
            group = groups.get_group(db, _group_id(group_id))
        except NotFound:
            return _missing(request, who)
        read = read_numbers(numbers, region)
        errors: Errors = {}
        for bad in read.bad:
            add(errors, "numbers", refused_number(bad))
        if not read.phones and not errors:
            add(errors, "numbers", _("Paste at least one number."))
        if errors:
            return _group_page(
                request, who, db, group, numbers=numbers, errors=errors, status_code=422
            )
        made = contacts_for_numbers(db, read.phones, region)
        change = groups.add_members(db, group.id or 0, made.contact_ids)
        db.commit()
    return _back(
        group.id or 0, added=change.added, already=change.already_members, created=made.created
    )


@router.post("/groups/{group_id}/members/{contact_id}/remove", dependencies=CSRF)
def remove(request: Request, who: Operator, group_id: str, contact_id: str) -> Response:
    with account_session(request, who) as db:
        try:
            member = as_id(contact_id)
            if member is None:
                raise NotFound("no such contact", field="contact_id")
            group_number = _group_id(group_id)
            groups.remove_member(db, group_number, member)
        except NotFound:
            return _missing(request, who)
        db.commit()
    return _back(group_number, removed=1)
