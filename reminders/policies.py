"""Reminder policies: named lists of steps, validated when saved."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reminders.db import utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import Anchor, NoticeKind, Policy, Priority
from reminders.scheduler.context import SAMPLE_CONTEXTS, TEMPLATE_VARIABLES
from reminders.scheduler.planning import Offset, Step, parse_time
from reminders.schemas import Input, SenderId, _no_control_chars
from reminders.templates import check_template

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
STEP_KINDS = (NoticeKind.event_reminder, NoticeKind.bill_due, NoticeKind.bill_overdue)


def _policy_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def _offset(value: str) -> str:
    return str(Offset.parse(value))


def _clock(value: str) -> str:
    return parse_time(value).strftime("%H:%M")


PolicyName = Annotated[str, AfterValidator(_policy_name)]
Template = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_no_control_chars)]


class StepIn(Input):
    offset: Annotated[str, Field(max_length=40), AfterValidator(_offset)] = Field(
        description="Signed ISO 8601 duration from the anchor: -P1D, -PT2H, P3D."
    )
    at: Annotated[str, Field(max_length=5), AfterValidator(_clock)] | None = Field(
        default=None, description="Local time of day (HH:MM) in the recipient's zone."
    )
    template: Template
    kind: NoticeKind | None = Field(
        default=None, description="Kind of notice; by default taken from the anchor."
    )


class PolicyCreate(Input):
    name: PolicyName
    description: (
        Annotated[str, Field(max_length=2000), AfterValidator(_no_control_chars)] | None
    ) = None
    steps: list[StepIn] = Field(min_length=1, max_length=20)
    transliterate: bool | None = Field(
        default=None, description="Latin letters for its messages; null: the setting decides."
    )
    priority: Priority = Field(
        default=Priority.bulk,
        description="transactional: its notices skip quiet hours and never wait behind bulk "
        "ones (payment failures, card alerts); bulk: reminders.",
    )
    sender_id: SenderId | None = Field(
        default=None, description="Sender ID of its messages; null: REMINDERS_SENDER_ID."
    )


class PolicyUpdate(Input):
    description: (
        Annotated[str, Field(max_length=2000), AfterValidator(_no_control_chars)] | None
    ) = None
    steps: list[StepIn] | None = Field(default=None, min_length=1, max_length=20)
    transliterate: bool | None = None
    priority: Priority | None = None
    sender_id: SenderId | None = None


class StepOut(BaseModel):
    offset: str
    at: str | None
    template: str
    kind: NoticeKind | None


class PolicyOut(BaseModel):
    id: int
    name: str
    description: str | None
    steps: list[StepOut]
    transliterate: bool | None
    priority: Priority
    sender_id: str | None
    created_at: datetime
    updated_at: datetime
    planned: dict[str, int] | None = Field(
        default=None,
        description="After an edit: what re-planning its anchors with reminders to come did.",
    )


def _checked_steps(steps: Sequence[StepIn]) -> list[dict[str, Any]]:
    for index, step in enumerate(steps):
        if step.kind is not None and step.kind not in STEP_KINDS:
            raise InvalidField(
                "must be event_reminder, bill_due or bill_overdue", field=f"steps.{index}.kind"
            )
        # Only the names a notice provides when it fires, and within bounds on a typical one.
        check_template(
            step.template,
            field=f"steps.{index}.template",
            variables=TEMPLATE_VARIABLES,
            samples=SAMPLE_CONTEXTS,
        )
    return [step.model_dump(mode="json") for step in steps]


def planning_steps(policy: Policy) -> list[Step]:
    """The policy's steps as the planner takes them."""
    return [
        Step(
            offset=Offset.parse(raw["offset"]),
            at=parse_time(raw["at"]) if raw.get("at") else None,
            kind=raw.get("kind"),
        )
        for raw in policy.steps
    ]


def create_policy(session: Session, data: PolicyCreate) -> Policy:
    if get_policy_or_none(session, data.name) is not None:
        raise Conflict(f"a policy named {data.name!r} already exists", field="name")
    policy = Policy(
        name=data.name,
        description=data.description,
        steps=_checked_steps(data.steps),
        transliterate=data.transliterate,
        priority=data.priority,
        sender_id=data.sender_id,
    )
    session.add(policy)
    try:
        session.flush()
    except IntegrityError:
        # Two requests racing for the same name; the caller rolls its transaction back.
        raise Conflict(f"a policy named {data.name!r} already exists", field="name") from None
    return policy


def get_policy_or_none(session: Session, name: str) -> Policy | None:
    return session.exec(select(Policy).where(Policy.name == name)).first()


def get_policy(session: Session, name: str) -> Policy:
    policy = get_policy_or_none(session, name)
    if policy is None:
        raise NotFound(f"no policy named {name!r}", field="name")
    return policy


def list_policies(session: Session) -> list[Policy]:
    return list(session.exec(select(Policy).order_by(col(Policy.name))))


def update_policy(session: Session, name: str, data: PolicyUpdate) -> Policy:
    policy = get_policy(session, name)
    changes = data.model_dump(exclude_unset=True)
    if "steps" in changes:
        if data.steps is None:
            raise InvalidField("may not be null", field="steps")
        policy.steps = _checked_steps(data.steps)
    if "description" in changes:
        policy.description = data.description
    if "transliterate" in changes:
        policy.transliterate = data.transliterate
    if "priority" in changes:
        if data.priority is None:
            raise InvalidField("may not be null; use transactional or bulk", field="priority")
        policy.priority = data.priority
    if "sender_id" in changes:
        policy.sender_id = data.sender_id
    policy.updated_at = utcnow()
    session.add(policy)
    session.flush()
    return policy


def delete_policy(session: Session, name: str) -> None:
    policy = get_policy(session, name)
    in_use = session.exec(
        select(Anchor.id).where(Anchor.policy == name, col(Anchor.cancelled).is_(False))
    ).first()
    if in_use is not None:
        raise Conflict(f"policy {name!r} is used by anchor {in_use}; move it first", field="name")
    session.delete(policy)
    session.flush()
