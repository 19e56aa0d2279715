"""Recipient groups and their members."""

from __future__ import annotations

from fastapi import APIRouter, Response

from reminders import groups
from reminders.api.deps import ReadKey, SessionDep, WriteKey
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, IdPath, Limit
from reminders.models import Group
from reminders.schemas.common import Page
from reminders.schemas.contacts import ContactOut
from reminders.schemas.groups import GroupCreate, GroupOut, GroupUpdate, MembersAdd, MembersAdded

router = APIRouter(prefix="/groups", tags=["groups"])


def _out(group: Group, count: int) -> GroupOut:
    return GroupOut(**group.model_dump(exclude={"id"}), id=group.id or 0, member_count=count)


@router.post("", status_code=201)
def create_group(data: GroupCreate, session: SessionDep, _: WriteKey) -> GroupOut:
    group = groups.create_group(session, data)
    session.commit()
    return _out(group, 0)


@router.get("")
def list_groups(
    session: SessionDep, _: ReadKey, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Page[GroupOut]:
    rows, next_cursor = groups.list_groups(session, limit=limit, cursor=cursor)
    counts = groups.member_counts(session, [g.id for g in rows if g.id is not None])
    return Page[GroupOut](items=[_out(g, counts[g.id or 0]) for g in rows], next_cursor=next_cursor)


@router.get("/{group_id}")
def get_group(group_id: IdPath, session: SessionDep, _: ReadKey) -> GroupOut:
    group = groups.get_group(session, group_id)
    return _out(group, groups.member_counts(session, [group_id])[group_id])


@router.patch("/{group_id}")
def update_group(group_id: IdPath, data: GroupUpdate, session: SessionDep, _: WriteKey) -> GroupOut:
    group = groups.update_group(session, group_id, data)
    session.commit()
    return _out(group, groups.member_counts(session, [group_id])[group_id])


@router.delete("/{group_id}", status_code=204)
def delete_group(group_id: IdPath, session: SessionDep, _: WriteKey) -> Response:
    groups.delete_group(session, group_id)
    session.commit()
    return Response(status_code=204)


@router.get("/{group_id}/members")
def list_members(
    group_id: IdPath,
    session: SessionDep,
    _: ReadKey,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Page[ContactOut]:
    rows, next_cursor = groups.list_members(session, group_id, limit=limit, cursor=cursor)
    items = [ContactOut.model_validate(c, from_attributes=True) for c in rows]
    return Page[ContactOut](items=items, next_cursor=next_cursor)


@router.post("/{group_id}/members")
def add_members(
    group_id: IdPath, data: MembersAdd, session: SessionDep, _: WriteKey
) -> MembersAdded:
    change = groups.add_members(session, group_id, data.contact_ids)
    session.commit()
    return MembersAdded(
        added=change.added, already_members=change.already_members, member_count=change.member_count
    )


@router.delete("/{group_id}/members/{contact_id}", status_code=204)
def remove_member(
    group_id: IdPath, contact_id: IdPath, session: SessionDep, _: WriteKey
) -> Response:
    groups.remove_member(session, group_id, contact_id)
    session.commit()
    return Response(status_code=204)
