"""Firing is at most once; the job store is repaired from the notices table at start."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.messages import create_message
from reminders.models import Notice, NoticeStatus
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.firing import fire
from reminders.scheduler.notice_scheduler import NoticeScheduler, job_id
from reminders.schemas.messages import MessageCreate
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError
from reminders.sender.outbox import OutboxSender
from reminders.settings import Settings
from tests.conftest import account_session, fall_due, wait_for


def make_notices(
    engine: Engine, phones: list[str], *, send_at: datetime | None = None
) -> list[int]:
    data = MessageCreate.model_validate(
        {
            "to": {"phones": phones},
            "text": "Test",
            "send_at": send_at.isoformat() if send_at else None,
        }
    )
    with account_session(engine, expire_on_commit=False) as session:
        _, notices = create_message(session, None, data, region="BG")
        commit_and_schedule(session)
    return [n.id for n in notices if n.id is not None]


def status_of(engine: Engine, notice_id: int) -> str:
    with account_session(engine) as session:
        notice = session.get(Notice, notice_id)
        assert notice is not None
        return notice.status


def outbox_count(engine: Engine, notice_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM outbox WHERE notice_id = :n"), {"n": notice_id}
            ).scalar()
            or 0
        )


def test_a_notice_is_claimed_only_once_it_is_due(engine: Engine, settings: Settings) -> None:
    """A firing that comes early (a stale job, a lane that waited) leaves the notice alone."""
    [notice_id] = make_notices(
        engine, ["0888 400 009"], send_at=datetime.now(UTC) + timedelta(hours=1)
    )
    sender = OutboxSender(settings, engine)
    assert fire(engine, sender, notice_id, settings=settings) is None
    assert status_of(engine, notice_id) == "scheduled"
    assert outbox_count(engine, notice_id) == 0
    fall_due(engine, notice_id)
    assert fire(engine, sender, notice_id, settings=settings) == "sent"
    assert outbox_count(engine, notice_id) == 1


def test_firing_twice_sends_once(engine: Engine, settings: Settings) -> None:
    [notice_id] = make_notices(engine, ["0888 400 001"])
    sender = OutboxSender(settings, engine)
    assert fire(engine, sender, notice_id, settings=settings) == "sent"
    assert fire(engine, sender, notice_id, settings=settings) is None
    assert outbox_count(engine, notice_id) == 1


def test_concurrent_firings_send_once(engine: Engine, settings: Settings) -> None:
    ids = make_notices(engine, [f"0888 400 {n:03d}" for n in range(20)])
    sender = OutboxSender(settings, engine)
    barrier = threading.Barrier(4)
    results: list[str | None] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for notice_id in ids:
            outcome = fire(engine, sender, notice_id, settings=settings)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("sent") == len(ids)
    assert results.count(None) == 3 * len(ids)
    assert all(outbox_count(engine, n) == 1 for n in ids)


class BrokenSender(Sender):
    name = "broken"

    def send(self, sms: OutgoingSms) -> Accepted:
        raise SendError("the number is not in service", permanent=True, code="invalid_number")


class CrashingSender(Sender):
    name = "crashing"

    def send(self, sms: OutgoingSms) -> Accepted:
        raise RuntimeError("bug in a plug-in")


def test_failures_are_recorded_with_the_gateways_words(engine: Engine, settings: Settings) -> None:
    first, second = make_notices(engine, ["0888 400 101", "0888 400 102"])
    assert fire(engine, BrokenSender(settings, engine), first, settings=settings) == "failed"
    assert fire(engine, CrashingSender(settings, engine), second, settings=settings) == "failed"
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT notice_id, provider, status, error_code, error FROM attempts ORDER BY id")
        ).all()
    assert [tuple(r) for r in rows] == [
        (first, "broken", "failed", "invalid_number", "the number is not in service"),
        (second, "crashing", "failed", None, "RuntimeError: bug in a plug-in"),
    ]


def test_start_repairs_the_job_store(engine: Engine, settings: Settings) -> None:
    """A crash can leave notices without jobs, jobs without notices, and sends half done."""
    later = datetime.now(UTC) + timedelta(hours=1)
    due, future, interrupted, cancelled = make_notices(
        engine, ["0888 400 201", "0888 400 202", "0888 400 203", "0888 400 204"], send_at=later
    )
    with account_session(engine) as session:
        for notice_id, status, when in [
            (due, NoticeStatus.scheduled, datetime.now(UTC) - timedelta(minutes=1)),
            (interrupted, NoticeStatus.sending, later),
            (cancelled, NoticeStatus.cancelled, later),
        ]:
            notice = session.get(Notice, notice_id)
            assert notice is not None
            notice.status, notice.send_at = status, when
            session.add(notice)
        session.commit()
    # Only the cancelled notice has a job (an orphan); the others have none.
    from reminders.runtime import Runtime

    scheduler = NoticeScheduler(
        engine,
        runtime=Runtime(settings=settings, engine=engine, sender=OutboxSender(settings, engine)),
    )
    scheduler.schedule([(cancelled, later)])
    try:
        scheduler.start()
        wait_for(lambda: status_of(engine, due) == "sent", what="the overdue notice to fire")
        with engine.connect() as conn:
            jobs = set(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
        assert jobs == {job_id(future)}
        assert status_of(engine, interrupted) == "unknown"
        assert outbox_count(engine, interrupted) == 0
        assert status_of(engine, cancelled) == "cancelled"
    finally:
        scheduler.shutdown()


@pytest.mark.slow  # a notice due 2 s later, on the real clock
def test_jobs_survive_a_scheduler_restart(engine: Engine, settings: Settings) -> None:
    from reminders.runtime import Runtime

    rt = Runtime(settings=settings, engine=engine, sender=OutboxSender(settings, engine))
    first = NoticeScheduler(engine, runtime=rt)
    first.start()
    soon = datetime.now(UTC) + timedelta(seconds=2)
    data = MessageCreate.model_validate(
        {"to": {"phones": ["0888 400 301"]}, "text": "x", "send_at": soon.isoformat()}
    )
    with account_session(engine, expire_on_commit=False) as session:
        _, [notice] = create_message(session, first, data, region="BG")
        commit_and_schedule(session)
    first.shutdown()
    assert notice.id is not None
    assert status_of(engine, notice.id) == "scheduled"

    second = NoticeScheduler(engine, runtime=rt)
    second.start()
    try:
        wait_for(lambda: status_of(engine, notice.id or 0) == "sent", what="the notice to fire")
        assert outbox_count(engine, notice.id) == 1
    finally:
        second.shutdown()


def test_job_state_is_what_apscheduler_would_store(engine: Engine) -> None:
    """The batch path skips ``Job``; it must still write exactly the state ``Job`` would."""
    from apscheduler.job import Job
    from apscheduler.triggers.date import DateTrigger

    from reminders.scheduler.jobs import fire_notice
    from reminders.scheduler.notice_scheduler import job_state

    when = datetime(2027, 3, 28, 3, 30, tzinfo=UTC)
    scheduler = NoticeScheduler(engine)
    job = Job(
        scheduler._scheduler,
        id=job_id(42),
        func=fire_notice,
        trigger=DateTrigger(run_date=when, timezone=UTC),
        executor="notices",
        args=(42,),
        kwargs={},
        name="fire_notice",
        misfire_grace_time=None,
        coalesce=True,
        max_instances=1,
        next_run_time=when,
    )
    expected = job.__getstate__()
    ours = job_state(42, when)
    assert {k: v for k, v in ours.items() if k != "trigger"} == {
        k: v for k, v in expected.items() if k != "trigger"
    }
    assert ours["trigger"].__getstate__() == expected["trigger"].__getstate__()


def test_a_job_stored_before_lanes_fires_with_its_own_schedulers_runtime(
    engine: Engine, settings: Settings
) -> None:
    """Jobs stored before batching name the default executor and call ``fire_notice`` by its
    import path with the notice id alone: the executor's thread gives it its scheduler, and
    so the runtime (sender, token) of the process that fires it."""
    from reminders.models import JOBS_TABLE
    from reminders.runtime import Runtime
    from reminders.scheduler.notice_scheduler import job_state
    from reminders.scheduler.store import BatchJobStore

    [notice_id] = make_notices(engine, ["0888 400 401"], send_at=datetime.now(UTC))
    state = job_state(notice_id, datetime.now(UTC)) | {"executor": "default"}
    BatchJobStore(engine=engine, tablename=JOBS_TABLE).add_job_states([state])
    rt = Runtime(settings, engine, OutboxSender(settings, engine), token="the-firing-one")
    scheduler = NoticeScheduler(engine, runtime=rt)
    scheduler.start()
    try:
        wait_for(lambda: status_of(engine, notice_id) == "sent", what="the old job to fire")
    finally:
        scheduler.shutdown()
    assert outbox_count(engine, notice_id) == 1
    with account_session(engine) as session:
        notice = session.get(Notice, notice_id)
        assert notice is not None and notice.claimed_by == "the-firing-one"


def test_each_scheduler_runs_stored_jobs_with_its_own_process(
    engine: Engine, settings: Settings
) -> None:
    """Two schedulers in one interpreter (tests, benchmarks): a stored job finds the one whose
    executor runs it, and outside any executor it finds none rather than a stale one."""
    from reminders.runtime import Runtime
    from reminders.scheduler.jobs import worker_scheduler

    sender = OutboxSender(settings, engine)
    first, second = (
        NoticeScheduler(engine, runtime=Runtime(settings, engine, sender, token=token))
        for token in ("first", "second")
    )
    seen: dict[str, str] = {}
    for scheduler in (first, second):
        scheduler.start()
    try:
        for scheduler in (first, second):
            scheduler._scheduler.add_job(
                lambda token=scheduler.token: seen.update({token: worker_scheduler().token}),
                jobstore="local",
            )
        wait_for(lambda: len(seen) == 2, what="both jobs to run")
    finally:
        first.shutdown()
        second.shutdown()
    assert seen == {"first": "first", "second": "second"}
    with pytest.raises(RuntimeError, match="outside the executor"):
        worker_scheduler()


def test_batches_fire_every_due_notice_once(engine: Engine, settings: Settings) -> None:
    """More due notices than one batch: every one is fired, and the store ends empty."""
    from reminders.runtime import Runtime

    ids = make_notices(
        engine,
        [f"0888 5{n // 1000:02d} {n % 1000:03d}" for n in range(250)],
        send_at=datetime.now(UTC) + timedelta(hours=1),
    )
    for notice_id in ids:
        fall_due(engine, notice_id)
    scheduler = NoticeScheduler(
        engine,
        runtime=Runtime(settings=settings, engine=engine, sender=OutboxSender(settings, engine)),
        batch_size=40,
    )
    scheduler.schedule([(n, datetime.now(UTC) - timedelta(seconds=1)) for n in ids])
    try:
        scheduler.start()

        def all_sent() -> bool:
            with engine.connect() as conn:
                return conn.execute(
                    text("SELECT count(*) FROM notices WHERE status = 'sent'")
                ).scalar() == len(ids)

        wait_for(all_sent, what="every notice sent")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM outbox")).scalar() == len(ids)
            assert conn.execute(
                text("SELECT count(DISTINCT notice_id) FROM outbox")
            ).scalar() == len(ids)

        def store_empty() -> bool:
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == 0

        wait_for(store_empty, what="the fired jobs to be deleted")
    finally:
        scheduler.shutdown()


class FlakySender(Sender):
    """Times out twice, then accepts."""

    name = "flaky"
    calls = 0

    def send(self, sms: OutgoingSms) -> Accepted:
        FlakySender.calls += 1
        if FlakySender.calls <= 2:
            raise SendError("the gateway timed out", permanent=False, code="timeout")
        return Accepted(provider_message_id=f"flaky-{FlakySender.calls}")


def test_transient_failures_are_retried_with_back_off(engine: Engine, settings: Settings) -> None:
    from reminders.scheduler.outcomes import RETRY_BASE

    FlakySender.calls = 0
    [notice_id] = make_notices(engine, ["0888 400 501"])
    flaky = FlakySender(settings, engine)
    before = datetime.now(UTC)
    assert fire(engine, flaky, notice_id, settings=settings) == "scheduled"
    with account_session(engine) as session:
        notice = session.get(Notice, notice_id)
        assert notice is not None
        # About 30 s later, give or take the jitter, and the reason says why.
        assert notice.send_at - before >= RETRY_BASE * 0.8
        assert "attempt 1 failed (the gateway timed out)" in (notice.status_reason or "")
    # The retry is not due yet: an early firing does nothing.
    assert fire(engine, flaky, notice_id, settings=settings) is None
    assert FlakySender.calls == 1
    fall_due(engine, notice_id)
    assert fire(engine, flaky, notice_id, settings=settings) == "scheduled"
    fall_due(engine, notice_id)
    assert fire(engine, flaky, notice_id, settings=settings) == "sent"
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, error_code FROM attempts WHERE notice_id = :n ORDER BY id"),
            {"n": notice_id},
        ).all()
    assert [tuple(r) for r in rows] == [
        ("failed", "timeout"),
        ("failed", "timeout"),
        ("sent", None),
    ]


def test_retries_stop_after_the_configured_attempts(engine: Engine, database_url: str) -> None:
    from reminders.settings import load_settings

    settings = load_settings(database_url=database_url, send_attempts=2, quiet_hours="off")
    FlakySender.calls = -10  # fails every time in this test
    [notice_id] = make_notices(engine, ["0888 400 502"])
    flaky = FlakySender(settings, engine)
    assert fire(engine, flaky, notice_id, settings=settings) == "scheduled"
    fall_due(engine, notice_id)
    assert fire(engine, flaky, notice_id, settings=settings) == "failed"
    with account_session(engine) as session:
        notice = session.get(Notice, notice_id)
        assert notice is not None
        assert "gave up after 2 attempts" in (notice.status_reason or "")
