"""Recipient groups: named, editable sets of contacts. Deleting a group never deletes contacts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from reminders.db import utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import Contact, Group, GroupMember
from reminders.paging import page
from reminders.schemas.groups import GroupCreate, GroupUpdate


@dataclass(frozen=True)
class MembershipChange:
    added: int
    already_members: int
    member_count: int


def create_group(session: Session, data: GroupCreate) -> Group:
    _check_name_free(session, data.name, None)
    group = Group(**data.model_dump())
    session.add(group)
    _flush(session)
    return group


def get_group(session: Session, group_id: int) -> Group:
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound(f"no group with id {group_id}", field="id")
    return group


def update_group(session: Session, group_id: int, data: GroupUpdate) -> Group:
    group = get_group(session, group_id)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    if "name" in changes:
        if changes["name"] is None:
            raise InvalidField("may not be null", field="name")
        _check_name_free(session, changes["name"], group_id)
    for name, value in changes.items():
        setattr(group, name, value)
    group.updated_at = utcnow()
    session.add(group)
    _flush(session)
    return group


def delete_group(session: Session, group_id: int) -> None:
    group = get_group(session, group_id)
    session.exec(delete(GroupMember).where(col(GroupMember.group_id) == group_id))  # type: ignore[call-overload]
    session.delete(group)
    session.flush()


def list_groups(
    session: Session, *, limit: int, cursor: str | None
) -> tuple[Sequence[Group], str | None]:
    return page(session, select(Group), Group.id, limit=limit, cursor=cursor)


def member_counts(session: Session, group_ids: Sequence[int]) -> dict[int, int]:
    if not group_ids:
        return {}
    rows = session.exec(
        select(GroupMember.group_id, func.count())
        .where(col(GroupMember.group_id).in_(group_ids))
        .group_by(col(GroupMember.group_id))
    ).all()
    counts = {group_id: 0 for group_id in group_ids}
    counts.update({group_id: count for group_id, count in rows})
    return counts


def list_members(
    session: Session, group_id: int, *, limit: int, cursor: str | None
) -> tuple[Sequence[Contact], str | None]:
    get_group(session, group_id)
    query = select(Contact).join(GroupMember, col(GroupMember.contact_id) == col(Contact.id))
    query = query.where(GroupMember.group_id == group_id)
    return page(session, query, Contact.id, limit=limit, cursor=cursor)


def add_members(session: Session, group_id: int, contact_ids: Sequence[int]) -> MembershipChange:
    get_group(session, group_id)
    wanted = set(contact_ids)
    existing = set(session.exec(select(Contact.id).where(col(Contact.id).in_(wanted))).all())
    missing = sorted(wanted - existing)
    if missing:
        shown = ", ".join(str(i) for i in missing[:20])
        raise InvalidField(f"no contact with id {shown}", field="contact_ids")
    already = set(
        session.exec(
            select(GroupMember.contact_id).where(
                GroupMember.group_id == group_id, col(GroupMember.contact_id).in_(wanted)
            )
        ).all()
    )
    new = sorted(wanted - already)
    if new:
        now = utcnow()
        session.exec(  # type: ignore[call-overload]
            insert(GroupMember),
            params=[{"group_id": group_id, "contact_id": c, "added_at": now} for c in new],
        )
    session.flush()
    return MembershipChange(
        added=len(new),
        already_members=len(already),
        member_count=member_counts(session, [group_id])[group_id],
    )


def remove_member(session: Session, group_id: int, contact_id: int) -> None:
    get_group(session, group_id)
    member = session.get(GroupMember, (group_id, contact_id))
    if member is None:
        raise NotFound(
            f"contact {contact_id} is not a member of group {group_id}", field="contact_id"
        )
    session.delete(member)
    session.flush()


def group_contact_ids(
    session: Session, group_ids: Sequence[int], *, field: str = "to.groups"
) -> dict[int, list[int]]:
    """Member contact ids of each group; raises ``InvalidField`` naming unknown groups."""
    wanted = set(group_ids)
    found = set(session.exec(select(Group.id).where(col(Group.id).in_(wanted))).all())
    missing = sorted(wanted - found)
    if missing:
        shown = ", ".join(str(i) for i in missing[:20])
        raise InvalidField(f"no group with id {shown}", field=field)
    members: dict[int, list[int]] = {group_id: [] for group_id in group_ids}
    rows = session.exec(
        select(GroupMember.group_id, GroupMember.contact_id)
        .where(col(GroupMember.group_id).in_(wanted))
        .order_by(col(GroupMember.contact_id))
    ).all()
    for group_id, contact_id in rows:
        members[group_id].append(contact_id)
    return members


def _check_name_free(session: Session, name: str, own_id: int | None) -> None:
    other = session.exec(select(Group).where(Group.name == name)).first()
    if other is not None and other.id != own_id:
        raise Conflict(f"a group named {name!r} already exists (id {other.id})", field="name")


def _flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError:
        # Two requests racing for the same name: the unique index decides. The caller, whose
        # transaction this is, rolls it back.
        raise Conflict("a group with that name already exists", field="name") from None
