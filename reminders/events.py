"""Events pushed through the API: anchors of kind "event" whose notices follow every change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from reminders.dates import DateParseError, parse_datetime
from reminders.db import utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.keylocks import lock_keys
from reminders.messages import resolve_recipients
from reminders.models import (
    EVENT_KEY_PREFIX,
    Anchor,
    AnchorKind,
    AnchorRecipient,
    Notice,
    ReplyState,
)
from reminders.notices import notices_by_anchor
from reminders.paging import page
from reminders.pending_jobs import JobScheduler
from reminders.policies import get_policy_or_none
from reminders.replies import answers_of
from reminders.scheduler.anchors import PlanReport, cancel_for, plan_for, set_recipients
from reminders.schemas.events import EventCreate, EventOut, EventUpdate
from reminders.schemas.notices import NoticeOut
from reminders.schemas.replies import AnswerOut
from reminders.settings import Settings
from reminders.sources.sync import hold_cancelled

EXTERNAL_PREFIX = EVENT_KEY_PREFIX


def _parse(text: str, zone: ZoneInfo, field: str, now: datetime) -> datetime:
    try:
        return parse_datetime(text, zone=zone, now=now)
    except DateParseError as exc:
        raise InvalidField(str(exc), field=field) from None


def create_event(
    session: Session, scheduler: JobScheduler | None, data: EventCreate, *, settings: Settings
) -> tuple[Anchor, PlanReport]:
    now = utcnow()
    zone_name = data.timezone or settings.timezone
    zone = ZoneInfo(zone_name)
    start = _parse(data.start, zone, "start", now)
    end = _parse(data.end, zone, "end", now) if data.end else None
    if end is not None and end < start:
        raise InvalidField("is before the start", field="end")
    _check_policy(session, data.policy)
    if data.external_id:
        # The same event posted twice at once: the second waits, then finds the first.
        lock_keys(session, [EXTERNAL_PREFIX + data.external_id])
    if data.external_id and find_by_external_id(session, data.external_id) is not None:
        raise Conflict(
            f"an event with external_id {data.external_id!r} exists; PATCH it instead",
            field="external_id",
        )
    recipients = resolve_recipients(
        session, data.recipients, region=settings.default_region, field="recipients"
    )
    if not recipients:
        raise InvalidField("the groups named have no members", field="recipients")
    key = EXTERNAL_PREFIX + data.external_id if data.external_id else f"event:{uuid.uuid4().hex}"
    anchor = Anchor(
        key=key,
        kind=AnchorKind.event,
        title=data.title,
        at=start,
        timezone=zone_name,
        policy=data.policy,
        data=_data(data.location, end),
    )
    session.add(anchor)
    session.flush()
    assert anchor.id is not None
    set_recipients(session, anchor.id, [(r.phone, r.contact_id) for r in recipients])
    return anchor, plan_for(session, scheduler, anchor.id, settings=settings, now=now)


def update_event(
    session: Session,
    scheduler: JobScheduler | None,
    event_id: int,
    data: EventUpdate,
    *,
    settings: Settings,
) -> tuple[Anchor, PlanReport]:
    anchor = get_event(session, event_id)
    if anchor.source_id is not None:
        # The next sync would quietly undo the change: the calendar is where it is made.
        raise Conflict(
            f"the event belongs to calendar feed source {anchor.source_id}; change it in the "
            "calendar (the next sync would undo a change made here), or DELETE it to stop its "
            "reminders",
            field="id",
        )
    if anchor.cancelled:
        raise Conflict("the event was cancelled; create a new one", field="id")
    now = utcnow()
    changes = data.model_dump(exclude_unset=True)
    for required in ("title", "start", "recipients", "policy", "timezone"):
        if required in changes and changes[required] is None:
            raise InvalidField("may not be null", field=required)
    zone_name = data.timezone or anchor.timezone or settings.timezone
    zone = ZoneInfo(zone_name)
    values = dict(anchor.data)
    start = _parse(data.start, zone, "start", now) if data.start is not None else anchor.at
    if "end" in changes:
        end = _parse(data.end, zone, "end", now) if data.end else None
        values["end"] = end.isoformat() if end else None
    else:
        end = datetime.fromisoformat(values["end"]) if values.get("end") else None
    # The same rule as at creation, on the event as it will read after the change: moving only
    # the start past the stored end is as wrong as posting it that way.
    if end is not None and end < start:
        field = "end" if "end" in changes else "start"
        raise InvalidField(
            f"the end ({end.isoformat()}) would be before the start ({start.isoformat()})",
            field=field,
        )
    if data.title is not None:
        anchor.title = data.title
    anchor.at = start
    if "location" in changes:
        values["location"] = data.location or ""
    if data.policy is not None:
        _check_policy(session, data.policy)
        anchor.policy = data.policy
    anchor.timezone = zone_name
    anchor.data = values
    anchor.updated_at = now
    session.add(anchor)
    if data.recipients is not None:
        recipients = resolve_recipients(
            session, data.recipients, region=settings.default_region, field="recipients"
        )
        assert anchor.id is not None
        set_recipients(session, anchor.id, [(r.phone, r.contact_id) for r in recipients])
    session.flush()
    assert anchor.id is not None
    return anchor, plan_for(session, scheduler, anchor.id, settings=settings, now=now)


def cancel_event(
    session: Session, scheduler: JobScheduler | None, event_id: int
) -> tuple[Anchor, PlanReport]:
    anchor = get_event(session, event_id)
    assert anchor.id is not None
    if anchor.source_id is not None:
        hold_cancelled(anchor)  # or the next sync of its feed would plan it again
        session.add(anchor)
    report = cancel_for(session, scheduler, anchor.id, reason="the event was cancelled")
    session.refresh(anchor)
    return anchor, report


def get_event(session: Session, event_id: int) -> Anchor:
    anchor = session.get(Anchor, event_id)
    if anchor is None or anchor.kind != AnchorKind.event:
        raise NotFound(f"no event with id {event_id}", field="id")
    return anchor


def find_by_external_id(session: Session, external_id: str) -> Anchor | None:
    return session.exec(select(Anchor).where(Anchor.key == EXTERNAL_PREFIX + external_id)).first()


def list_events(
    session: Session, *, limit: int, cursor: str | None, include_cancelled: bool = False
) -> tuple[Sequence[Anchor], str | None]:
    query = select(Anchor).where(Anchor.kind == AnchorKind.event)
    if not include_cancelled:
        query = query.where(col(Anchor.cancelled).is_(False))
    return page(session, query, Anchor.id, limit=limit, cursor=cursor)


def event_out(session: Session, anchor: Anchor, report: PlanReport | None = None) -> EventOut:
    return events_out(session, [anchor], {anchor.id or 0: report} if report else None)[0]


def events_out(
    session: Session,
    anchors: Sequence[Anchor],
    reports: dict[int, PlanReport | None] | None = None,
) -> list[EventOut]:
    """The events as the API shows them: two queries for a whole page, not two per event."""
    ids = [anchor.id for anchor in anchors if anchor.id is not None]
    notices = notices_by_anchor(session, ids)
    phones: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for anchor_id, phone in session.exec(
            select(AnchorRecipient.anchor_id, AnchorRecipient.phone).where(
                col(AnchorRecipient.anchor_id).in_(ids)
            )
        ):
            phones[anchor_id].append(phone)
    answers = answers_of(session, ids)
    return [
        _event_out(a, notices, phones, answers, (reports or {}).get(a.id or 0)) for a in anchors
    ]


def _event_out(
    anchor: Anchor,
    notices: dict[int, list[Notice]],
    phones: dict[int, list[str]],
    answers: dict[int, list[AnchorRecipient]],
    report: PlanReport | None,
) -> EventOut:
    assert anchor.id is not None
    zone = ZoneInfo(anchor.timezone or "UTC")
    end = anchor.data.get("end")
    return EventOut(
        id=anchor.id,
        title=anchor.title,
        start=anchor.at.astimezone(zone),
        end=datetime.fromisoformat(end).astimezone(zone) if end else None,
        timezone=anchor.timezone or "UTC",
        location=anchor.data.get("location") or None,
        policy=anchor.policy,
        external_id=anchor.key.removeprefix(EXTERNAL_PREFIX)
        if anchor.key.startswith(EXTERNAL_PREFIX)
        else None,
        source_id=anchor.source_id,
        cancelled=anchor.cancelled,
        recipients=sorted(phones[anchor.id]),
        answers=[
            AnswerOut(
                phone=r.phone,
                answer=ReplyState(r.answer or ReplyState.unclear),
                answered_at=r.answered_at,
            )
            for r in sorted(answers[anchor.id], key=lambda r: r.phone)
        ],
        notices=[NoticeOut.model_validate(n, from_attributes=True) for n in notices[anchor.id]],
        planned=report.as_dict() if report else None,
    )


def _check_policy(session: Session, name: str) -> None:
    if get_policy_or_none(session, name) is None:
        raise InvalidField(f"no policy named {name!r}", field="policy")


def _data(location: str | None, end: datetime | None) -> dict[str, Any]:
    return {"location": location or "", "end": end.isoformat() if end else None}
