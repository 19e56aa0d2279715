"""The contacts screen: search, a contact's page (edit, opt out and back in), CSV import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from pydantic import ValidationError
from starlette.responses import Response

from reminders import contacts
from reminders.api.routes.common import MAX_SEARCH
from reminders.errors import DomainError, NotFound
from reminders.models import Contact
from reminders.panel import i18n
from reminders.panel.contacts import MAX_UPLOAD, form_values, import_upload, update_from_form
from reminders.panel.forms import messages_of, row_id
from reminders.panel.pages import (
    Operator,
    Reader,
    Viewer,
    account_session,
    check_csrf,
    render,
    state_of,
)
from reminders.pending_jobs import commit_and_schedule, unschedule_after_commit
from reminders.schemas.common import _no_control_chars
from reminders.schemas.contacts import ContactUpdate

router = APIRouter(include_in_schema=False)
PAGE = 50
Text = Annotated[str, Form(max_length=10_000)]


def _missing(request: Request, who: Viewer) -> Response:
    return render(request, "not_found.html", who, {"back": "/contacts"}, status_code=404)


@router.get("/contacts")
def contact_list(request: Request, who: Reader, q: str = "", cursor: str = "") -> Response:
    errors: dict[str, str] = {}
    rows: list[Contact] = []
    next_cursor = None
    try:
        if len(q) > MAX_SEARCH:
            raise DomainError(f"may be at most {MAX_SEARCH} characters long", field="q")
        try:
            _no_control_chars(q)
        except ValueError as exc:
            raise DomainError(str(exc), field="q") from None
        with account_session(request, who) as db:
            found, next_cursor = contacts.list_contacts(
                db, q=q or None, limit=PAGE, cursor=cursor or None
            )
            rows = list(found)
    except DomainError as exc:
        errors = {"q": exc.message}  # the search box, or the page link it made
    context = {"q": q, "rows": rows, "next_cursor": next_cursor, "errors": errors}
    if request.headers.get("hx-request") and not errors:
        return render(request, "contacts/_rows.html", who, context)
    return render(request, "contacts/list.html", who, context, status_code=422 if errors else 200)


def _contact_page(
    request: Request,
    who: Viewer,
    contact: Contact,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    done: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "contact": contact,
        "values": values or form_values(contact),
        "errors": errors or {},
        "done": done,
    }
    return render(request, "contacts/edit.html", who, context, status_code=status_code)


@router.get("/contacts/import")
def import_form(request: Request, who: Operator) -> Response:
    return render(request, "contacts/import.html", who, {"errors": {}, "result": None})


@router.post("/contacts/import", dependencies=[Depends(check_csrf)])
def import_file(request: Request, who: Operator, file: UploadFile | None = None) -> Response:
    """Import the uploaded CSV file as ``reminders import`` does: good rows kept, bad ones
    counted and offered back as CSV with the reason."""
    content = file.file.read(MAX_UPLOAD + 1) if file is not None else b""
    errors: dict[str, str] = {}
    result = None
    gettext = i18n.translations(who.lang).gettext
    if not content:
        errors["file"] = gettext("Choose a CSV file to import.")
    elif len(content) > MAX_UPLOAD:
        errors["file"] = gettext("The file is larger than %(mb)s MB; split it.") % {
            "mb": MAX_UPLOAD // (1024 * 1024)
        }
    else:
        assert who.account.id is not None
        panel = state_of(request)
        try:
            result = import_upload(
                panel.engine,
                content,
                account_id=who.account.id,
                region=panel.settings.default_region,
            )
        except DomainError as exc:
            errors = messages_of(exc)
    context = {"errors": errors, "result": result}
    return render(request, "contacts/import.html", who, context, status_code=422 if errors else 200)


@router.get("/contacts/{contact_id}")
def contact_page(request: Request, who: Reader, contact_id: str) -> Response:
    with account_session(request, who) as db:
        contact = db.get(Contact, row_id(contact_id))
        if contact is None:
            return _missing(request, who)
        return _contact_page(request, who, contact)


def _change(
    request: Request,
    who: Viewer,
    contact_id: int,
    data: ContactUpdate,
    *,
    values: dict[str, str] | None,
    what: str,
) -> Response:
    """Apply ``data`` as PATCH /contacts does: pending notices follow, jobs after the commit."""
    scheduler = request.app.state.scheduler
    region = state_of(request).settings.default_region
    with account_session(request, who) as db:
        if db.get(Contact, contact_id) is None:
            return _missing(request, who)
        try:
            edited = contacts.edit_contact(db, contact_id, data, region=region)
        except NotFound:
            return _missing(request, who)
        except DomainError as exc:
            db.rollback()
            contact = contacts.get_contact(db, contact_id)
            return _contact_page(
                request, who, contact, values=values, errors=messages_of(exc), status_code=422
            )
        unschedule_after_commit(db, scheduler, edited.notices.unscheduled)
        commit_and_schedule(db)
        done = {"what": what, **edited.notices.counts()}
        return _contact_page(request, who, edited.contact, done=done)


@router.post("/contacts/{contact_id}", dependencies=[Depends(check_csrf)])
def save_contact(
    request: Request,
    who: Operator,
    contact_id: str,
    name: Text = "",
    phone: Text = "",
    email: Text = "",
    timezone: Text = "",
    language: Text = "bg",
    external_id: Text = "",
    attributes: Text = "",
) -> Response:
    values = {
        "name": name,
        "phone": phone,
        "email": email,
        "timezone": timezone,
        "language": language,
        "external_id": external_id,
        "attributes": attributes,
    }
    try:
        data = update_from_form(values)
    except (ValidationError, DomainError) as exc:
        with account_session(request, who) as db:
            contact = db.get(Contact, row_id(contact_id))
            if contact is None:
                return _missing(request, who)
            errors = messages_of(exc, ContactUpdate)
            return _contact_page(
                request, who, contact, values=values, errors=errors, status_code=422
            )
    return _change(request, who, row_id(contact_id), data, values=values, what="saved")


@router.post("/contacts/{contact_id}/opt-out", dependencies=[Depends(check_csrf)])
def opt_out(request: Request, who: Operator, contact_id: str) -> Response:
    data = ContactUpdate(opted_out=True)
    return _change(request, who, row_id(contact_id), data, values=None, what="opted_out")


@router.post("/contacts/{contact_id}/opt-in", dependencies=[Depends(check_csrf)])
def opt_in(request: Request, who: Operator, contact_id: str) -> Response:
    data = ContactUpdate(opted_out=False)
    return _change(request, who, row_id(contact_id), data, values=None, what="opted_in")
