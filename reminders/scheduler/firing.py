"""Firing a notice: read and render it, claim it, hand it to the sender once, record the outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, and_, true, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders.accounts.quota import Reservation, guard_for
from reminders.accounts.terms import terms_of
from reminders.db import in_chunks, utcnow
from reminders.metrics import SendMetrics
from reminders.models import Anchor, Contact, Notice, NoticeStatus, Priority
from reminders.pending_jobs import JobItem, JobScheduler
from reminders.scheduler.account_rules import within_quotas
from reminders.scheduler.context import TemplateContexts
from reminders.scheduler.outcomes import Outcome, from_result, record, release
from reminders.scheduler.preparing import Ready, prepare
from reminders.scheduler.retrying import Backoff, is_transient, reason, until_written
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError
from reminders.sender.rate import SendRate
from reminders.settings import Settings

log = logging.getLogger(__name__)


# Picks the ids of a batch in the claiming transaction (``claims.LanePicker``, or given ids):
# (session, now) -> ids. On PostgreSQL it may lock the rows it picks until the claim commits.
Pick = Callable[[Session, datetime], list[int]]


def given(notice_ids: list[int]) -> Pick:
    """A pick of exactly these notices (those of them still due are claimed)."""
    return lambda _session, _now: notice_ids


_SERIAL: dict[int, threading.Lock] = {}
_SERIAL_LOCK = threading.Lock()


@contextmanager
def serial_claims(engine: Engine) -> Iterator[None]:
    """On SQLite, one claim at a time per process: a pick read under a snapshot that another
    thread's claim outdates would fail to upgrade to a write. PostgreSQL's claims skip each
    other's rows instead."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _SERIAL_LOCK:
        lock = _SERIAL.setdefault(id(engine), threading.Lock())
    with lock:
        yield


def claim_many(session: Session, notice_ids: Sequence[int], now: datetime, token: str) -> list[int]:
    """Move notices that are due by ``now`` (``due``, or ``scheduled`` with their time come)
    to ``sending``; return the ids this call got.

    The conditional update is what makes a notice go out at most once: a second firing (a retry,
    a restart, a second scheduler) finds it no longer ``scheduled`` and does nothing. It is also
    what keeps a notice from going out early: a job handed to a lane can wait there (for the send
    rate, behind a busy batch) while its event moves later, and the move only rewrites
    ``send_at`` and the job; the stale firing must then find the notice not due and leave it.
    """
    claimed: list[int] = []
    table = Notice.__table__  # type: ignore[attr-defined]
    for chunk in in_chunks(notice_ids):
        # On the table, not the model: an ORM-enabled UPDATE works out what to synchronize
        # in the session (nothing is loaded in it here), a tenth of a lane's CPU per batch.
        result = session.execute(
            update(table)
            .where(table.c.id.in_(chunk), still_due(now))
            .values(status=NoticeStatus.sending, updated_at=now, claimed_by=token or None)
            .returning(table.c.id)
        )
        claimed.extend(int(row[0]) for row in result)
    # Committed here, not by a caller: the firing path's transactions are its own by design, a
    # claim committed before the hand-over, outcomes after it (README, "How it is built").
    try:
        session.commit()
    except Exception as exc:
        if claimed:
            raise ClaimInDoubt(claimed) from exc
        raise
    return claimed


def still_due(now: datetime) -> ColumnElement[bool]:
    """``status IN ('scheduled', 'due') AND send_at <= now``, for statements that pick notices
    by id.

    Written so that no index can serve it: the ids are what narrows such a statement, and the
    database should look them up by primary key. Left bare, SQLite (which keeps no statistics)
    and PostgreSQL (on a table not analyzed since a burst was planned) take the (status,
    send_at) index instead and walk every due notice for each batch: 100,000 notices due at
    once cost 50 ms a batch of 200, where the primary key costs 2 ms. Behind ``IS TRUE`` the
    test is the same, row by row, on the rows the ids found.
    """
    table = Notice.__table__  # type: ignore[attr-defined]
    return and_(
        table.c.status.in_([NoticeStatus.scheduled, NoticeStatus.due]), table.c.send_at <= now
    ).is_(true())


class ClaimInDoubt(Exception):
    """The claim's commit failed: the database may have taken it or not.

    Its notices were not handed to the sender, so they are put back to ``scheduled``.
    """

    def __init__(self, notice_ids: list[int]) -> None:
        super().__init__(f"the claim of {len(notice_ids)} notice(s) may or may not have been kept")
        self.notice_ids = notice_ids


# While the database is away, a batch not claimed yet is tried again for half a minute, then
# left ``scheduled`` for the periodic check (``NoticeScheduler.reconcile``); a claim to undo or
# an outcome to record is tried until the database answers.
DB_BACKOFF = Backoff()


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
    shutdown: threading.Event | None = None,
    metrics: SendMetrics | None = None,
    backoff: Backoff = DB_BACKOFF,
) -> dict[int, str]:
    """Fire the notices that are still due to go; return the final status of each one recorded.

    Work goes by ``sender.batch_size`` notices: load, render, claim, send, record, each one
    statement per batch. The claim comes last before the hand-over, so a database error never
    strands a claimed notice: one before the claim leaves the batch ``scheduled`` and it is
    tried again; outcomes wait in memory until they are written. Only a process that dies
    between a claim and its record leaves notices ``sending`` (unknown at the next start), so
    the batch size bounds how many outcomes a crash can lose.

    With a send ``rate``, each batch waits for its budget in ``lane`` before it is claimed, so a
    notice is never held "sending" while it waits; if ``stop`` is set meanwhile, the rest stay
    scheduled for whoever fires next.

    ``stop`` (this process lost the scheduler lock, or is stopping) means "claim no more".
    The two writes that must not be lost, undoing a claim in doubt and recording what the
    gateway answered, watch ``shutdown`` alone (None: they wait as long as it takes): a process
    deposed while the database is away still puts its own notices right once it answers.
    """
    rate = rate or SendRate()
    outcomes: dict[int, str] = {}
    unique = list(dict.fromkeys(notice_ids))
    size = rate.slice_size(sender.batch_size)
    for start in range(0, len(unique), size):
        chunk = unique[start : start + size]
        if (stop is not None and stop.is_set()) or not rate.acquire(lane, len(chunk), stop):
            break
        fired = _fire_batch(
            engine,
            sender,
            given(chunk),
            len(chunk),
            settings=settings,
            token=token,
            scheduler=scheduler,
            metrics=metrics,
            backoff=backoff,
            stop=stop,
            shutdown=shutdown,
        )
        if fired is None:
            # Left as they were (due, or scheduled and marked due by the periodic check): a
            # lane picks them once the database answers.
            log.warning(
                "%d notice(s) were not sent; the lanes take them once the database answers",
                len(unique) - start,
            )
            break
        outcomes.update(fired)
    return outcomes


# A lane's picker: (session, now, how many) -> the ids of its next batch (``claims.py``).
LanePick = Callable[[Session, datetime, int], list[int]]


def fire_next(
    engine: Engine,
    sender: Sender,
    picker: LanePick,
    *,
    settings: Settings,
    lane: str,
    token: str = "",
    scheduler: JobScheduler | None = None,
    rate: SendRate | None = None,
    stop: threading.Event | None = None,
    shutdown: threading.Event | None = None,
    metrics: SendMetrics | None = None,
    backoff: Backoff = DB_BACKOFF,
) -> int:
    """Claim the lane's next batch of due notices, send it and record it; return how many were
    picked (0: none was due, or the database stayed away).

    The batch's budget in the send rate is taken before the claim, so a claimed notice never
    waits for the rate while ``sending``; what the batch did not use is given back.
    """
    rate = rate or SendRate()
    size = rate.slice_size(sender.batch_size)
    if (stop is not None and stop.is_set()) or not rate.acquire(lane, size, stop):
        return 0
    picked: list[int] = []

    def pick(session: Session, now: datetime) -> list[int]:
        ids = picker(session, now, size)
        picked[:] = ids  # the last try's, if the database made it try again
        return ids

    try:
        _fire_batch(
            engine,
            sender,
            pick,
            size,
            settings=settings,
            token=token,
            scheduler=scheduler,
            metrics=metrics,
            backoff=backoff,
            stop=stop,
            shutdown=shutdown,
        )
    finally:
        rate.give_back(lane, size - len(picked))
    return len(picked)


# The notices loaded, what to do with each one claimed, those held back (their account is
# suspended) with their lanes, and the segments the claimed ones took from their quotas.
Taken = tuple[dict[int, Any], dict[int, Ready], list[tuple[int, str]], Reservation]


def _fire_batch(
    engine: Engine,
    sender: Sender,
    pick: Pick,
    count: int,
    *,
    settings: Settings,
    token: str,
    scheduler: JobScheduler | None,
    metrics: SendMetrics | None,
    backoff: Backoff,
    stop: threading.Event | None,
    shutdown: threading.Event | None,
) -> dict[int, str] | None:
    """Fire one batch; None if the database stayed away before anything was claimed."""
    taken = _take(engine, pick, count, settings, sender.name, token, backoff, stop, shutdown)
    if taken is None:
        return None
    if stop is not None and stop.is_set():
        # Halted while the claim was being written: this process may no longer lead, so what
        # it claimed goes back unsent for the next leader (a halt returns before this claim
        # shows, and nothing claimed after it may go out).
        _give_back(engine, taken, token, backoff, shutdown)
        return {}
    try:
        return _send_and_record(
            engine, sender, settings, scheduler, metrics, backoff, shutdown, taken
        )
    finally:
        taken[3].release()  # settled with the record already, unless recording gave up


def _send_and_record(
    engine: Engine,
    sender: Sender,
    settings: Settings,
    scheduler: JobScheduler | None,
    metrics: SendMetrics | None,
    backoff: Backoff,
    shutdown: threading.Event | None,
    taken: Taken,
) -> dict[int, str]:
    """Hand the claimed SMS over once and record every outcome of the batch."""
    notices, claimed, held, reservation = taken
    if held:
        log.info("%d notice(s) of suspended accounts wait, due", len(held))
    outcomes = {i: ready for i, ready in claimed.items() if isinstance(ready, Outcome)}
    outgoing = [ready for ready in claimed.values() if isinstance(ready, OutgoingSms)]
    sent_at = utcnow()
    results: list[Accepted | SendError] = []
    if outgoing:
        results = _send(sender, outgoing)  # once: whatever fails after this, never again
        sent_at = utcnow()
        for sms, result in zip(outgoing, results, strict=True):
            outcomes[sms.notice_id] = from_result(sms, result, sender.name, sent_at)
    owners = {notice_id: notices[notice_id].account_id for notice_id in outcomes}
    done, final = until_written(
        lambda: reservation.settle(
            lambda: record(
                engine, outcomes, owners, attempts=settings.send_attempts, sent_at=sent_at
            )
        ),
        backoff,
        shutdown,
        what=f"recording what became of {len(outcomes)} notice(s)",
    )
    if not done or final is None:
        # They stay "sending", and the next start records them as unknown: some were handed
        # over, and sending them again could send them twice.
        return {}
    _schedule_retries(scheduler, final, notices)
    if metrics is not None and outgoing:
        try:
            _count(metrics, sender.name, outgoing, results, notices, sent_at)
        except Exception:
            log.exception("counting the send metrics failed")
    return {notice_id: outcome.status.value for notice_id, outcome in final.items()}


def _give_back(
    engine: Engine,
    taken: Taken,
    token: str,
    backoff: Backoff,
    shutdown: threading.Event | None,
) -> None:
    """Undo the claim of a batch not handed over: back to ``scheduled``, quota returned."""
    claimed = list(taken[1])
    taken[3].release()
    if not claimed:
        return
    done, _ = until_written(
        partial(release, engine, claimed, token),
        backoff,
        shutdown,
        what=f"putting back {len(claimed)} notice(s) claimed as this scheduler stopped",
    )
    if done:
        log.info("stopped before sending: %d claimed notice(s) put back", len(claimed))


def _take(
    engine: Engine,
    pick: Pick,
    count: int,
    settings: Settings,
    provider: str,
    token: str,
    backoff: Backoff,
    stop: threading.Event | None,
    shutdown: threading.Event | None,
) -> Taken | None:
    """Load, prepare and claim the batch, trying again while the database is away.

    Returns what ``Taken`` says; None once
    ``backoff.give_up_after`` has passed (or ``stop`` was set), with nothing left claimed
    (unless ``shutdown`` cut short the undoing of a claim in doubt).
    """
    deadline = time.monotonic() + backoff.give_up_after
    tries = 0
    while True:
        try:
            with serial_claims(engine):
                return _load_and_claim(engine, pick, settings, provider, token)
        except ClaimInDoubt as doubt:
            done, _ = until_written(
                partial(release, engine, doubt.notice_ids, token),
                backoff,
                shutdown,
                what=f"putting back {len(doubt.notice_ids)} notice(s) whose claim may have failed",
            )
            if not done:
                return None  # they may stay "sending": the next start records them unknown
            # The database took the undo, so it is back: the time spent undoing is not time
            # without it, and the claim gets its full allowance again.
            deadline = time.monotonic() + backoff.give_up_after
            failure: BaseException = doubt.__cause__ or doubt
        except Exception as exc:
            failure = exc
        if not is_transient(failure):
            raise failure
        tries += 1
        if tries == 1:
            log.warning(
                "firing %d notice(s) failed before they were claimed (%s); trying again",
                count,
                reason(failure),
            )
        if time.monotonic() >= deadline or backoff.pause(tries, stop):
            return None


def _load_and_claim(
    engine: Engine, pick: Pick, settings: Settings, provider: str, token: str
) -> Taken:
    """Everything a hand-over needs is read and rendered before the claim, so that a claimed
    notice waits on nothing but the sender. Its accounts' terms are read once (one small
    query): a suspended account's notices are not claimed but stay as they are (the lanes do
    not pick them until it is active again); an SMS past its account's quota ends ``failed``
    unsent."""
    now = utcnow()
    nothing = Reservation(guard_for(engine), {})
    with Session(engine, expire_on_commit=False) as session:
        notice_ids = pick(session, now)
        if not notice_ids:
            return {}, {}, [], nothing
        notices = _load(session, Notice, notice_ids, still_due(now))
        if not notices:
            return {}, {}, [], nothing
        terms = terms_of(session, {n.account_id for n in notices.values()})
        held = [
            (i, n.priority)
            for i, n in notices.items()
            if n.account_id in terms and terms[n.account_id].suspended
        ]
        for notice_id, _ in held:
            del notices[notice_id]
        if not notices:
            return {}, {}, held, nothing
        contacts = _load(session, Contact, {n.contact_id for n in notices.values() if n.contact_id})
        anchors = _load(session, Anchor, {n.anchor_id for n in notices.values() if n.anchor_id})
        contexts = TemplateContexts(now)
        ready = {
            notice_id: prepare(
                notice,
                contacts.get(notice.contact_id or 0),
                anchors.get(notice.anchor_id or 0),
                now,
                settings,
                provider,
                terms.get(notice.account_id),
                contexts,
            )
            for notice_id, notice in notices.items()
        }
        reservation = within_quotas(engine, session, ready, notices, terms, now, settings)
        try:
            claimed = claim_many(session, list(ready), now, token)
        except BaseException:
            reservation.release()
            raise
        reservation.keep(claimed)
    return notices, {notice_id: ready[notice_id] for notice_id in claimed}, held, reservation


def _send(sender: Sender, outgoing: list[OutgoingSms]) -> list[Accepted | SendError]:
    """One result per message, whatever the sender does."""
    try:
        results = list(sender.send_many(outgoing))
        if len(results) == len(outgoing):
            return results
        problem = f"it gave {len(results)} results for {len(outgoing)} messages"
        log.error("sender %s: %s", sender.name, problem)
    except Exception as exc:
        log.exception("sender %s raised while sending %d notice(s)", sender.name, len(outgoing))
        problem = f"{type(exc).__name__}: {exc}"
    # Some may have gone out: unknown, rather than a second SMS.
    error = SendError(
        f"the sender failed ({problem}); it may have sent the message",
        permanent=True,
        code="sender",
        ambiguous=True,
    )
    return [error] * len(outgoing)


def _schedule_retries(
    scheduler: JobScheduler | None, outcomes: dict[int, Outcome], notices: dict[int, Any]
) -> None:
    retries: list[JobItem] = [
        (i, o.retry_at, notices[i].priority) for i, o in outcomes.items() if o.retry_at is not None
    ]
    if not retries or scheduler is None:
        return
    try:
        scheduler.schedule(retries)
    except Exception as exc:
        # The notices are recorded "scheduled" for their retry: the periodic check gives them
        # their jobs once they are due.
        log.warning("could not write the jobs of %d retries (%s)", len(retries), reason(exc))


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


def _load(session: Session, model: Any, ids: Iterable[int | None], *where: Any) -> dict[int, Any]:
    """Rows of ``model`` by id (and ``where``), as plain rows (read-only, attribute access like
    the model)."""
    wanted = [i for i in ids if i is not None]
    table = model.__table__
    found: dict[int, Any] = {}
    for chunk in in_chunks(wanted):
        query = select(table).where(table.c.id.in_(chunk), *where)
        for row in session.execute(query):
            found[row.id] = row
    return found
