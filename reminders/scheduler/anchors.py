"""Keeping an anchor's notices in step with the anchor: the functions sources call.

``plan_for`` is idempotent: it diffs what the policy wants now against the notices that exist
(matched by their natural key) and only touches what changed. A notice that went out is never
planned again; one that has not gone out follows the anchor. Like every domain function, these
flush and leave the commit to their caller; the jobs they change are written after it
(``pending_jobs.commit_and_schedule``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, or_, update
from sqlmodel import Session, col, select

from reminders.accounts.scoping import current
from reminders.db import in_chunks, utcnow
from reminders.durations import Offset
from reminders.errors import NotFound
from reminders.keylocks import anchor_key, lock_keys
from reminders.models import (
    PENDING,
    Anchor,
    AnchorRecipient,
    Contact,
    Notice,
    NoticeKind,
    NoticeStatus,
    Priority,
    ReplyState,
)
from reminders.pending_jobs import (
    JobItem,
    JobScheduler,
    commit_and_schedule,
    schedule_after_commit,
    unschedule_after_commit,
)
from reminders.policies import get_policy, planning_steps
from reminders.scheduler.planning import Planned, Step, plan
from reminders.settings import Settings

ALARM_TEMPLATE = (
    '{% if lang == "en" %}Reminder: {{ title }} on {{ date }}'
    "{% if time %} at {{ time }}{% endif %}."
    "{% else %}Напомняне: {{ title }} на {{ date }}{% if time %} в {{ time }} ч.{% endif %}."
    "{% endif %}"
)
REPLAN_BATCH = 2000  # anchors per plan_many when a policy changes
DEFAULT_KIND = {"event": NoticeKind.event_reminder, "bill": NoticeKind.bill_due}
# Notices that have not gone out and may still follow their anchor.
_OPEN = {NoticeStatus.scheduled, NoticeStatus.due, NoticeStatus.expired, NoticeStatus.cancelled}
# Notices that reached, or may have reached, their contact: under whatever number it had then.
_REACHED = {
    NoticeStatus.sending,
    NoticeStatus.sent,
    NoticeStatus.delivered,
    NoticeStatus.unknown,
}


@dataclass
class PlanReport:
    created: list[int] = field(default_factory=list)
    # Notices whose send time changed; ``updated`` ones changed only in what or how they send
    # (a policy's template, lane, sender ID or transliteration), or came back at the same time.
    moved: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    # Notices planned again after they were cancelled or expired (a feed event restored).
    restored: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "created": len(self.created),
            "moved": len(self.moved),
            "updated": len(self.updated),
            "restored": len(self.restored),
            "expired": len(self.expired),
            "cancelled": len(self.cancelled),
            "unchanged": self.unchanged,
        }


class Recipient(NamedTuple):
    phone: str
    contact_id: int | None


def set_recipients(
    session: Session,
    anchor_id: int,
    recipients: Sequence[tuple[str, int | None]],
    *,
    replace: bool = True,
) -> None:
    """Make (phone, contact id) pairs the anchor's recipients; the next plan follows them."""
    answers: dict[str, tuple[str | None, datetime | None]] = {}
    if replace:
        # A recipient who stays keeps their answer (a feed's sync sets them all again).
        answers = {
            phone: (answer, at)
            for phone, answer, at in session.exec(
                select(
                    AnchorRecipient.phone, AnchorRecipient.answer, AnchorRecipient.answered_at
                ).where(
                    col(AnchorRecipient.anchor_id) == anchor_id,
                    col(AnchorRecipient.answer).is_not(None),
                )
            )
        }
        session.exec(delete(AnchorRecipient).where(col(AnchorRecipient.anchor_id) == anchor_id))  # type: ignore[call-overload]
    if recipients:
        session.execute(
            insert(AnchorRecipient.__table__),  # type: ignore[attr-defined]
            [
                {
                    "anchor_id": anchor_id,
                    "phone": p,
                    "contact_id": c,
                    "answer": answers.get(p, (None, None))[0],
                    "answered_at": answers.get(p, (None, None))[1],
                }
                for p, c in recipients
            ],
        )


def move_recipient(session: Session, contact_id: int, old_phone: str, new_phone: str) -> None:
    """The contact stays a recipient of its anchors under its new number; flushed, not committed.

    Where the new number already is a recipient of an anchor (on its own or as another
    contact), that entry stays and the contact's goes: one phone, one recipient.
    """
    table = AnchorRecipient.__table__  # type: ignore[attr-defined]
    other = table.alias()
    mine = (table.c.contact_id == contact_id) & (table.c.phone == old_phone)
    already = select(other.c.anchor_id).where(other.c.phone == new_phone)
    session.execute(delete(table).where(mine, table.c.anchor_id.in_(already)))
    session.execute(update(table).where(mine).values(phone=new_phone))


def notice_key(anchor_id: int, step: int, phone: str) -> str:
    return f"anchor:{anchor_id}:{step}:{phone}"


def _get_anchor(session: Session, anchor_id: int) -> Anchor:
    anchor = session.get(Anchor, anchor_id)
    if anchor is None:
        raise NotFound(f"no anchor with id {anchor_id}", field="anchor_id")
    return anchor


Wanted = dict[str, tuple[Planned, Recipient, str]]


@dataclass(frozen=True)
class PolicyPlan:
    """What planning takes from a policy, read once per ``plan_many``."""

    account_id: int
    steps: list[Step]
    templates: list[str]
    transliterate: bool
    priority: str
    sender_id: str | None


def _policy_plan(
    session: Session, anchor: Anchor, cache: dict[tuple[int, str], PolicyPlan], settings: Settings
) -> PolicyPlan:
    # The anchor's own account's policy of that name: planning may run unscoped (a feed's sync,
    # a re-plan), and two accounts may each have an "appointment" policy.
    name = (anchor.account_id, anchor.policy)
    if name not in cache:
        policy = get_policy(session, anchor.policy, account_id=anchor.account_id)
        cache[name] = PolicyPlan(
            account_id=anchor.account_id,
            steps=planning_steps(policy),
            templates=[step["template"] for step in policy.steps],
            transliterate=settings.transliterate
            if policy.transliterate is None
            else policy.transliterate,
            priority=policy.priority,
            sender_id=policy.sender_id,
        )
    return cache[name]


def desired_notices(
    anchor: Anchor,
    policy: PolicyPlan,
    recipients: list[Recipient],
    zones: dict[int, str | None],
    *,
    settings: Settings,
    now: datetime,
) -> Wanted:
    """What the policy wants for this anchor now: natural key -> (plan, recipient, template)."""
    assert anchor.id is not None
    steps, templates = policy.steps, policy.templates
    # Transactional notices (a payment failure) matter more than the recipient's sleep.
    transactional = policy.priority == Priority.transactional
    # A feed's own alarms (VALARM), when its source says so, are extra steps of the policy.
    for alarm in anchor.data.get("alarms") or []:
        steps = [*steps, Step(offset=Offset.parse(alarm))]
        templates = [*templates, ALARM_TEMPLATE]
    # An all-day event or a bill is due on a date in the anchor's zone; a timed event happens
    # at an instant and each recipient is reminded on their own clock.
    fixed_zone = anchor.timezone if anchor.all_day and anchor.timezone else None
    wanted: Wanted = {}
    plans: dict[str, list[Planned]] = {}
    for recipient in recipients:
        zone_name = fixed_zone or zones.get(recipient.contact_id or 0) or settings.timezone
        if zone_name not in plans:
            plans[zone_name] = plan(
                anchor.at,
                steps,
                zone=ZoneInfo(zone_name),
                now=now,
                default_kind=DEFAULT_KIND.get(anchor.kind, NoticeKind.event_reminder),
                quiet=settings.quiet_hours,
                transactional=transactional,
            )
        for planned in plans[zone_name]:
            key = notice_key(anchor.id, planned.step, recipient.phone)
            wanted[key] = (planned, recipient, templates[planned.step])
    return wanted


def plan_for(
    session: Session,
    scheduler: JobScheduler | None,
    anchor_id: int,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> PlanReport:
    """Create, move, expire or cancel the anchor's notices so they match its policy now."""
    _get_anchor(session, anchor_id)
    return plan_many(session, scheduler, [anchor_id], settings=settings, now=now)[anchor_id]


def plan_many(
    session: Session,
    scheduler: JobScheduler | None,
    anchor_ids: Sequence[int],
    *,
    settings: Settings,
    now: datetime | None = None,
) -> dict[int, PlanReport]:
    """``plan_for`` for many anchors at once: one query per kind of row, one insert; flushed.

    A billing system's batch of thousands of bills is planned in the time of a few statements.
    The anchors are locked first (``keylocks``) until the caller commits, so that two requests
    planning the same anchor at once (the same bill posted twice) do it one after the other:
    the second finds the notices the first created.
    """
    now = now or utcnow()
    ids = list(dict.fromkeys(anchor_ids))
    lock_keys(session, (anchor_key(anchor_id) for anchor_id in ids))
    loaded = _Loaded.read(session, ids)
    reports: dict[int, PlanReport] = {}
    policies: dict[tuple[int, str], PolicyPlan] = {}
    batch = _Batch(session, now)
    for anchor_id in ids:
        anchor = loaded.anchors.get(anchor_id)
        if anchor is None:
            raise NotFound(f"no anchor with id {anchor_id}", field="anchor_id")
        if anchor.cancelled:
            reports[anchor_id] = cancel_for(
                session, scheduler, anchor_id, reason="the anchor was cancelled"
            )
            continue
        policy = _policy_plan(session, anchor, policies, settings)
        wanted = desired_notices(
            anchor, policy, loaded.recipients[anchor_id], loaded.zones, settings=settings, now=now
        )
        reports[anchor_id] = batch.diff(anchor_id, policy, wanted, loaded.notices[anchor_id])
    batch.write(scheduler, reports)
    return reports


@dataclass
class _Loaded:
    """What planning a batch of anchors reads: each anchor, its recipients and its notices,
    and the recipients' zones."""

    anchors: dict[int, Anchor]
    recipients: dict[int, list[Recipient]]
    notices: dict[int, dict[str, Notice]]
    zones: dict[int, str | None]

    @classmethod
    def read(cls, session: Session, ids: list[int]) -> _Loaded:
        anchors: dict[int, Anchor] = {}
        recipients: dict[int, list[Recipient]] = {i: [] for i in ids}
        notices: dict[int, dict[str, Notice]] = {i: {} for i in ids}
        for chunk in in_chunks(ids):
            for row in session.exec(select(Anchor).where(col(Anchor.id).in_(chunk))):
                anchors[row.id or 0] = row
            # Plain rows, not ORM objects: an anchor may have tens of thousands of recipients.
            for anchor_id, phone, contact_id in session.exec(
                select(
                    AnchorRecipient.anchor_id, AnchorRecipient.phone, AnchorRecipient.contact_id
                ).where(
                    col(AnchorRecipient.anchor_id).in_(chunk),
                    # One who answered that they will not come is reminded no more.
                    or_(
                        col(AnchorRecipient.answer).is_(None),
                        col(AnchorRecipient.answer) != ReplyState.cancelled,
                    ),
                )
            ):
                recipients[anchor_id].append(Recipient(phone, contact_id))
            for notice in session.exec(select(Notice).where(col(Notice.anchor_id).in_(chunk))):
                notices[notice.anchor_id or 0][notice.key] = notice
        contact_ids = sorted(
            {r.contact_id for rs in recipients.values() for r in rs if r.contact_id}
        )
        zones: dict[int, str | None] = {}
        for chunk in in_chunks(contact_ids):
            for contact_id, zone in session.exec(
                select(Contact.id, Contact.timezone).where(col(Contact.id).in_(chunk))
            ):
                zones[contact_id or 0] = zone
        return cls(anchors, recipients, notices, zones)


@dataclass
class _Batch:
    """One ``plan_many``'s changes: notices to insert and jobs to write or drop are queued
    while each anchor is diffed (updates of existing notices are applied at once), and
    written together at the end."""

    session: Session
    now: datetime
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    jobs_to_write: list[JobItem] = field(default_factory=list)
    jobs_to_drop: list[int] = field(default_factory=list)

    def diff(
        self, anchor_id: int, policy: PolicyPlan, wanted: Wanted, existing: dict[str, Notice]
    ) -> PlanReport:
        """Compare what is wanted with what exists; queue inserts, apply conditional updates."""
        report = PlanReport()
        # A contact whose phone changed is wanted under a new key; a step that already went to
        # its old number is not sent to the new one.
        reached = {
            (n.contact_id, n.step)
            for n in existing.values()
            if n.status in _REACHED and n.contact_id is not None
        }
        for key, (planned, recipient, template) in wanted.items():
            notice = existing.get(key)
            if notice is None and (recipient.contact_id, planned.step) in reached:
                report.unchanged += 1
            elif notice is None:
                self.new_rows.append(
                    _new_row(key, anchor_id, planned, recipient, template, policy, self.now)
                )
            elif notice.status not in _OPEN:
                report.unchanged += 1  # it went out (or is going): never twice
            else:
                self._follow(notice, planned, recipient, template, policy, report)
        self._cancel_unwanted(existing, wanted, report)
        return report

    def _follow(
        self,
        notice: Notice,
        planned: Planned,
        recipient: Recipient,
        template: str,
        policy: PolicyPlan,
        report: PlanReport,
    ) -> None:
        """Bring a notice that has not gone out in line with its plan, if anything changed."""
        status = NoticeStatus(planned.status)
        send_at = planned.send_at or self.now
        if status == NoticeStatus.scheduled and notice.status == NoticeStatus.due:
            if notice.send_at == send_at:
                status = NoticeStatus.due  # already in the work queue: it stays there
        if (
            notice.status == status
            and notice.send_at == send_at
            and notice.text == template
            and notice.status_reason == planned.reason
            and notice.priority == policy.priority
            and notice.sender_id == policy.sender_id
            and notice.transliterate == policy.transliterate
        ):
            report.unchanged += 1
            return
        assert notice.id is not None
        # Read before the update, which also refreshes the notice object in the session.
        # A due notice is a scheduled one whose time has come: reported the same way.
        was_status = NoticeStatus.scheduled if notice.status in PENDING else notice.status
        was = (was_status, notice.send_at, notice.priority)
        changed = _update_if_still(
            self.session,
            notice,
            status=status,
            send_at=send_at,
            status_reason=planned.reason,
            text=template,
            kind=planned.kind,
            contact_id=recipient.contact_id,
            priority=policy.priority,
            sender_id=policy.sender_id,
            transliterate=policy.transliterate,
            updated_at=self.now,
        )
        if not changed:
            report.unchanged += 1
        elif status in PENDING:
            if was[0] != NoticeStatus.scheduled:
                report.restored.append(notice.id)
            elif was[1] != send_at:
                report.moved.append(notice.id)
            else:
                report.updated.append(notice.id)
            # The job carries the time and the lane; a new text alone leaves it as it is. (A
            # notice moved to a time already past is marked due again when its job is written.)
            if status == NoticeStatus.scheduled and was != (
                NoticeStatus.scheduled,
                send_at,
                policy.priority,
            ):
                self.jobs_to_write.append((notice.id, send_at, policy.priority))
        elif was[0] == NoticeStatus.scheduled:
            report.expired.append(notice.id)
            self.jobs_to_drop.append(notice.id)

    def _cancel_unwanted(
        self, existing: dict[str, Notice], wanted: Wanted, report: PlanReport
    ) -> None:
        """Cancel the scheduled notices of steps or recipients no longer planned."""
        for key, notice in existing.items():
            if key in wanted or notice.status not in PENDING or notice.step is None:
                continue  # (no step: not the policy's, such as a refused payment's alert)
            assert notice.id is not None
            if _update_if_still(
                self.session,
                notice,
                status=NoticeStatus.cancelled,
                status_reason="no longer planned: its step or recipient was removed",
                updated_at=self.now,
            ):
                report.cancelled.append(notice.id)
                self.jobs_to_drop.append(notice.id)

    def write(self, scheduler: JobScheduler | None, reports: dict[int, PlanReport]) -> None:
        """Insert the new notices, and queue their jobs' writes and drops for the commit."""
        session = self.session
        if self.new_rows:
            # A Core insert: the ORM's bulk path costs more per row than the database does.
            # (Plain executemany; RETURNING would make multi-row INSERTs, slower on SQLite.)
            session.execute(insert(Notice.__table__), self.new_rows)  # type: ignore[attr-defined]
            by_key = {row["key"]: row for row in self.new_rows}
            new_jobs: list[JobItem] = []
            planned_ids = sorted({row["anchor_id"] for row in self.new_rows})
            for chunk in in_chunks(planned_ids):
                for notice_id, key in session.exec(
                    select(Notice.id, Notice.key).where(col(Notice.anchor_id).in_(chunk))
                ):
                    new = by_key.get(key)
                    if new is None or notice_id is None:
                        continue
                    target = reports[new["anchor_id"]]
                    if new["status"] == NoticeStatus.scheduled:
                        target.created.append(notice_id)
                        new_jobs.append((notice_id, new["send_at"], new["priority"]))
                    else:
                        target.expired.append(notice_id)
            schedule_after_commit(session, scheduler, new_jobs, new=True)
        schedule_after_commit(session, scheduler, self.jobs_to_write)
        unschedule_after_commit(session, scheduler, self.jobs_to_drop)


def _new_row(
    key: str,
    anchor_id: int,
    planned: Planned,
    recipient: Recipient,
    template: str,
    policy: PolicyPlan,
    now: datetime,
) -> dict[str, Any]:
    """A new notice, as a row for the batch's one insert."""
    return {
        "account_id": policy.account_id,
        "key": key,
        "kind": planned.kind,
        "status": NoticeStatus(planned.status),
        "status_reason": planned.reason,
        "anchor_id": anchor_id,
        "step": planned.step,
        "contact_id": recipient.contact_id,
        "phone": recipient.phone,
        "text": template,
        "is_template": True,
        "transliterate": policy.transliterate,
        "priority": policy.priority,
        "sender_id": policy.sender_id,
        "send_at": planned.send_at or now,
        "created_at": now,
        "updated_at": now,
    }


def _update_if_still(session: Session, notice: Notice, **values: Any) -> bool:
    """Update the notice only if its status is still the one we read.

    A job may fire between our read and our write; an unconditional update could put a notice
    that is being sent back to "scheduled" and send it twice.
    """
    result = session.exec(  # type: ignore[call-overload]
        update(Notice)
        .where(col(Notice.id) == notice.id, col(Notice.status) == notice.status)
        .values(**values)
    )
    return bool(result.rowcount)


def replan_policy(
    session: Session,
    scheduler: JobScheduler | None,
    name: str,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> dict[str, int]:
    """Apply an edited policy to every anchor of it that still has reminders to come.

    Those are the anchors ahead of us and those with a notice still scheduled (a bill's overdue
    reminders); an anchor long past is left as it was, rather than given new expired notices.
    The one domain function that commits, ``REPLAN_BATCH`` anchors at a time: a policy of a
    hundred thousand anchors re-planned in one transaction would hold SQLite's one write lock
    (on PostgreSQL, its notices' rows) for many seconds while the firing path waits to claim.
    """
    current(session)  # the policy's name means something only within one account
    now = now or utcnow()
    pending = select(Notice.anchor_id).where(
        col(Notice.status).in_(PENDING), col(Notice.anchor_id).is_not(None)
    )
    ids = [
        anchor_id
        for anchor_id in session.exec(
            select(Anchor.id).where(
                Anchor.policy == name,
                col(Anchor.cancelled).is_(False),
                or_(col(Anchor.at) >= now, col(Anchor.id).in_(pending)),
            )
        )
        if anchor_id is not None
    ]
    totals = dict.fromkeys(PlanReport().as_dict(), 0)
    for chunk in in_chunks(ids, REPLAN_BATCH):
        for report in plan_many(session, scheduler, chunk, settings=settings, now=now).values():
            for what, count in report.as_dict().items():
                totals[what] += count
        commit_and_schedule(session)
    return totals


def cancel_for(
    session: Session, scheduler: JobScheduler | None, anchor_id: int, *, reason: str
) -> PlanReport:
    """Cancel every notice of the anchor that has not gone out, and mark the anchor cancelled;
    flushed, the jobs dropped after the caller's commit."""
    anchor = _get_anchor(session, anchor_id)
    now = utcnow()
    ids = list(
        session.exec(
            select(Notice.id).where(Notice.anchor_id == anchor_id, col(Notice.status).in_(PENDING))
        )
    )
    if ids:
        session.exec(  # type: ignore[call-overload]
            update(Notice)
            .where(col(Notice.id).in_(ids), col(Notice.status).in_(PENDING))
            .values(status=NoticeStatus.cancelled, status_reason=reason, updated_at=now)
        )
    if not anchor.cancelled:
        anchor.cancelled = True
        anchor.updated_at = now
        session.add(anchor)
    session.flush()
    cancelled = [i for i in ids if i is not None]
    unschedule_after_commit(session, scheduler, cancelled)
    return PlanReport(cancelled=cancelled)
