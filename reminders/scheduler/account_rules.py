"""What an account's settings do to a firing batch: a suspended account's notices wait, and
an SMS past its account's monthly quota ends ``failed`` unsent (``accounts/quota.py``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.accounts.months import Month
from reminders.accounts.quota import Reservation, guard_for, used_up
from reminders.accounts.terms import Terms
from reminders.db import utcnow
from reminders.models import NoticeStatus
from reminders.pending_jobs import JobScheduler
from reminders.scheduler.outcomes import Outcome
from reminders.scheduler.preparing import Ready
from reminders.scheduler.retrying import reason
from reminders.sender.base import OutgoingSms
from reminders.settings import Settings

log = logging.getLogger(__name__)
# How long a suspended account's due notice waits before it is looked at again.
HOLD_FOR = timedelta(minutes=1)


def hold(scheduler: JobScheduler | None, held: list[tuple[int, str]]) -> None:
    """Fire the held notices again in ``HOLD_FOR``: their account may be active by then. They
    stay scheduled meanwhile, so that the periodic check gives them jobs should this fail."""
    if not held or scheduler is None:
        return
    log.info("%d notice(s) of suspended accounts wait", len(held))
    again = utcnow() + HOLD_FOR
    try:
        scheduler.schedule([(i, again, lane) for i, lane in held])
    except Exception as exc:
        log.warning("could not write the jobs of %d held notice(s) (%s)", len(held), reason(exc))


def within_quotas(
    engine: Engine,
    session: Session,
    ready: dict[int, Ready],
    notices: dict[int, Any],
    terms: dict[int, Terms],
    now: datetime,
    settings: Settings,
) -> Reservation:
    """Reserve the segments of the batch's SMS in their accounts' quotas for this month (one
    aggregate query, for the accounts with a quota alone); an SMS that does not fit becomes
    a ``failed`` outcome, with the reason, in ``ready``."""
    quotas = {
        account_id: t.monthly_segments
        for account_id, t in terms.items()
        if t.monthly_segments is not None
    }
    guard = guard_for(engine)
    if not quotas:
        return Reservation(guard, {})
    outgoing = {i: r for i, r in ready.items() if isinstance(r, OutgoingSms)}
    wanted = [(i, notices[i].account_id, sms.segments) for i, sms in outgoing.items()]
    month = Month.of(now, settings.zone)
    reservation, refused = guard.reserve(session, wanted, quotas, month.bounds(settings.zone))
    for notice_id, left in refused.items():
        quota = quotas[notices[notice_id].account_id]
        why = used_up(quota, left, outgoing[notice_id].segments, month)
        ready[notice_id] = Outcome(NoticeStatus.failed, why)
    if refused:
        log.warning("%d notice(s) failed: their accounts' monthly quotas are used up", len(refused))
    return reservation
