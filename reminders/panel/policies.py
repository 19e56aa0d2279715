"""The policies screen's plain functions: the steps form, a template's preview and a dry run.

- ``steps_from_form``: the steps editor's rows (kept, removed, the new one) as the API's steps.
- ``preview``: a step's template rendered as a notice would render it, on a sample contact, and
  what the SMS costs; an error in the template's own words (the sandbox's), never an exception.
- ``dry_run``: what the saved policy would send over the next days, from the anchors (events,
  bills) that use it, planned and rendered as the scheduler would, without writing anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from reminders.db import utcnow
from reminders.errors import InvalidField
from reminders.models import PENDING, Anchor, AnchorRecipient, Contact, Notice, NoticeStatus, Policy
from reminders.policies import planning_steps
from reminders.scheduler.anchors import PolicyPlan, Recipient, desired_notices
from reminders.scheduler.context import (
    TEMPLATE_VARIABLES,
    TemplateContexts,
    sample_context,
)
from reminders.sender.compose import compose
from reminders.settings import Settings
from reminders.templates import RenderError, check_template, render

# A notice in one of these states may still be planned (again); any other went out or ended.
_STILL_OPEN = {*PENDING, NoticeStatus.expired, NoticeStatus.cancelled}
_SLACK = timedelta(days=2)  # a step's time of day and quiet hours move it within a day or so


@dataclass
class StepRow:
    """One row of the steps editor, as typed."""

    offset: str = ""
    at: str = ""
    kind: str = ""
    template: str = ""

    def as_step(self) -> dict[str, Any]:
        step: dict[str, Any] = {"offset": self.offset.strip(), "template": self.template}
        if self.at.strip():
            step["at"] = self.at.strip()
        if self.kind.strip():
            step["kind"] = self.kind.strip()
        return step


def rows_of(policy: Policy) -> list[StepRow]:
    return [
        StepRow(s["offset"], s.get("at") or "", s.get("kind") or "", s["template"])
        for s in policy.steps
    ]


def steps_from_form(
    offsets: Sequence[str],
    ats: Sequence[str],
    kinds: Sequence[str],
    templates: Sequence[str],
    removed: Sequence[str],
) -> tuple[list[StepRow], list[dict[str, Any]]]:
    """The editor's rows as typed (for showing the form again) and the steps they ask for.

    Rows come as parallel lists; a row whose index is in ``removed`` goes, and a row left
    entirely empty (the blank one for a new step) is no step.
    """
    count = max(len(offsets), len(ats), len(kinds), len(templates))

    def at(values: Sequence[str], index: int) -> str:
        return values[index] if index < len(values) else ""

    gone = set(removed)
    rows: list[StepRow] = []
    for index in range(count):
        row = StepRow(at(offsets, index), at(ats, index), at(kinds, index), at(templates, index))
        if str(index) in gone or not (row.offset.strip() or row.template.strip()):
            continue
        rows.append(row)
    return rows, [row.as_step() for row in rows]


@dataclass(frozen=True)
class Preview:
    text: str | None = None
    encoding: str | None = None
    characters: int = 0
    segments: int = 0
    error: str | None = None


def sample_for(contact: Contact | None, lang: str) -> dict[str, Any]:
    """The sample a preview renders with: the seeded appointment (a place, an amount, the
    evening before), seen by ``contact`` when one is chosen, else by a sample person."""
    if contact is None:
        return sample_context(lang)
    now = utcnow()
    notice = Notice(key="preview", kind="event_reminder", phone=contact.phone, text="", send_at=now)
    # The contact's own part as a notice builds it; the anchor's from the seeded sample.
    own = TemplateContexts(now).build(notice, contact, None, ZoneInfo("UTC"))
    return {**sample_context(contact.language), **own}


def preview(template: str, context: Mapping[str, Any], *, transliterate: bool) -> Preview:
    """``template`` rendered on ``context`` and composed as the sender would compose it; a
    blank one (the editor's row for a new step) shows nothing."""
    if not template.strip():
        return Preview()
    try:
        check_template(template, field="template", variables=TEMPLATE_VARIABLES)
        text = render(template, context)
    except (InvalidField, RenderError) as exc:
        return Preview(error=exc.message if isinstance(exc, InvalidField) else str(exc))
    result = compose(text, transliterate=transliterate)
    return Preview(result.text, result.encoding, result.characters, result.segments)


@dataclass
class DryRun:
    """What a policy would send in ``days`` days from ``now``."""

    days: int
    sms: int = 0
    segments: int = 0
    anchors: int = 0  # anchors with at least one SMS in the window
    failing: list[str] = field(default_factory=list)  # render errors, each once


def dry_run(
    session: Session,
    policy: Policy,
    *,
    settings: Settings,
    now: datetime,
    days: int = 7,
) -> DryRun:
    """Plan the policy's anchors as the scheduler would (``desired_notices``) and count the
    SMS whose send time falls in the next ``days`` days, with their segments as rendered.

    Not counted: notices that already went out or ended (a plan never sends those again),
    recipients who opted out, steps whose time has passed. Nothing is written."""
    result = DryRun(days)
    until = now + timedelta(days=days)
    steps = planning_steps(policy)
    plan_of = PolicyPlan(
        account_id=policy.account_id,
        steps=steps,
        templates=[step["template"] for step in policy.steps],
        transliterate=settings.transliterate
        if policy.transliterate is None
        else policy.transliterate,
        priority=policy.priority,
        sender_id=policy.sender_id,
    )
    # Only anchors whose steps can land in the window: a step lands between the anchor plus
    # its earliest offset and plus its latest. (A feed's own alarm set further ahead than any
    # step of the policy is not looked for: the dry run is about the policy's steps.)
    reach = [s.offset.as_timedelta() for s in steps] + [timedelta(0)]
    earliest, latest = min(reach), max(reach)
    anchors = session.exec(
        select(Anchor).where(
            Anchor.policy == policy.name,
            col(Anchor.cancelled).is_(False),
            col(Anchor.at) >= now - latest - _SLACK,
            col(Anchor.at) < until - earliest + _SLACK,
        )
    ).all()
    contexts: dict[datetime, TemplateContexts] = {}
    for anchor in anchors:
        assert anchor.id is not None
        recipients = _recipients(session, anchor.id)
        contacts = _contacts(session, [r.contact_id for r in recipients if r.contact_id])
        zones = {cid: c.timezone for cid, c in contacts.items()}
        open_keys = _notices(session, anchor.id)
        wanted = desired_notices(anchor, plan_of, recipients, zones, settings=settings, now=now)
        counted = False
        for key, (planned, recipient, template) in wanted.items():
            if planned.status != "scheduled" or planned.send_at is None:
                continue
            if not now <= planned.send_at < until:
                continue
            if key in open_keys and open_keys[key] not in _STILL_OPEN:
                continue
            contact = contacts.get(recipient.contact_id or 0)
            if contact is not None and contact.opted_out:
                continue
            zone = ZoneInfo(
                (anchor.timezone if anchor.all_day else None)
                or (contact.timezone if contact else None)
                or settings.timezone
            )
            builder = contexts.setdefault(planned.send_at, TemplateContexts(planned.send_at))
            notice = Notice(
                key=key,
                kind=planned.kind,
                phone=recipient.phone,
                text=template,
                send_at=planned.send_at,
            )
            try:
                text = render(template, builder.build(notice, contact, anchor, zone))
            except RenderError as exc:
                if str(exc) not in result.failing:
                    result.failing.append(str(exc))
                continue
            result.sms += 1
            result.segments += compose(text, transliterate=plan_of.transliterate).segments
            counted = True
        result.anchors += counted
    return result


def _recipients(session: Session, anchor_id: int) -> list[Recipient]:
    rows = session.exec(
        select(AnchorRecipient.phone, AnchorRecipient.contact_id).where(
            AnchorRecipient.anchor_id == anchor_id
        )
    ).all()
    return [Recipient(phone, contact_id) for phone, contact_id in rows]


def _contacts(session: Session, ids: Sequence[int]) -> dict[int, Contact]:
    if not ids:
        return {}
    found = session.exec(select(Contact).where(col(Contact.id).in_(sorted(set(ids))))).all()
    return {c.id or 0: c for c in found}


def _notices(session: Session, anchor_id: int) -> dict[str, str]:
    rows = session.exec(
        select(Notice.key, Notice.status).where(Notice.anchor_id == anchor_id)
    ).all()
    return {key: status for key, status in rows}
