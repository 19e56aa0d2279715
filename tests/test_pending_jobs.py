"""Who commits: domain functions flush, the caller commits, and jobs are written after it.

A notice's job is written through the scheduler's job store in a transaction of its own, so it
must never exist before its notice is committed; and a caller's transaction is all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.errors import NotFound
from reminders.keylocks import SLOTS, anchor_key, lock_keys, phone_key, slot
from reminders.messages import create_message
from reminders.models import Anchor, AnchorRecipient, Notice
from reminders.pending_jobs import (
    JobItem,
    commit_and_schedule,
    schedule_after_commit,
    unschedule_after_commit,
)
from reminders.scheduler.anchors import plan_many
from reminders.schemas.messages import MessageCreate
from reminders.settings import Settings
from tests.conftest import account_session

SOON = datetime.now(UTC) + timedelta(days=2)


class Recorder:
    """A scheduler that notes each call and which of its notices another connection sees
    then: only committed ones."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[tuple[Any, ...]] = []

    def schedule(self, items: Sequence[JobItem], *, new: bool = False) -> None:
        ids = sorted(item[0] for item in items)
        with Session(self.engine) as session:
            seen = session.exec(select(Notice.id).where(col(Notice.id).in_(ids))).all()
        self.calls.append(("schedule", ids, new, sorted(i for i in seen if i is not None)))

    def unschedule(self, notice_ids: Sequence[int]) -> None:
        self.calls.append(("unschedule", sorted(notice_ids)))


def message(session: Session, scheduler: Recorder, *phones: str) -> list[int]:
    data = MessageCreate.model_validate(
        {"to": {"phones": list(phones)}, "text": "x", "send_at": SOON.isoformat()}
    )
    _, notices = create_message(session, scheduler, data, region="BG")
    return [n.id for n in notices if n.id is not None]


def test_jobs_are_written_after_their_notices_are_committed(engine: Engine) -> None:
    scheduler = Recorder(engine)
    with account_session(engine) as session:
        ids = message(session, scheduler, "0888 500 001", "0888 500 002")
        assert scheduler.calls == []  # nothing before the commit
        commit_and_schedule(session)
    assert scheduler.calls == [("schedule", sorted(ids), True, sorted(ids))]


def test_a_plain_commit_with_jobs_queued_is_refused_and_a_rollback_forgets_them(
    engine: Engine,
) -> None:
    scheduler = Recorder(engine)
    with account_session(engine) as session:
        message(session, scheduler, "0888 500 003")
        with pytest.raises(RuntimeError, match="commit_and_schedule"):
            session.commit()  # the job would be lost
        session.rollback()
        kept = message(session, scheduler, "0888 500 004")
        commit_and_schedule(session)
    assert scheduler.calls == [("schedule", kept, True, kept)]  # the rolled back one's is gone
    with account_session(engine) as session:
        assert len(session.exec(select(Notice)).all()) == 1


def test_the_last_change_queued_for_a_notice_wins(engine: Engine) -> None:
    scheduler = Recorder(engine)
    with account_session(engine) as session:
        created, dropped = message(session, scheduler, "0888 500 005", "0888 500 006")
        unschedule_after_commit(session, scheduler, [dropped])  # new, then gone: no job at all
        schedule_after_commit(session, scheduler, [(7, SOON)])
        unschedule_after_commit(session, scheduler, [7, 8])
        schedule_after_commit(session, scheduler, [(8, SOON)])
        commit_and_schedule(session)
    assert scheduler.calls == [
        ("schedule", [created], True, [created]),
        ("schedule", [8], False, []),
        ("unschedule", [7]),
    ]


def test_job_changes_are_not_queued_inside_a_savepoint(engine: Engine) -> None:
    # A savepoint rolled back would leave them queued; its caller queues them after it.
    with account_session(engine) as session, session.begin_nested():
        with pytest.raises(RuntimeError, match="savepoint"):
            unschedule_after_commit(session, Recorder(engine), [1])


def test_planning_a_cancelled_anchor_commits_nothing_of_a_batch_that_fails(
    engine: Engine, settings: Settings
) -> None:
    """plan_many once cancelled an anchor's notices and committed in the middle of its loop:
    a later anchor's failure left the batch half applied."""
    with account_session(engine) as session:
        cancelled = Anchor(key="t:1", kind="event", title="x", at=SOON, policy="appointment")
        broken = Anchor(key="t:2", kind="event", title="x", at=SOON, policy="no such policy")
        session.add_all([cancelled, broken])
        session.flush()
        assert cancelled.id is not None and broken.id is not None
        session.add(AnchorRecipient(anchor_id=cancelled.id, phone="+359888500007"))
        plan_many(session, None, [cancelled.id], settings=settings)
        cancelled.cancelled = True
        session.add(cancelled)
        session.commit()
        with pytest.raises(NotFound):
            plan_many(session, None, [cancelled.id, broken.id], settings=settings)
        session.rollback()
        statuses = session.exec(select(Notice.status).where(Notice.anchor_id == cancelled.id))
        assert set(statuses) == {"scheduled"}


def test_a_transaction_locks_its_records_then_its_anchors(engine: Engine) -> None:
    """Slots in one order per transaction: never a lower one after a higher (keylocks)."""
    phone, other = phone_key("+359888500008"), phone_key("+359888500009")
    assert slot(phone) != slot(other) and slot(anchor_key(1)) >= SLOTS
    with account_session(engine) as session:
        lock_keys(session, [phone])
        lock_keys(session, [anchor_key(1), anchor_key(2)])
        lock_keys(session, [phone, anchor_key(2)])  # held already: nothing to wait for
        with pytest.raises(RuntimeError, match="records, then its anchors"):
            lock_keys(session, [other])
        session.rollback()
        lock_keys(session, [other])  # a new transaction starts afresh
        session.commit()
