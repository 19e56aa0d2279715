"""Reminder policies: named lists of steps, validated when saved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reminders.accounts.scoping import account_of
from reminders.accounts.senders import check_sender_id
from reminders.db import utcnow
from reminders.durations import Offset
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import Anchor, NoticeKind, Policy
from reminders.reply_words import normalized
from reminders.scheduler.context import SAMPLE_CONTEXTS, TEMPLATE_VARIABLES
from reminders.scheduler.planning import Step
from reminders.schemas.policies import PolicyCreate, PolicyUpdate, Replies, ReplyAck, StepIn
from reminders.settings import Settings
from reminders.templates import check_template
from reminders.wall_clock import parse_time

STEP_KINDS = (NoticeKind.event_reminder, NoticeKind.bill_due, NoticeKind.bill_overdue)


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


def _checked_replies(replies: Replies | None, settings: Settings) -> dict[str, list[str]] | None:
    """The answer words as stored; None when the policy asks for no answer."""
    if replies is None:
        return None
    if not replies.confirm and not replies.cancel:
        raise InvalidField("name at least one word to confirm or to cancel", field="replies")
    seen: dict[str, str] = {}
    keywords = {
        normalized(word)
        for word in f"{settings.opt_out_keywords},{settings.opt_in_keywords}".split(",")
        if word.strip()
    }
    for kind in ("confirm", "cancel"):
        for index, word in enumerate(getattr(replies, kind)):
            field = f"replies.{kind}.{index}"
            read = normalized(word)
            if not read:
                raise InvalidField("must hold a letter or a digit", field=field)
            if read in keywords:
                # A keyword alone opts out or in, and is never read as an answer.
                raise InvalidField(
                    f"{word!r} is an opt-out or opt-in keyword (REMINDERS_OPT_OUT_KEYWORDS)",
                    field=field,
                )
            if seen.get(read, kind) != kind:
                raise InvalidField(f"{word!r} is also a word to {seen[read]}", field=field)
            seen[read] = kind
    return {"confirm": list(replies.confirm), "cancel": list(replies.cancel)}


def _checked_acks(reply_ack: ReplyAck | None) -> dict[str, str] | None:
    if reply_ack is None:
        return None
    acks = reply_ack.model_dump(exclude_none=True)
    for kind, template in acks.items():
        check_template(
            template,
            field=f"reply_ack.{kind}",
            variables=TEMPLATE_VARIABLES,
            samples=SAMPLE_CONTEXTS,
        )
    return acks or None


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


def create_policy(session: Session, data: PolicyCreate, settings: Settings) -> Policy:
    check_sender_id(session, data.sender_id)
    if get_policy_or_none(session, data.name) is not None:
        raise Conflict(f"a policy named {data.name!r} already exists", field="name")
    policy = Policy(
        name=data.name,
        description=data.description,
        steps=_checked_steps(data.steps),
        transliterate=data.transliterate,
        priority=data.priority,
        sender_id=data.sender_id,
        replies=_checked_replies(data.replies, settings),
        reply_ack=_checked_acks(data.reply_ack),
    )
    session.add(policy)
    try:
        session.flush()
    except IntegrityError:
        # Two requests racing for the same name; the caller rolls its transaction back.
        raise Conflict(f"a policy named {data.name!r} already exists", field="name") from None
    return policy


def get_policy_or_none(
    session: Session, name: str, *, account_id: int | None = None
) -> Policy | None:
    """The policy called ``name`` in the session's account, or in ``account_id``'s when the
    session sees every account."""
    query = select(Policy).where(Policy.name == name)
    if account_id is not None:
        query = query.where(Policy.account_id == account_id)
    elif account_of(session) is None:
        raise RuntimeError("a policy is looked up by name within an account")
    return session.exec(query).first()


def get_policy(session: Session, name: str, *, account_id: int | None = None) -> Policy:
    policy = get_policy_or_none(session, name, account_id=account_id)
    if policy is None:
        raise NotFound(f"no policy named {name!r}", field="name")
    return policy


def list_policies(session: Session) -> list[Policy]:
    return list(session.exec(select(Policy).order_by(col(Policy.name))))


def update_policy(session: Session, name: str, data: PolicyUpdate, settings: Settings) -> Policy:
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
        check_sender_id(session, data.sender_id)
        policy.sender_id = data.sender_id
    if "replies" in changes:
        policy.replies = _checked_replies(data.replies, settings)
    if "reply_ack" in changes:
        policy.reply_ack = _checked_acks(data.reply_ack)
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
