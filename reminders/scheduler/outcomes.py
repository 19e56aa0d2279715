"""What became of a fired notice, and writing it down: its status, its attempt, its retry.

Recording is one transaction that may be tried again and again until the database answers
(the outcomes wait in memory meanwhile), so nothing here changes an ``Outcome`` in place.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col, func, select

from reminders.db import UTCDateTime, in_chunks, utcnow
from reminders.models import Attempt, Notice, NoticeStatus
from reminders.sender.base import Accepted, OutgoingSms, SendError
from reminders.webhooks.notice_events import notice_events

RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=15)


@dataclass(frozen=True)
class Outcome:
    status: NoticeStatus
    reason: str | None = None
    attempt: dict[str, Any] | None = None
    sent_at: datetime | None = None
    transient: bool = False  # a failure that trying again may fix (a timeout, a 5xx)
    retry_at: datetime | None = None


def retry_delay(failures: int) -> timedelta:
    """Exponential back-off with jitter: about 30 s, 1 min, 2 min... at most 15 min."""
    delay = min(RETRY_BASE * 2 ** max(failures - 1, 0), RETRY_CAP)
    return delay * random.uniform(0.8, 1.2)


def from_result(
    sms: OutgoingSms, result: Accepted | SendError, provider: str, now: datetime
) -> Outcome:
    """The outcome of one hand-over, as the sender reported it."""
    attempt: dict[str, Any] = {
        "segments": sms.segments,
        "encoding": sms.encoding,
        "text": sms.text,
        # A routed sender names the link's own sender: a delivery report is matched by it.
        "provider": result.provider or provider,
        "link": result.link,
        "submitted_at": now,
    }
    if isinstance(result, Accepted):
        attempt |= {
            "provider_message_id": result.provider_message_id,
            "status": result.status,
            "delivered_at": now if result.status == "delivered" else None,
        }
        return Outcome(NoticeStatus(result.status), None, attempt, sent_at=now)
    attempt |= {
        "status": NoticeStatus.failed,
        "error_code": result.code,
        "error": result.message[:2000],
    }
    if result.ambiguous:
        attempt["status"] = NoticeStatus.unknown
        return Outcome(NoticeStatus.unknown, result.message[:500], attempt)
    return Outcome(
        NoticeStatus.failed, result.message[:500], attempt, transient=not result.permanent
    )


def with_retries(
    outcomes: dict[int, Outcome], earlier: dict[int, int], attempts: int, now: datetime
) -> dict[int, Outcome]:
    """Transient failures go back on the schedule until a notice has had ``attempts`` tries;
    ``earlier`` counts each notice's attempts already recorded."""
    planned = dict(outcomes)
    for notice_id, outcome in outcomes.items():
        if not outcome.transient:
            continue
        tries = earlier.get(notice_id, 0) + 1  # this one is recorded with the outcome
        if tries >= attempts:
            planned[notice_id] = replace(
                outcome, reason=f"{outcome.reason} (gave up after {tries} attempts)"
            )
            continue
        planned[notice_id] = replace(
            outcome,
            status=NoticeStatus.scheduled,
            retry_at=now + retry_delay(tries),
            reason=f"attempt {tries} failed ({outcome.reason}); trying again",
        )
    return planned


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


def record(
    engine: Engine,
    outcomes: dict[int, Outcome],
    owners: Mapping[int, int],
    *,
    attempts: int,
    sent_at: datetime,
) -> dict[int, Outcome]:
    """Write the outcomes and their attempts in one transaction; return them as written, with
    the retries they were given (a try that fails writes nothing, so it can be run again).
    ``owners`` gives each notice's account, which its attempt carries."""
    if not outcomes:
        return {}
    with engine.begin() as conn:
        transient = [i for i, o in outcomes.items() if o.transient]
        final = with_retries(outcomes, _attempts_of(conn, transient), attempts, sent_at)
        now = utcnow()
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
                for notice_id, outcome in final.items()
            ],
        )
        rows = [
            {
                "notice_id": notice_id,
                "account_id": owners[notice_id],
                "provider_message_id": None,
                "error_code": None,
                "error": None,
                "delivered_at": None,
                "segments": None,
                "encoding": None,
                "text": None,
                "link": None,
                **outcome.attempt,
            }
            for notice_id, outcome in final.items()
            if outcome.attempt is not None
        ]
        if rows:
            conn.execute(insert(_ATTEMPTS), rows)
        # In the same transaction: an outcome written is an event written, and none without.
        changed = {i: (owners[i], o.status.value) for i, o in final.items()}
        notice_events(conn, changed, now)
    return final


def _attempts_of(conn: Connection, notice_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for chunk in in_chunks(notice_ids):
        query = (
            select(Attempt.notice_id, func.count())
            .where(col(Attempt.notice_id).in_(chunk))
            .group_by(col(Attempt.notice_id))
        )
        counts.update({int(notice_id): int(n) for notice_id, n in conn.execute(query)})
    return counts


def release(engine: Engine, notice_ids: Sequence[int], token: str) -> int:
    """Put notices this process claimed, and never handed to the sender, back to ``due``.

    Only a claim still held under ``token`` is undone. Within a process no two batches hold the
    same notice (a lane takes a notice's job once until its firing ends), so the claim undone is
    the one this firing made.
    """
    count = 0
    with engine.begin() as conn:
        for chunk in in_chunks(notice_ids):
            result = conn.execute(
                update(_NOTICES)
                .where(
                    _NOTICES.c.id.in_(chunk),
                    _NOTICES.c.status == NoticeStatus.sending,
                    _NOTICES.c.claimed_by.is_not_distinct_from(token or None),
                )
                .values(status=NoticeStatus.due, claimed_by=None, updated_at=utcnow())
            )
            count += int(result.rowcount or 0)
    return count
