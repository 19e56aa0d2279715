"""The scheduler outlives its job store's errors, knows its own health, and says so.

Failures are injected into the real database connection (SQLite and PostgreSQL): a statement on
the jobs table raises as a restarting server or a full disk would.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi.testclient import TestClient
from sqlalchemy import event, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import col

from reminders.models import JOBS_TABLE, Notice, NoticeStatus
from reminders.runtime import Runtime
from reminders.scheduler.executor import BatchingExecutor
from reminders.scheduler.health import LoopHealth
from reminders.scheduler.leader import Leadership
from reminders.scheduler.notice_scheduler import NoticeScheduler, job_state
from reminders.scheduler.sending import DeadProcesses, Suspicions
from reminders.scheduler.store import BatchJobStore
from reminders.sender.outbox import OutboxSender
from reminders.settings import Settings, load_settings
from tests.conftest import REDIS_URL, wait_for
from tests.test_scheduler import make_notices, outbox_count, status_of


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, quiet_hours="off", scheduler_stall="PT1S")


class Faults:
    """Makes statements on the jobs table fail while ``on``; ``kinds`` picks which."""

    def __init__(self, engine: Engine, kinds: tuple[str, ...]) -> None:
        self.on = False
        self.kinds = kinds
        self.raised = 0

        def fail(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if self.on and JOBS_TABLE in statement and statement.lstrip().startswith(self.kinds):
                self.raised += 1
                raise OperationalError(statement, params, Exception("injected: server restarting"))

        self._hook = fail
        self.engine = engine
        event.listen(engine, "before_cursor_execute", fail)

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)


@contextmanager
def faults(engine: Engine, *kinds: str) -> Iterator[Faults]:
    injected = Faults(engine, kinds or ("SELECT", "DELETE", "INSERT", "UPDATE"))
    try:
        yield injected
    finally:
        injected.remove()


def job_rows(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text(f"SELECT id FROM {JOBS_TABLE}")).scalars())


# --- the store ---------------------------------------------------------------------------------


def test_a_failed_delete_of_fired_jobs_is_kept_and_retried(engine: Engine) -> None:
    store = BatchJobStore(engine=engine, tablename=JOBS_TABLE)
    past = datetime.now(UTC) - timedelta(seconds=1)
    store.add_job_states([job_state(1, past), job_state(2, past)])
    assert {job.id for job in store.get_due_jobs(datetime.now(UTC))} == {"notice:1", "notice:2"}
    store.remove_job("notice:1")  # fired: its delete waits for the next call
    with faults(engine, "DELETE") as injected:
        injected.on = True
        with pytest.raises(OperationalError):
            store.get_next_run_time()
        with pytest.raises(OperationalError):
            store.get_due_jobs(datetime.now(UTC))
        assert store.due_error is not None  # the loop's cue: APScheduler swallows this one
        assert job_rows(engine) == {"notice:1", "notice:2"}
    store.get_next_run_time()
    assert job_rows(engine) == {"notice:2"}  # deleted once the database answered


def test_a_job_scheduled_again_is_not_deleted_by_a_late_flush(engine: Engine) -> None:
    store = BatchJobStore(engine=engine, tablename=JOBS_TABLE)
    past = datetime.now(UTC) - timedelta(seconds=1)
    store.add_job_states([job_state(1, past)])
    store.get_due_jobs(datetime.now(UTC))
    store.remove_job("notice:1")
    with faults(engine, "DELETE") as injected:
        injected.on = True
        with pytest.raises(OperationalError):
            store.get_next_run_time()
    # A transient failure put the notice back on the schedule before the delete went through.
    store.add_job_states([job_state(1, past + timedelta(minutes=1))])
    store.get_next_run_time()
    assert job_rows(engine) == {"notice:1"}


def test_a_deposed_store_forgets_its_pending_deletes(engine: Engine) -> None:
    store = BatchJobStore(engine=engine, tablename=JOBS_TABLE)
    past = datetime.now(UTC) - timedelta(seconds=1)
    store.add_job_states([job_state(1, past)])
    store.get_due_jobs(datetime.now(UTC))
    store.remove_job("notice:1")
    assert store.forget_fired() == 1
    store.get_next_run_time()
    # Left for the next leader: its reconcile removes it if the notice went, else fires it.
    assert job_rows(engine) == {"notice:1"}


# --- the loop, in a running service ------------------------------------------------------------


def post(client: TestClient, headers: dict[str, str], phone: str) -> int:
    """A message due in 3 s: it goes through its job, and so through the job store.

    Had the request taken longer than the lead, the message would have been written due (no
    job), which is what one second's lead let a busy machine do.
    """
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    response = client.post(
        "/api/v1/messages",
        headers=headers,
        json={"to": {"phones": [phone]}, "text": "x", "send_at": soon},
    )
    assert response.status_code == 201, response.text
    [notice] = client.get(
        f"/api/v1/notices?message_id={response.json()['id']}", headers=headers
    ).json()["items"]
    assert notice["status"] == "scheduled", notice  # "due": written without a job
    return int(notice["id"])


def readiness(client: TestClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.json()


@pytest.mark.slow  # the scheduler's own clock (its back-off, its watchdog): seconds
def test_the_loop_survives_a_failing_store_says_so_and_recovers(
    client: TestClient, writer: dict[str, str], engine: Engine, process: Any
) -> None:
    """The issue's case: deleting fired jobs fails inside get_next_run_time, which APScheduler
    does not catch. The thread used to end there, /readyz still said 200, nothing fired again."""
    with faults(engine, "DELETE") as injected:
        injected.on = True
        first = post(client, writer, "0888 410 001")
        wait_for(lambda: status_of(engine, first) == "sent", what="the first notice to go")
        wait_for(lambda: injected.raised >= 2, what="the store to fail")
        code, body = wait_for(
            lambda: (r := readiness(client))[0] == 503 and r, what="/readyz to answer 503"
        )
        # The loop's delete and the watchdog's write probe (a row written and deleted) both
        # hit the injected DELETE failure: either may be the first to say so.
        assert body["checks"]["scheduler"].startswith(
            ("error: the job store has failed for", "error: the database has refused a write for")
        )
        assert "OperationalError" in body["checks"]["scheduler"]
        assert body["scheduler"]["thread_alive"] is True
        assert body["scheduler"]["store_failures"] >= 2
        assert process.scheduler._scheduler.loop_alive()
        assert f"notice:{first}" in job_rows(engine)  # its delete is kept, not lost
    wait_for(lambda: readiness(client)[0] == 200, what="/readyz to recover")
    second = post(client, writer, "0888 410 002")
    wait_for(lambda: status_of(engine, second) == "sent", what="a new notice to go")
    wait_for(lambda: not job_rows(engine), what="the fired jobs to be deleted")
    assert outbox_count(engine, first) == outbox_count(engine, second) == 1
    body = wait_for(
        lambda: (b := readiness(client)[1])["scheduler"]["store_failures"] == 0 and b,
        what="the watchdog's probe to pass again",
    )
    assert body["scheduler"]["last_loop_at"] and body["scheduler"]["failing_for"] == 0


@pytest.mark.slow  # the scheduler's own clock (its back-off, its watchdog): seconds
def test_reads_that_fail_are_retried_too(
    client: TestClient, writer: dict[str, str], engine: Engine
) -> None:
    with faults(engine, "SELECT") as injected:
        injected.on = True
        notice = post(client, writer, "0888 410 003")
        wait_for(lambda: readiness(client)[0] == 503, what="/readyz to answer 503")
        assert status_of(engine, notice) == "scheduled"
    wait_for(lambda: status_of(engine, notice) == "sent", what="the notice to go")
    wait_for(lambda: readiness(client)[0] == 200, what="/readyz to recover")


@pytest.mark.slow  # the scheduler's own clock (its back-off, its watchdog): seconds
def test_a_database_that_takes_no_writes_is_found_while_idle(
    client: TestClient, engine: Engine
) -> None:
    """A full disk: reads still work, so an idle loop would not notice; the probe's write does."""
    with faults(engine, "INSERT") as injected:
        injected.on = True
        code, body = wait_for(
            lambda: (r := readiness(client))[0] == 503 and r, what="/readyz to answer 503"
        )
        assert body["checks"]["scheduler"].startswith("error: the database has refused a write")
        assert body["checks"]["database"] == "ok"
    wait_for(lambda: readiness(client)[0] == 200, what="/readyz to recover")


class Boom(BaseException):
    """Nothing a pass should ever raise: the kind of error that ends a thread."""


def test_the_watchdog_restarts_a_loop_that_died(
    client: TestClient, writer: dict[str, str], engine: Engine, process: Any
) -> None:
    loop = process.scheduler._scheduler
    original = loop._process_jobs
    crashes = [Boom("unforeseen")]

    def crash_once() -> float:
        if crashes:
            raise crashes.pop()
        return float(original())

    loop._process_jobs = crash_once
    loop.wakeup()
    wait_for(lambda: process.scheduler.health.thread_restarts == 1, what="the watchdog")
    notice = post(client, writer, "0888 410 004")
    wait_for(lambda: status_of(engine, notice) == "sent", what="a notice after the restart")
    assert readiness(client)[0] == 200


def test_backoff_doubles_up_to_a_cap() -> None:
    now = [0.0]
    health = LoopHealth(stall_after=10, clock=lambda: now[0])
    waits = []
    for _ in range(6):
        health.failed(OperationalError("x", {}, Exception("down")))
        waits.append(health.backoff())
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert health.problem() is None  # failing, but not for long yet
    now[0] = 10.0
    assert health.problem() == "the job store has failed for 10 s (OperationalError)"
    health.succeeded()
    assert health.problem() is None and health.backoff() == 0.5


# --- the lock ----------------------------------------------------------------------------------


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"reminders-test-{uuid.uuid4().hex[:8]}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{name}*"):
        client.delete(key)


def leadership(
    prefix: str,
    token: str,
    *,
    cannot_lead: Callable[[], str | None] = lambda: None,
    on_elected: Callable[[], None] = lambda: None,
    on_deposed: Callable[[], None] = lambda: None,
) -> Leadership:
    return Leadership(
        redis.Redis.from_url(REDIS_URL, socket_timeout=2),
        prefix=prefix,
        token=token,
        on_elected=on_elected,
        on_deposed=on_deposed,
        cannot_lead=cannot_lead,
        ttl=2.0,
        renew_every=0.1,
        poll_every=0.1,
    )


def test_a_leader_that_cannot_run_gives_the_lock_up_until_it_can(prefix: str) -> None:
    reason: list[str] = []
    polls: list[str | None] = []  # each leadership step asks whether it can lead

    def cannot_lead() -> str | None:
        polls.append(reason[0] if reason else None)
        return polls[-1]

    deposed = threading.Event()
    leader = leadership(prefix, "a", cannot_lead=cannot_lead, on_deposed=deposed.set)
    lock = redis.Redis.from_url(REDIS_URL)
    leader.start()
    try:
        wait_for(lambda: leader.is_leader, what="the election")
        reason.append("the job store has failed for 31 s (OperationalError)")
        wait_for(deposed.is_set, what="the leader to step down")
        assert lock.get(f"{prefix}scheduler:leader") is None  # freed, not left to expire
        stepped_down = len(polls)
        wait_for(lambda: len(polls) >= stepped_down + 3, what="three more polls")
        # It does not stand again while it cannot run.
        assert not leader.is_leader and lock.get(f"{prefix}scheduler:leader") is None
        reason.clear()
        wait_for(lambda: leader.is_leader, what="the recovered process to stand again")
    finally:
        leader.stop()


def test_one_leads_and_a_stopping_leader_hands_over_at_once(prefix: str) -> None:
    key = f"{prefix}scheduler:leader"
    first, second = leadership(prefix, "a"), leadership(prefix, "b")
    lock = redis.Redis.from_url(REDIS_URL)
    first.start()
    try:
        wait_for(lambda: first.is_leader, what="the first to lead")
        second.start()
        wait_for(lambda: lock.get(f"{prefix}alive:b"), what="the second to be alive")
        assert lock.get(key) == b"a" and not second.is_leader  # the key names the leader
        assert lock.pttl(key) > 1000  # renewed (TTL 2 s, every 0.1 s)
        first.stop()
        assert lock.get(key) in (None, b"b")  # freed, not left to expire
        wait_for(lambda: second.is_leader, what="the standby to take over")
        assert lock.get(key) == b"b"
    finally:
        first.stop()
        second.stop()


def test_a_leader_whose_lock_was_taken_stops_and_leaves_the_new_holders_key(prefix: str) -> None:
    """As when a stalled leader's key expired and another process took it: the renewal finds
    another token, so the old leader pauses, and stopping it does not delete the other's key."""
    key = f"{prefix}scheduler:leader"
    deposed = threading.Event()
    leader = leadership(prefix, "a", on_deposed=deposed.set)
    lock = redis.Redis.from_url(REDIS_URL)
    leader.start()
    try:
        wait_for(lambda: leader.is_leader, what="the election")
        lock.set(key, "intruder", px=60_000)
        wait_for(deposed.is_set, what="the old leader to pause")
        assert not leader.is_leader
    finally:
        leader.stop()
    assert lock.get(key) == b"intruder"


def test_a_takeover_that_fails_frees_the_lock(prefix: str) -> None:
    attempts: list[float] = []

    def fail() -> None:
        attempts.append(time.monotonic())
        raise OperationalError("SELECT", {}, Exception("database down"))

    process = leadership(prefix, "b", on_elected=fail)
    lock = redis.Redis.from_url(REDIS_URL)
    process.start()
    try:
        wait_for(lambda: attempts, what="an election")
        wait_for(lambda: not process.is_leader, what="the failed takeover to step down")
        assert lock.get(f"{prefix}scheduler:leader") in (None, b"b")  # freed (or taken anew)
    finally:
        process.stop()


def test_a_standby_whose_takeover_failed_waits_for_its_store(
    engine: Engine, settings: Settings, prefix: str
) -> None:
    rt = Runtime(
        settings=settings, engine=engine, sender=OutboxSender(settings, engine), token="me"
    )
    scheduler = NoticeScheduler(engine, runtime=rt, stall_after=1.0)
    polls: list[str | None] = []

    def cannot_lead() -> str | None:
        polls.append(scheduler.cannot_lead())
        return polls[-1]

    process = leadership(
        prefix,
        "me",
        on_elected=scheduler.activate,
        on_deposed=scheduler.deactivate,
        cannot_lead=cannot_lead,
    )
    lock = redis.Redis.from_url(REDIS_URL)
    try:
        with faults(engine, "SELECT") as injected:
            injected.on = True
            scheduler.start(process)
            wait_for(lambda: scheduler.health.failures, what="the takeover to fail")
            wait_for(lambda: not process.is_leader, what="the failed takeover to step down")
            stepped_down = len(polls)
            wait_for(lambda: len(polls) >= stepped_down + 3, what="three more polls")
            # It does not stand while its store fails.
            assert lock.get(f"{prefix}scheduler:leader") is None
            assert scheduler.state == "standby"
        wait_for(lambda: scheduler.state == "active", what="the recovered process to take over")
        assert scheduler.health.failures == 0
    finally:
        scheduler.shutdown()


# --- losing the lock stops firing --------------------------------------------------------------


def test_a_halted_lane_drops_its_queue_and_stops_the_batch_in_progress() -> None:
    started = threading.Event()
    release = threading.Event()
    seen: list[tuple[list[int], threading.Event, threading.Event]] = []

    def handler(
        ids: list[int], lane: str, stop: threading.Event, shutdown: threading.Event
    ) -> None:
        seen.append((ids, stop, shutdown))
        started.set()
        release.wait(5)

    lane = BatchingExecutor(handler, lane="bulk", threads=1, max_batch=1)
    lane.start(BackgroundScheduler(), "bulk")
    jobs = [SimpleNamespace(id=f"notice:{i}", args=(i,), max_instances=1) for i in range(5)]
    try:
        for job in jobs:
            lane.submit_job(job, [])
        started.wait(5)
        assert lane.halt() == 4  # the four still queued
        assert seen[0][1].is_set()  # the batch in progress is told to stop before its next claim
        assert not seen[0][2].is_set()  # but not to give up recording what it already sent
        late = SimpleNamespace(id="notice:9", args=(9,), max_instances=1)
        lane.submit_job(late, [])  # what the scheduler still submits is dropped too
        release.set()
        wait_for(lambda: not lane._instances, what="every instance to be released")
        assert [ids for ids, _, _ in seen] == [[0]]

        lane.resume()
        lane.submit_job(jobs[1], [])  # the same job again: not refused as a second instance
        wait_for(lambda: len(seen) == 2, what="the resumed lane to fire")
        assert seen[1][0] == [1] and not seen[1][1].is_set()
    finally:
        release.set()
        lane.shutdown(wait=True)
    assert seen[0][2].is_set()  # shutdown is what ends the writes that must not be lost


def set_sending(engine: Engine, notice_id: int, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Notice)
            .where(col(Notice.id) == notice_id)
            .values(status=NoticeStatus.sending, claimed_by=token)
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_dead_process_is_settled_only_once_it_was_missed_for_a_whole_grace(
    engine: Engine,
) -> None:
    """Redis restarted empty: a live process's alive key is back only at its next write, so a
    first miss is only a suspicion. A process never judges its own notices."""
    later = datetime.now(UTC) + timedelta(hours=1)
    dead, live, own, back = make_notices(
        engine, ["0888 420 001", "0888 420 002", "0888 420 003", "0888 420 004"], send_at=later
    )
    for notice_id, token in ((dead, "dead"), (live, "live"), (own, "me"), (back, "back")):
        set_sending(engine, notice_id, token)
    alive = {"live"}
    clock = Clock()
    suspicions = Suspicions()
    suspicions.now = clock  # type: ignore[method-assign]
    watcher = DeadProcesses(engine, lambda: set(alive), own="me", grace=10, suspicions=suspicions)
    assert watcher.look() == 0
    alive.add("back")  # it wrote its key again at its next step
    clock.now += 9.9
    assert watcher.look() == 0
    clock.now += 0.1
    assert watcher.look() == 1
    assert [status_of(engine, i) for i in (dead, live, own, back)] == [
        "unknown",
        "sending",
        "sending",
        "sending",
    ]
    # "back" is forgotten: missed again later, it starts a whole grace again.
    alive.discard("back")
    clock.now += 100
    assert watcher.look() == 0


def test_a_miss_seen_by_one_process_counts_for_another(engine: Engine, redis_key: str) -> None:
    """Processes come and go (killed, restarted): the first miss is kept in Redis, so a process
    started after it judges by it rather than starting the wait again."""
    later = datetime.now(UTC) + timedelta(hours=1)
    [dead] = make_notices(engine, ["0888 420 021"], send_at=later)
    set_sending(engine, dead, "dead")
    client = redis.Redis.from_url(REDIS_URL)
    first = DeadProcesses(
        engine, set, own="a", grace=0.5, suspicions=Suspicions(client, prefix=redis_key)
    )
    assert first.look() == 0  # first missed now, by "a", which then dies
    time.sleep(0.6)
    second = DeadProcesses(
        engine, set, own="b", grace=0.5, suspicions=Suspicions(client, prefix=redis_key)
    )
    assert second.look() == 1
    assert status_of(engine, dead) == "unknown"
    assert client.hgetall(f"{redis_key}suspects") == {}
    client.delete(f"{redis_key}suspects")


def test_every_process_looks_for_dead_ones_leader_or_not(
    engine: Engine, settings: Settings
) -> None:
    """Not only at an election: a standby settles a dead process's notices too."""
    later = datetime.now(UTC) + timedelta(hours=1)
    [dead] = make_notices(engine, ["0888 420 011"], send_at=later)
    set_sending(engine, dead, "dead-process")
    looks: list[float] = []

    def live_tokens() -> set[str]:
        looks.append(time.monotonic())
        return set()

    stub = SimpleNamespace(
        client=None,  # the misses kept in the process
        prefix="",
        alive_ttl=0.3,
        is_leader=False,
        term=0,
        holds=lambda term: False,
        start=lambda: None,
        stop=lambda: None,
        live_tokens=live_tokens,
    )
    rt = Runtime(
        settings=settings, engine=engine, sender=OutboxSender(settings, engine), token="me"
    )
    scheduler = NoticeScheduler(engine, runtime=rt)
    try:
        scheduler.start(stub)  # type: ignore[arg-type]
        wait_for(lambda: status_of(engine, dead) == "unknown", what="the dead one to be settled")
        assert len(looks) >= 2  # not at the first look: missed for a whole alive-key lifetime
        assert looks[-1] - looks[0] >= stub.alive_ttl * 0.9
        assert scheduler.state == "standby"
    finally:
        scheduler.shutdown()


def test_a_slow_takeover_keeps_renewing_the_lock(prefix: str) -> None:
    """Reconciling a million pending notices took 9 s on the lock's own thread, past the
    lock's TTL: a standby took over and two schedulers fired. The takeover now runs beside
    the leadership thread, which goes on renewing."""
    key = f"{prefix}scheduler:leader"
    took_over = threading.Event()
    finish = threading.Event()

    def slow_takeover() -> None:
        took_over.set()
        finish.wait(10)  # well past the 2 s TTL

    first = leadership(prefix, "a", on_elected=slow_takeover)
    second = leadership(prefix, "b")
    lock = redis.Redis.from_url(REDIS_URL)
    first.start()
    try:
        assert took_over.wait(10)
        second.start()
        deadline = time.monotonic() + 3 * 2.0  # three TTLs of the lock
        while time.monotonic() < deadline:
            assert lock.get(key) == b"a" and not second.is_leader
            assert lock.get(f"{prefix}alive:a")  # its alive key is kept too
            time.sleep(0.1)
        finish.set()
        assert first.is_leader and first.holds(first.term)
    finally:
        finish.set()
        second.stop()
        first.stop()


def test_a_takeover_that_fails_or_outlives_its_term_gives_way(prefix: str) -> None:
    key = f"{prefix}scheduler:leader"
    lock = redis.Redis.from_url(REDIS_URL)
    # Failing: the lock is given up at once, for the standby.
    first = leadership(prefix, "a", on_elected=lambda: 1 / 0)  # type: ignore[func-returns-value]
    first.start()
    try:
        wait_for(lambda: first.term >= 1, what="the first election")
        wait_for(lambda: not first.is_leader, what="the failed takeover to step down")
    finally:
        first.stop()
    # Deposed while taking over: its term no longer holds when the takeover ends.
    terms: list[int] = []
    release = threading.Event()
    second = leadership(
        prefix, "b", on_elected=lambda: terms.append(second.term) or release.wait(10)
    )  # type: ignore[func-returns-value]
    second.start()
    try:
        wait_for(lambda: terms, what="the second's takeover to start")
        lock.set(key, "someone else")  # another process holds it now
        wait_for(lambda: not second.is_leader, what="the second to notice it is deposed")
        assert not second.holds(terms[0])
    finally:
        release.set()
        second.stop()
