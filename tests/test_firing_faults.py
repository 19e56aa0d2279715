"""A database error in the middle of a firing: nothing is stranded, nothing is sent twice.

Each test makes one step of a firing fail (see tests/db_faults.py) on SQLite and PostgreSQL;
tests/test_pg_restart.py does it for real, restarting PostgreSQL under a drain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.engine import Engine

from reminders.messages import create_message
from reminders.models import Notice, NoticeStatus
from reminders.pending_jobs import commit_and_schedule
from reminders.runtime import Runtime
from reminders.scheduler.claims import LanePicker
from reminders.scheduler.due import mark_due, mark_overdue
from reminders.scheduler.firing import fire_many, fire_next
from reminders.scheduler.notice_scheduler import NoticeScheduler, job_id
from reminders.scheduler.retrying import Backoff
from reminders.schemas.messages import MessageCreate
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError
from reminders.sender.outbox import OutboxSender
from reminders.settings import Settings
from tests.conftest import account_session, wait_for
from tests.db_faults import CLAIM, LOAD, NEXT_RUN_TIME, OUTBOX, RECORD, RELEASE, Faults
from tests.test_scheduler import make_notices, status_of

# Short waits; the tries that may be abandoned go on long past any test's failures, so a slow
# machine never makes a firing give up that the test expects to go through.
FAST = Backoff(first=0.01, cap=0.05, give_up_after=60.0)


class Gateway(Sender):
    """Takes every message and remembers which notices it got, in order."""

    name = "gateway"
    batch_size = 3

    def __init__(self, settings: Settings, engine: Engine) -> None:
        super().__init__(settings, engine)
        self.received: list[int] = []
        self.on_send: Callable[[], object] | None = None

    def send(self, sms: OutgoingSms) -> Accepted:
        self.received.append(sms.notice_id)
        if self.on_send is not None:
            self.on_send()
        return Accepted(provider_message_id=f"gw-{sms.notice_id}")


@pytest.fixture
def faults(engine: Engine) -> Faults:
    return Faults(engine)


@pytest.fixture
def gateway(settings: Settings, engine: Engine) -> Gateway:
    return Gateway(settings, engine)


def phones(count: int, series: int) -> list[str]:
    return [f"0888 6{series:02d} {n:03d}" for n in range(count)]


def statuses(engine: Engine, ids: Sequence[int]) -> dict[int, str]:
    with account_session(engine) as session:
        return {i: session.get(Notice, i).status for i in ids}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("pattern", "at"),
    [(LOAD, "execute"), (CLAIM, "execute"), (CLAIM, "commit"), (CLAIM, "answer")],
    ids=["load", "claim", "claim-commit", "claim-answer-lost"],
)
def test_a_batch_not_yet_claimed_is_tried_again(
    engine: Engine, settings: Settings, faults: Faults, gateway: Gateway, pattern: str, at: str
) -> None:
    """Before the hand-over nothing is lost: the batch waits the database out and goes once.

    "claim-answer-lost": the claim was kept but its answer lost, so it is undone and made again.
    """
    ids = make_notices(engine, phones(7, 1))
    faults.fail(pattern, times=2, at=at)  # type: ignore[arg-type]
    outcomes = fire_many(engine, gateway, ids, settings=settings, backoff=FAST)
    assert faults.injected == 2
    assert outcomes == {i: "sent" for i in ids}
    assert sorted(gateway.received) == sorted(ids)
    assert set(statuses(engine, ids).values()) == {"sent"}


def test_an_outcome_is_recorded_once_the_database_answers(
    engine: Engine, settings: Settings, faults: Faults, gateway: Gateway
) -> None:
    ids = make_notices(engine, phones(5, 2))
    faults.fail(RECORD, times=4)
    outcomes = fire_many(engine, gateway, ids, settings=settings, backoff=FAST)
    assert faults.injected == 4
    assert outcomes == {i: "sent" for i in ids}
    assert sorted(gateway.received) == sorted(ids), "the gateway got a notice twice"
    with engine.connect() as conn:
        attempts: dict[int, int] = dict(
            conn.execute(text("SELECT notice_id, count(*) FROM attempts GROUP BY notice_id")).all()
        )
    assert attempts == {i: 1 for i in ids}


def test_an_undone_claim_is_retried_until_written(
    engine: Engine, settings: Settings, faults: Faults, gateway: Gateway
) -> None:
    """A claim kept but unanswered must be undone before anything else: that write waits too."""
    ids = make_notices(engine, phones(3, 3))
    faults.fail(CLAIM, at="answer")
    faults.fail(RELEASE, times=3)
    assert fire_many(engine, gateway, ids, settings=settings, backoff=FAST) == {
        i: "sent" for i in ids
    }
    assert faults.injected == 4
    assert sorted(gateway.received) == sorted(ids)


def test_a_long_undo_does_not_use_up_the_claims_allowance(
    engine: Engine, settings: Settings, faults: Faults, gateway: Gateway
) -> None:
    """Undoing a claim in doubt can outlast ``give_up_after`` (here 20 failed tries of at least
    40 ms against 0.5 s); once it is written the database is back, and the batch is claimed
    and sent rather than given up (a race that failed the test above on a loaded machine)."""
    ids = make_notices(engine, phones(3, 5))
    faults.fail(CLAIM, at="answer")
    faults.fail(RELEASE, times=20)
    assert fire_many(engine, gateway, ids, settings=settings, backoff=FAST) == {
        i: "sent" for i in ids
    }
    assert sorted(gateway.received) == sorted(ids)


def test_a_database_that_stays_away_leaves_the_batch_due(
    engine: Engine, settings: Settings, faults: Faults, gateway: Gateway
) -> None:
    """Tried for ``give_up_after`` with back-off (not a busy loop), then left ``due``, where
    the next look of a lane finds it."""
    ids = make_notices(engine, phones(7, 4))
    faults.fail(LOAD, times=10_000)
    soon = Backoff(first=0.01, cap=0.05, give_up_after=0.5)
    assert fire_many(engine, gateway, ids, settings=settings, backoff=soon) == {}
    # 0.5 s of waits of at least 8 ms, growing to 40: at most about 15 tries, not thousands (a
    # slow machine only makes fewer); and the rest of the call (two more batches) is not tried.
    assert 1 <= faults.injected <= 30
    assert gateway.received == []
    assert set(statuses(engine, ids).values()) == {"due"}
    faults.clear()
    assert (
        fire_next(engine, gateway, LanePicker("bulk"), settings=settings, lane="transactional") == 3
    )
    assert sorted(gateway.received) == sorted(ids[:3])


def test_a_stop_while_recording_leaves_the_batch_sending(
    engine: Engine, settings: Settings, faults: Faults, gateway: Gateway
) -> None:
    """Outcomes that cannot be written before the process stops are lost with it: the notices
    stay ``sending`` and the next start calls them unknown, never sends them again."""
    ids = make_notices(engine, phones(2, 5))
    stop = threading.Event()
    gateway.on_send = stop.set  # the service is asked to stop while the gateway takes them
    faults.fail(RECORD, times=10_000)
    # Stopping the service sets both: claim no more, and give up the writes still waiting.
    outcomes = fire_many(
        engine, gateway, ids, settings=settings, backoff=FAST, stop=stop, shutdown=stop
    )
    assert outcomes == {}
    assert faults.injected == 1  # one try, after the stop: it failed, so they stay
    assert sorted(gateway.received) == sorted(ids)
    assert set(statuses(engine, ids).values()) == {"sending"}
    faults.clear()
    assert NoticeScheduler(engine).settle_interrupted(alive=None) == 2
    assert set(statuses(engine, ids).values()) == {"unknown"}


@pytest.mark.slow  # the real back-off: about 2 s
def test_a_stopping_lane_still_records_what_the_gateway_took(
    engine: Engine, settings: Settings, faults: Faults, gateway: Gateway
) -> None:
    """The process is told to stop while the gateway takes a batch and the database is away:
    the lane claims nothing more, but records what it sent once the database answers, rather
    than leaving its own notices ``sending`` (to end ``unknown``)."""
    ids = make_notices(engine, phones(6, 11))
    stop = threading.Event()
    gateway.on_send = stop.set
    faults.fail(RECORD, times=3)  # about 2 s of the real back-off: it outlasts the stop
    picker = LanePicker("bulk")
    assert (
        fire_next(engine, gateway, picker, settings=settings, lane="transactional", stop=stop) == 3
    )
    assert faults.injected == 3
    sent = set(gateway.received)
    assert len(sent) == len(gateway.received) == gateway.batch_size  # the one batch claimed
    assert statuses(engine, ids) == {i: "sent" if i in sent else "due" for i in ids}
    assert (
        fire_next(engine, gateway, picker, settings=settings, lane="transactional", stop=stop) == 0
    )


def test_a_claim_in_doubt_is_undone_by_a_deposed_process(
    engine: Engine, settings: Settings, faults: Faults, gateway: Gateway
) -> None:
    """Deposed while a claim's answer was lost and the database is away: the claim is still
    put back once it answers, so the next leader can fire those notices."""
    ids = make_notices(engine, phones(3, 12))
    halted, shutdown = threading.Event(), threading.Event()
    faults.fail(CLAIM, at="answer", then=halted.set)
    faults.fail(RELEASE, times=3)
    outcomes = fire_many(
        engine, gateway, ids, settings=settings, backoff=FAST, stop=halted, shutdown=shutdown
    )
    assert outcomes == {}  # deposed: not claimed again
    assert faults.injected == 4
    assert gateway.received == []
    assert set(statuses(engine, ids).values()) == {"due"}


class Exploding(Gateway):
    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Accepted | SendError]:
        self.received.append(messages[0].notice_id)
        raise RuntimeError("the connection pool broke halfway")


def test_a_sender_that_raises_leaves_its_batch_unknown(engine: Engine, settings: Settings) -> None:
    """Some of the batch may have gone out: unknown, with the reason, rather than resent."""
    ids = make_notices(engine, phones(3, 6))
    outcomes = fire_many(engine, Exploding(settings, engine), ids, settings=settings)
    assert outcomes == {i: "unknown" for i in ids}
    with account_session(engine) as session:
        notice = session.get(Notice, ids[0])
        assert notice is not None
        assert "the connection pool broke halfway" in (notice.status_reason or "")
        assert "may have sent" in (notice.status_reason or "")


@pytest.mark.parametrize(("at", "status"), [("execute", "scheduled"), ("answer", "unknown")])
def test_the_outbox_tells_a_failed_write_from_a_lost_answer(
    engine: Engine, settings: Settings, faults: Faults, at: str, status: str
) -> None:
    """The outbox sender writes to the database it fires from: a write that failed is a
    gateway that could not be reached (tried again later); a lost commit answer may have kept
    the message (unknown)."""
    [notice_id] = make_notices(engine, phones(1, 7))
    faults.fail(OUTBOX, at=at)  # type: ignore[arg-type]
    sender = OutboxSender(settings, engine)
    assert fire_many(engine, sender, [notice_id], settings=settings) == {notice_id: status}
    with account_session(engine) as session:
        notice = session.get(Notice, notice_id)
        assert notice is not None
        if status == "scheduled":
            assert "attempt 1 failed (the outbox could not be written" in (
                notice.status_reason or ""
            )
            assert notice.send_at > datetime.now(UTC)


@pytest.fixture
def firing(settings: Settings, engine: Engine) -> Callable[[Sender], Runtime]:
    """What a scheduler that fires through ``sender`` is given."""

    def runtime(sender: Sender) -> Runtime:
        return Runtime(settings=settings, engine=engine, sender=sender)

    return runtime


def test_the_active_scheduler_marks_due_a_notice_whose_job_was_lost(
    engine: Engine, settings: Settings, gateway: Gateway, firing: Callable[[Sender], Runtime]
) -> None:
    scheduler = NoticeScheduler(
        engine, runtime=firing(gateway), reconcile_every=timedelta(seconds=0.2)
    )
    scheduler.start()
    try:
        # Notices written ``scheduled`` and due without a job, as a crash between a notice's
        # commit and its job's leaves them.
        ids = make_notices(engine, phones(4, 8), send_at=datetime.now(UTC) + timedelta(hours=1))
        with engine.begin() as conn:
            conn.execute(
                update(Notice)
                .where(Notice.id.in_(ids))  # type: ignore[union-attr]
                .values(send_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            conn.execute(text("DELETE FROM apscheduler_jobs"))
        wait_for(
            lambda: set(statuses(engine, ids).values()) == {"sent"},
            timeout=10,
            what="the periodic check to mark the notices due",
        )
        assert sorted(gateway.received) == sorted(ids)
    finally:
        scheduler.shutdown()


class OneByOne(Gateway):
    batch_size = 1


@pytest.mark.slow  # the scheduler's own clock (its back-off, its watchdog): seconds
def test_the_scheduler_waits_out_a_job_store_error(
    engine: Engine,
    settings: Settings,
    faults: Faults,
    gateway: Gateway,
    firing: Callable[[Sender], Runtime],
) -> None:
    """APScheduler does not guard its own loop against the store: one error ended its thread."""
    scheduler = NoticeScheduler(engine, runtime=firing(gateway))
    scheduler.start()
    try:
        faults.fail(NEXT_RUN_TIME, times=3)
        wait_for(lambda: faults.injected == 3, what="the store to fail three times")
        data = MessageCreate.model_validate({"to": {"phones": ["0888 611 001"]}, "text": "x"})
        with account_session(engine, expire_on_commit=False) as session:
            _, [notice] = create_message(session, scheduler, data, region="BG")
            commit_and_schedule(session)
        assert notice.id is not None
        wait_for(lambda: status_of(engine, notice.id or 0) == "sent", what="the notice to go")
    finally:
        scheduler.shutdown()


def test_the_check_leaves_alone_what_the_lanes_hold(
    engine: Engine, settings: Settings, firing: Callable[[Sender], Runtime]
) -> None:
    """Notices the lanes have claimed, or not reached yet, are neither lost nor given jobs:
    the periodic check marks only ``scheduled`` notices whose time has passed."""
    release = threading.Event()
    gateway = OneByOne(settings, engine)
    gateway.on_send = lambda: release.wait(60)  # until the test lets them go
    ids = make_notices(engine, phones(5, 9))
    later = datetime.now(UTC) + timedelta(hours=1)
    future = make_notices(engine, ["0888 609 999"], send_at=later)[0]
    scheduler = NoticeScheduler(engine, runtime=firing(gateway), reconcile_every=timedelta(hours=1))
    scheduler.start()
    try:
        # Each of the lane's threads blocks on its first notice; the others wait, due.
        wait_for(lambda: gateway.received, what="the first notice to reach the gateway")
        assert list(statuses(engine, ids).values()).count("due") >= 3
        scheduler.check_due()
        with engine.connect() as conn:
            jobs = set(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
        assert jobs == {job_id(future)}
        assert status_of(engine, future) == "scheduled"
        release.set()
        wait_for(lambda: set(statuses(engine, ids).values()) == {"sent"}, what="all sent")
        assert sorted(gateway.received) == sorted(ids)
    finally:
        release.set()
        scheduler.shutdown()


def test_marking_due_takes_only_scheduled_notices_whose_time_has_come(engine: Engine) -> None:
    """A job that fires late, for a notice moved later or cancelled meanwhile, marks nothing;
    the periodic check marks only what is overdue."""
    later = datetime.now(UTC) + timedelta(hours=1)
    moved, cancelled, overdue, future = make_notices(engine, phones(4, 10), send_at=later)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            update(Notice)
            .where(Notice.id == cancelled)  # type: ignore[arg-type]
            .values(status=NoticeStatus.cancelled, send_at=now - timedelta(minutes=1))
        )
        conn.execute(
            update(Notice)
            .where(Notice.id == overdue)  # type: ignore[arg-type]
            .values(send_at=now - timedelta(minutes=1))
        )
        assert mark_due(conn, [moved, cancelled], now) == {}
    scheduler = NoticeScheduler(engine)
    scheduler.check_due()
    assert statuses(engine, [moved, cancelled, overdue, future]) == {
        moved: "scheduled",
        cancelled: "cancelled",
        overdue: "due",
        future: "scheduled",
    }


def test_overdue_notices_are_marked_in_chunks_each_its_own_transaction(engine: Engine) -> None:
    """Five overdue notices, two a transaction: three transactions, all five due, newest first
    (in a burst, what fell due last is what the jobs, oldest first, reach last)."""
    now = datetime.now(UTC)
    ids = make_notices(engine, phones(5, 12), send_at=now + timedelta(hours=1))
    with engine.begin() as conn:
        for age, notice_id in enumerate(ids):  # the first is the oldest
            conn.execute(
                update(Notice)
                .where(Notice.id == notice_id)  # type: ignore[arg-type]
                .values(send_at=now - timedelta(minutes=10 - age))
            )
    with engine.begin() as conn:
        assert sum(mark_overdue(conn, now, limit=2).values()) == 2
    assert set(statuses(engine, ids[3:]).values()) == {"due"}  # the two newest
    assert set(statuses(engine, ids[:3]).values()) == {"scheduled"}
    scheduler = NoticeScheduler(engine)
    begun: list[object] = []

    def count(conn: object) -> None:
        begun.append(conn)

    event.listen(engine, "begin", count)
    try:
        assert scheduler.signal.mark_overdue(now, chunk=2) == {"bulk": 3}
    finally:
        event.remove(engine, "begin", count)
    assert set(statuses(engine, ids).values()) == {"due"}
    assert len(begun) == 2  # two, then one: fewer than a chunk, so no more


def test_the_check_interval_is_a_setting() -> None:
    from reminders.settings import SettingsError, load_settings

    assert load_settings(reconcile_every="PT45S").reconcile_every == timedelta(seconds=45)
    with pytest.raises(SettingsError, match="REMINDERS_RECONCILE_EVERY: must be a positive"):
        load_settings(reconcile_every="PT0S")


def test_a_claim_written_as_the_lane_halts_is_given_back_unsent(
    engine: Engine, settings: Settings, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The halt lands while a batch's claim is on its way to the database: the claim shows only
    after the deposed leader said it was paused, so it must not go out; it goes back to
    ``due`` (unclaimed) for the lanes of a process still running."""
    import reminders.scheduler.firing as firing_module

    ids = make_notices(engine, phones(5, 13))
    halted = threading.Event()
    claim = firing_module.claim_many

    def claim_then_halt(*args: object, **kwargs: object) -> list[int]:
        claimed = claim(*args, **kwargs)  # type: ignore[arg-type]
        halted.set()
        return claimed

    monkeypatch.setattr(firing_module, "claim_many", claim_then_halt)
    outcomes = fire_many(
        engine, gateway, ids, settings=settings, backoff=FAST, stop=halted, shutdown=None
    )
    assert outcomes == {}
    assert gateway.received == []
    assert set(statuses(engine, ids).values()) == {"due"}
    with engine.connect() as conn:
        holders = set(conn.execute(text("SELECT claimed_by FROM notices")).scalars())
    assert holders == {None}


def test_a_takeover_reconciles_chunk_by_chunk_in_the_database(
    engine: Engine, settings: Settings
) -> None:
    """Ten scheduled notices, compared three at a time: those without a job get one, jobs of
    notices no longer scheduled go, a job of some other kind is left alone."""
    later = datetime.now(UTC) + timedelta(hours=1)
    ids = make_notices(engine, [f"0888 620 {i:03d}" for i in range(10)], send_at=later)
    scheduler = NoticeScheduler(engine)
    scheduler.schedule([(i, later) for i in ids[:4]])  # four have their jobs
    with account_session(engine) as session:
        for notice_id in ids[8:]:  # two are cancelled, and keep a stale job
            row = session.get(Notice, notice_id)
            assert row is not None
            row.status = NoticeStatus.cancelled
            session.add(row)
        session.commit()
    scheduler.schedule([(i, later) for i in ids[8:]])
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES (:i, 1, :s)"),
            {"i": "source:7", "s": b"x"},
        )
    report = scheduler._reconcile_all(chunk=3)
    assert report == {"rescheduled": 4, "removed": 2}
    with engine.connect() as conn:
        jobs = set(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
    assert jobs == {job_id(i) for i in ids[:8]} | {"source:7"}
    assert scheduler._reconcile_all(chunk=3) == {"rescheduled": 0, "removed": 0}


def test_a_full_read_of_due_jobs_sweeps_the_bursts_notices_due_at_once(engine: Engine) -> None:
    """A burst: the loop reads due jobs a batch at a time; a full batch means more wait, so a
    sweep marks every notice whose time has come in one go, ahead of their jobs; at most one
    sweep a second."""
    later = datetime.now(UTC) + timedelta(hours=1)
    ids = make_notices(engine, phones(12, 13), send_at=later)
    scheduler = NoticeScheduler(engine, batch_size=5)
    scheduler.schedule([(i, later) for i in ids])
    past = datetime.now(UTC) - timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(
            update(Notice).where(Notice.id.in_(ids)).values(send_at=past)  # type: ignore[union-attr]
        )
        conn.execute(
            text("UPDATE apscheduler_jobs SET next_run_time = :t"), {"t": past.timestamp()}
        )
    jobs = scheduler._store.get_due_jobs(datetime.now(UTC))
    assert len(jobs) == 5  # a full batch: the other seven wait behind it
    wait_for(lambda: set(statuses(engine, ids).values()) == {"due"}, what="the sweep to mark them")
    with engine.connect() as conn:  # their jobs are still there, to find them due and do nothing
        assert conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == 12
    # Another full read within the second starts no second sweep.
    with engine.begin() as conn:
        conn.execute(update(Notice).where(Notice.id == ids[0]).values(status="scheduled"))  # type: ignore[arg-type]
    scheduler._store.get_due_jobs(datetime.now(UTC))
    time.sleep(0.3)
    assert statuses(engine, [ids[0]]) == {ids[0]: "scheduled"}
