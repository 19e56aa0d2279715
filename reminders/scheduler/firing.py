"""Firing a notice: claim it, hand it to the sender once, record what happened."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, bindparam, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from reminders.db import UTCDateTime, in_chunks, utcnow
from reminders.metrics import SendMetrics
from reminders.models import Anchor, Attempt, Contact, Notice, NoticeKind, NoticeStatus, Priority
from reminders.notices import JobItem, JobScheduler
from reminders.scheduler.context import template_context
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError
from reminders.sender.compose import compose
from reminders.sender.rate import SendRate
from reminders.settings import Settings
from reminders.templates import RenderError, render

log = logging.getLogger(__name__)


BILL_GRACE = timedelta(days=1)


def lateness(notice: Notice, anchor: Anchor | None, now: datetime, grace: timedelta) -> str | None:
    """Why a notice that fires at ``now`` is no longer worth sending, or None if it still is.

    A notice fires late when the service was down or busy when it came due. An event reminder
    is useful until the event starts and within the grace period; a bill notice for a day.
    """
    late_by = now - notice.send_at
    if notice.kind == NoticeKind.event_reminder and anchor is not None and now >= anchor.at:
        return "the event had already started when the reminder could be sent"
    limit = BILL_GRACE if notice.kind in (NoticeKind.bill_due, NoticeKind.bill_overdue) else grace
    if late_by > limit:
        return f"it came due {_human(late_by)} earlier, past the {_human(limit)} it may be late"
    return None


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


@dataclass
class _Outcome:
    status: NoticeStatus
    reason: str | None = None
    attempt: dict[str, Any] | None = None
    sent_at: datetime | None = None
    transient: bool = False  # a failure that trying again may fix (a timeout, a 5xx)
    retry_at: datetime | None = None


RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=15)


def retry_delay(failures: int) -> timedelta:
    """Exponential back-off with jitter: about 30 s, 1 min, 2 min... at most 15 min."""
    delay = min(RETRY_BASE * 2 ** max(failures - 1, 0), RETRY_CAP)
    return delay * random.uniform(0.8, 1.2)


def claim_many(session: Session, notice_ids: Sequence[int], now: datetime, token: str) -> list[int]:
    """Move notices that are due by ``now`` from ``scheduled`` to ``sending``; return the ids
    this call got.

    The conditional update is what makes a notice go out at most once: a second firing (a retry,
    a restart, a second scheduler) finds it no longer ``scheduled`` and does nothing. It is also
    what keeps a notice from going out early: a job handed to a lane can wait there (for the send
    rate, behind a busy batch) while its event moves later, and the move only rewrites
    ``send_at`` and the job; the stale firing must then find the notice not due and leave it.
    """
    claimed: list[int] = []
    for chunk in in_chunks(notice_ids):
        result = session.execute(
            update(Notice)
            .where(
                col(Notice.id).in_(chunk),
                col(Notice.status) == NoticeStatus.scheduled,
                col(Notice.send_at) <= now,
            )
            .values(status=NoticeStatus.sending, updated_at=now, claimed_by=token or None)
            .returning(col(Notice.id))
        )
        claimed.extend(int(row[0]) for row in result)
    session.commit()
    return claimed


def fire(
    engine: Engine, sender: Sender, notice_id: int, *, settings: Settings, token: str = ""
) -> str | None:
    """Send one notice if it is still due to go; return its final status, or None if not ours."""
    return fire_many(engine, sender, [notice_id], settings=settings, token=token).get(notice_id)


def fire_many(
    engine: Engine,
    sender: Sender,
    notice_ids: Sequence[int],
    *,
    settings: Settings,
    token: str = "",
    scheduler: JobScheduler | None = None,
    rate: SendRate | None = None,
    lane: str = Priority.bulk,
    stop: threading.Event | None = None,
    metrics: SendMetrics | None = None,
) -> dict[int, str]:
    """Fire the notices that are still due to go; return the final status of each one claimed.

    Work goes by ``sender.batch_size`` notices: claim, load, send, record, each one statement per
    batch. A crash between a claim and its record leaves that batch "sending", recorded as
    unknown at the next start, so the batch size bounds how many outcomes a crash can lose.

    With a send ``rate``, each batch waits for its budget in ``lane`` before it is claimed, so a
    notice is never held "sending" while it waits; if ``stop`` is set meanwhile, the rest stay
    scheduled for whoever fires next.
    """
    rate = rate or SendRate()
    outcomes: dict[int, str] = {}
    unique = list(dict.fromkeys(notice_ids))
    size = rate.slice_size(sender.batch_size)
    for start in range(0, len(unique), size):
        chunk = unique[start : start + size]
        if (stop is not None and stop.is_set()) or not rate.acquire(lane, len(chunk), stop):
            break
        outcomes.update(
            _fire_batch(
                engine,
                sender,
                chunk,
                settings=settings,
                token=token,
                scheduler=scheduler,
                metrics=metrics,
            )
        )
    return outcomes


def _fire_batch(
    engine: Engine,
    sender: Sender,
    notice_ids: list[int],
    *,
    settings: Settings,
    token: str,
    scheduler: JobScheduler | None,
    metrics: SendMetrics | None,
) -> dict[int, str]:
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        claimed = claim_many(session, notice_ids, now, token)
        if not claimed:
            return {}
        notices = _load(session, Notice, claimed)
        contacts = _load(session, Contact, {n.contact_id for n in notices.values() if n.contact_id})
        anchors = _load(session, Anchor, {n.anchor_id for n in notices.values() if n.anchor_id})

    outcomes: dict[int, _Outcome] = {}
    outgoing: list[OutgoingSms] = []
    for notice_id in claimed:
        notice = notices[notice_id]
        contact = contacts.get(notice.contact_id or 0)
        anchor = anchors.get(notice.anchor_id or 0)
        ready = _prepare(notice, contact, anchor, now, settings, sender.name)
        if isinstance(ready, _Outcome):
            outcomes[notice_id] = ready
        else:
            outgoing.append(ready)
    if outgoing:
        results = sender.send_many(outgoing)
        sent_at = utcnow()
        for sms, result in zip(outgoing, results, strict=True):
            outcomes[sms.notice_id] = _result(sms, result, sender.name, sent_at)
        if metrics is not None:
            _count(metrics, sender.name, outgoing, results, notices, sent_at)
        _plan_retries(engine, outcomes, settings.send_attempts, sent_at)
    _record(engine, outcomes)
    retries: list[JobItem] = [
        (i, o.retry_at, notices[i].priority) for i, o in outcomes.items() if o.retry_at is not None
    ]
    if retries and scheduler is not None:
        scheduler.schedule(retries)
    return {notice_id: outcome.status.value for notice_id, outcome in outcomes.items()}


def _count(
    metrics: SendMetrics,
    provider: str,
    outgoing: list[OutgoingSms],
    results: Sequence[Accepted | SendError],
    notices: dict[int, Any],
    sent_at: datetime,
) -> None:
    """Latency of what the gateway took, by lane; what it refused, by its error code."""
    latencies: dict[str, list[float]] = {}
    errors: list[str | None] = []
    for sms, result in zip(outgoing, results, strict=True):
        notice = notices[sms.notice_id]
        if isinstance(result, Accepted):
            delay = (sent_at - notice.send_at).total_seconds()
            latencies.setdefault(notice.priority, []).append(delay)
        else:
            errors.append(result.code)
    for lane, values in latencies.items():
        metrics.observe_sent(lane, values)
    metrics.count_errors(provider, errors)


def _plan_retries(
    engine: Engine, outcomes: dict[int, _Outcome], attempts: int, now: datetime
) -> None:
    """Put transient failures back on the schedule, until a notice has had ``attempts`` tries."""
    transient = [i for i, o in outcomes.items() if o.transient]
    if not transient:
        return
    with Session(engine) as session:
        earlier = dict(
            session.exec(
                select(Attempt.notice_id, func.count())
                .where(col(Attempt.notice_id).in_(transient))
                .group_by(col(Attempt.notice_id))
            ).all()
        )
    for notice_id in transient:
        outcome = outcomes[notice_id]
        tries = earlier.get(notice_id, 0) + 1  # this one is recorded with the outcome
        if tries >= attempts:
            outcome.reason = f"{outcome.reason} (gave up after {tries} attempts)"
            continue
        outcome.retry_at = now + retry_delay(tries)
        outcome.status = NoticeStatus.scheduled
        outcome.reason = f"attempt {tries} failed ({outcome.reason}); trying again"


def _prepare(
    notice: Notice,
    contact: Contact | None,
    anchor: Anchor | None,
    now: datetime,
    settings: Settings,
    provider: str,
) -> OutgoingSms | _Outcome:
    """The SMS to send for this notice, or the outcome that ends it without sending."""
    late = lateness(notice, anchor, now, settings.late_grace_delta)
    if late is not None:
        return _Outcome(NoticeStatus.expired, late)
    if contact is not None and contact.opted_out:
        return _Outcome(NoticeStatus.suppressed, "the contact opted out")
    text = notice.text
    if notice.is_template:
        zone = ZoneInfo(
            (anchor.timezone if anchor and anchor.all_day else None)
            or (contact.timezone if contact else None)
            or settings.timezone
        )
        try:
            text = render(notice.text, template_context(notice, contact, anchor, zone, now))
        except RenderError as exc:
            attempt = {
                "provider": provider,
                "status": NoticeStatus.failed,
                "error_code": "template",
                "error": str(exc)[:2000],
                "submitted_at": now,
            }
            return _Outcome(NoticeStatus.failed, str(exc)[:500], attempt)
    assert notice.id is not None
    # Composed at the last moment, from the text as it now reads: a "„" or a non-breaking space
    # from a template would otherwise turn the whole SMS into UCS-2 and double its price.
    composed = compose(text, transliterate=notice.transliterate)
    return OutgoingSms(
        notice_id=notice.id,
        to=notice.phone,
        text=composed.text,
        sender_id=notice.sender_id or settings.sender_id,
        segments=composed.segments,
        encoding=composed.encoding,
    )


def _result(
    sms: OutgoingSms, result: Accepted | SendError, provider: str, now: datetime
) -> _Outcome:
    if isinstance(result, Accepted):
        attempt = {
            "segments": sms.segments,
            "encoding": sms.encoding,
            "text": sms.text,
            "provider": provider,
            "provider_message_id": result.provider_message_id,
            "status": result.status,
            "submitted_at": now,
            "delivered_at": now if result.status == "delivered" else None,
        }
        return _Outcome(NoticeStatus(result.status), None, attempt, sent_at=now)
    attempt = {
        "segments": sms.segments,
        "encoding": sms.encoding,
        "text": sms.text,
        "provider": provider,
        "status": NoticeStatus.failed,
        "error_code": result.code,
        "error": result.message[:2000],
        "submitted_at": now,
    }
    if result.ambiguous:
        attempt["status"] = NoticeStatus.unknown
        return _Outcome(NoticeStatus.unknown, result.message[:500], attempt)
    return _Outcome(
        NoticeStatus.failed, result.message[:500], attempt, transient=not result.permanent
    )


_NOTICES = Notice.__table__  # type: ignore[attr-defined]
_ATTEMPTS = Attempt.__table__  # type: ignore[attr-defined]
# Core statements, run as executemany: the ORM's bulk paths cost more per row than SQLite does.
_SET_OUTCOME = (
    update(_NOTICES)
    .where(_NOTICES.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        status_reason=bindparam("b_reason"),
        sent_at=bindparam("b_sent_at"),
        send_at=func.coalesce(bindparam("b_retry_at", type_=UTCDateTime), _NOTICES.c.send_at),
        # An outcome without a hand-over (expired, suppressed) keeps what went out before.
        sent_text=func.coalesce(bindparam("b_text", type_=String), _NOTICES.c.sent_text),
        updated_at=bindparam("b_now"),
    )
)


def _record(engine: Engine, outcomes: dict[int, _Outcome]) -> None:
    """Write the outcomes and their attempts in one transaction."""
    if not outcomes:
        return
    now = utcnow()
    attempts = [
        {
            "notice_id": notice_id,
            "provider_message_id": None,
            "error_code": None,
            "error": None,
            "delivered_at": None,
            "segments": None,
            "encoding": None,
            "text": None,
            **outcome.attempt,
        }
        for notice_id, outcome in outcomes.items()
        if outcome.attempt is not None
    ]
    with engine.begin() as conn:
        conn.execute(
            _SET_OUTCOME,
            [
                {
                    "b_id": notice_id,
                    "b_status": outcome.status,
                    "b_reason": outcome.reason,
                    "b_sent_at": outcome.sent_at,
                    "b_retry_at": outcome.retry_at,
                    "b_text": (outcome.attempt or {}).get("text"),
                    "b_now": now,
                }
                for notice_id, outcome in outcomes.items()
            ],
        )
        if attempts:
            conn.execute(insert(_ATTEMPTS), attempts)


def _load(session: Session, model: Any, ids: Iterable[int | None]) -> dict[int, Any]:
    """Rows of ``model`` by id, as plain rows (read-only, attribute access like the model)."""
    wanted = [i for i in ids if i is not None]
    table = model.__table__
    found: dict[int, Any] = {}
    for chunk in in_chunks(wanted):
        query = select(table).where(table.c.id.in_(chunk))
        for row in session.execute(query):
            found[row.id] = row
    return found
