"""What an account's settings do to a firing batch: an SMS past its account's monthly quota
ends ``failed`` unsent (``accounts/quota.py``). (A suspended account's notices are not picked
at all: ``claims.py``.)"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.accounts.months import Month
from reminders.accounts.quota import Reservation, guard_for, used_up
from reminders.accounts.terms import Terms
from reminders.models import NoticeStatus
from reminders.scheduler.outcomes import Outcome
from reminders.scheduler.preparing import Ready
from reminders.sender.base import OutgoingSms
from reminders.settings import Settings

log = logging.getLogger(__name__)


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
