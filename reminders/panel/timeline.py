"""A notice's story, for its page: planned (and why at that time), due, each hand-over to the
gateway and what the gateway said, and how it ended. Read from what the database keeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from reminders.models import Anchor, Attempt, Contact, Notice, NoticeStatus, Policy
from reminders.policies import planning_steps
from reminders.scheduler.planning import plan
from reminders.settings import Settings


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: ``what`` is a key the page words in the viewer's language,
    ``detail`` the service's own words or values (ids, codes, reasons)."""

    at: datetime | None
    what: str
    detail: dict[str, object]


@dataclass(frozen=True)
class Story:
    notice: Notice
    entries: list[Entry]
    attempts: list[Attempt]
    anchor: Anchor | None
    policy: Policy | None
    contact: Contact | None
    # Why it did not go, as a key the page words in the viewer's language (the service's own
    # words, ``notice.status_reason``, follow it); None when it went, or is still to go.
    why_not: str | None = None


def why_not(notice: Notice, attempts: list[Attempt]) -> str | None:
    """The kind of reason a notice ended without reaching its recipient."""
    reason = notice.status_reason or ""
    if notice.status == NoticeStatus.suppressed:
        return "opted_out" if "opted out" in reason else "suppressed"
    if notice.status == NoticeStatus.expired:
        return "expired"
    if notice.status == NoticeStatus.cancelled:
        return "cancelled"
    if notice.status == NoticeStatus.unknown:
        return "unknown"
    if notice.status in (NoticeStatus.failed, NoticeStatus.undelivered):
        if reason.startswith("the account's monthly quota"):
            return "quota"
        if any(a.error_code == "template" for a in attempts):
            return "template"
        if notice.status == NoticeStatus.undelivered:
            return "undelivered"
        return "failed"
    return None


def _why_then(
    notice: Notice, anchor: Anchor, policy: Policy, contact: Contact | None, settings: Settings
) -> dict[str, object]:
    """Which step of which policy, and whether quiet hours moved it, worked out again the way
    the planner did it (the zone: the anchor's for an all-day one, else the recipient's)."""
    detail: dict[str, object] = {"policy": policy.name, "step": (notice.step or 0) + 1}
    if notice.step is None or notice.step >= len(policy.steps):
        return detail
    raw = policy.steps[notice.step]
    detail["offset"] = raw.get("offset")
    if raw.get("at"):
        detail["at"] = raw.get("at")
    zone_name = (
        anchor.timezone
        if anchor.all_day and anchor.timezone
        else (contact.timezone if contact and contact.timezone else settings.timezone)
    )
    try:
        planned = plan(
            anchor.at,
            planning_steps(policy),
            zone=ZoneInfo(zone_name),
            now=notice.created_at,
            default_kind=notice.kind,
            quiet=settings.quiet_hours,
            transactional=notice.priority == "transactional",
        )[notice.step]
    except (ValueError, KeyError, IndexError):
        return detail  # the policy changed since in a way the old step cannot be read
    if planned.reason and planned.send_at == notice.send_at:
        detail["moved"] = planned.reason
    return detail


def story(session: Session, notice_id: int, settings: Settings) -> Story | None:
    """The notice's story, or None when the account has no such notice."""
    notice = session.get(Notice, notice_id)
    if notice is None:
        return None
    attempts = list(
        session.scalars(
            select(Attempt).where(col(Attempt.notice_id) == notice_id).order_by(col(Attempt.id))
        )
    )
    anchor = session.get(Anchor, notice.anchor_id) if notice.anchor_id else None
    policy = None
    if anchor is not None:
        policy = session.scalars(select(Policy).where(col(Policy.name) == anchor.policy)).first()
    contact = session.get(Contact, notice.contact_id) if notice.contact_id else None

    entries = [Entry(notice.created_at, "planned", {})]
    if anchor is not None and policy is not None:
        entries[0] = Entry(
            notice.created_at, "planned", _why_then(notice, anchor, policy, contact, settings)
        )
    entries.append(Entry(notice.send_at, "due", {}))
    for attempt in attempts:
        entries.append(
            Entry(
                attempt.submitted_at,
                "handed_over",
                {
                    "provider": attempt.provider,
                    "link": attempt.link,
                    "provider_message_id": attempt.provider_message_id,
                    "gateway_reference": attempt.gateway_reference,
                    "segments": attempt.segments,
                    "encoding": attempt.encoding,
                },
            )
        )
        if attempt.status in (NoticeStatus.delivered, NoticeStatus.undelivered, "failed"):
            entries.append(
                Entry(
                    attempt.delivered_at or attempt.submitted_at,
                    f"report_{attempt.status}",
                    {"code": attempt.error_code, "error": attempt.error},
                )
            )
    if notice.status not in (NoticeStatus.scheduled, NoticeStatus.due, NoticeStatus.sending):
        entries.append(
            Entry(
                notice.updated_at,
                "ended",
                {"status": notice.status, "reason": notice.status_reason},
            )  # fmt: skip
        )
    return Story(notice, entries, attempts, anchor, policy, contact, why_not(notice, attempts))
