"""Contacts."""

from __future__ import annotations

from fastapi import APIRouter, Response

from reminders import contacts
from reminders.api.deps import ReadKey, SchedulerDep, SessionDep, SettingsDep, WriteKey
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, IdPath, Limit, SearchText
from reminders.models import Contact
from reminders.pending_jobs import commit_and_schedule, unschedule_after_commit
from reminders.schemas.common import Page
from reminders.schemas.contacts import (
    ContactCreate,
    ContactOut,
    ContactPatched,
    ContactUpdate,
    NoticesFollowedOut,
)

router = APIRouter(prefix="/contacts", tags=["contacts"])


def _out(contact: Contact) -> ContactOut:
    return ContactOut.model_validate(contact, from_attributes=True)


@router.post("", status_code=201)
def create_contact(
    data: ContactCreate, session: SessionDep, settings: SettingsDep, _: WriteKey
) -> ContactOut:
    contact = contacts.create_contact(session, data, region=settings.default_region)
    session.commit()
    return _out(contact)


@router.get("")
def list_contacts(
    session: SessionDep,
    _: ReadKey,
    q: SearchText = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Page[ContactOut]:
    rows, next_cursor = contacts.list_contacts(session, q=q, limit=limit, cursor=cursor)
    return Page[ContactOut](items=[_out(c) for c in rows], next_cursor=next_cursor)


@router.get("/{contact_id}")
def get_contact(contact_id: IdPath, session: SessionDep, _: ReadKey) -> ContactOut:
    return _out(contacts.get_contact(session, contact_id))


@router.patch("/{contact_id}")
def update_contact(
    contact_id: IdPath,
    data: ContactUpdate,
    session: SessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    _: WriteKey,
) -> ContactPatched:
    """Change the named fields; pending notices follow a new phone, and an opt-out."""
    edited = contacts.edit_contact(session, contact_id, data, region=settings.default_region)
    unschedule_after_commit(session, scheduler, edited.notices.unscheduled)
    commit_and_schedule(session)
    return ContactPatched(
        **_out(edited.contact).model_dump(),
        notices=NoticesFollowedOut(**edited.notices.counts()),
    )


@router.delete("/{contact_id}", status_code=204)
def delete_contact(contact_id: IdPath, session: SessionDep, _: WriteKey) -> Response:
    contacts.delete_contact(session, contact_id)
    session.commit()
    return Response(status_code=204)
