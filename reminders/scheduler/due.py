"""Marking notices due, and waking the processes that send them.

A notice's job (APScheduler, fired by the one active scheduler) does not send: it only moves
its notice from ``scheduled`` to ``due``, one statement for a batch. Every sending process
claims ``due`` notices from the table (``claims.py``), so the leader is on no message's way
to the gateway and adding processes adds sending capacity.

A notice written already due (an alert, a message with no time) skips the job altogether.

Waking: on PostgreSQL the marking transaction also sends a ``NOTIFY``, delivered at its commit
to every process that ``LISTEN``s; within a process the marker wakes its own lanes directly.
A lane that hears nothing still looks every ``poll`` seconds, so a lost notification (the
listening connection broke) costs at most that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, select, text, true, update
from sqlalchemy.engine import Engine

from reminders.db import in_chunks, utcnow
from reminders.models import Notice, NoticeStatus, Priority
from reminders.scheduler.retrying import reason

log = logging.getLogger(__name__)

CHANNEL = "reminders_due"
_NOTICES = Notice.__table__  # type: ignore[attr-defined]


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def mark_due(conn: Connection, notice_ids: Sequence[int], now: datetime) -> dict[str, int]:
    """Move these notices from ``scheduled`` to ``due`` where their time has come; return how
    many went, by lane. A notice moved later meanwhile, or cancelled, is left as it is."""
    lanes: dict[str, int] = {}
    for chunk in in_chunks(notice_ids):
        rows = conn.execute(
            update(_NOTICES)
            .where(
                _NOTICES.c.id.in_(chunk),
                # Behind IS TRUE the ids (primary key) narrow it, not the status index.
                and_(_NOTICES.c.status == NoticeStatus.scheduled, _NOTICES.c.send_at <= now).is_(
                    true()
                ),
            )
            .values(status=NoticeStatus.due, updated_at=now)
            .returning(_NOTICES.c.priority)
        )
        for (lane,) in rows:
            lanes[lane] = lanes.get(lane, 0) + 1
    return lanes


# Overdue notices marked in one transaction: a burst of 100,000 falling due together (their
# jobs about to mark them) must not become one statement holding 100,000 row locks.
OVERDUE_CHUNK = 5_000


def mark_overdue(conn: Connection, now: datetime, limit: int = OVERDUE_CHUNK) -> dict[str, int]:
    """Up to ``limit`` ``scheduled`` notices whose time has passed, ``due``: those whose job was
    lost (a marking the database refused, a crash between a notice's commit and its job's), or
    a burst's (``NoticeScheduler._sweep_soon``). Fewer than ``limit`` marked: there are no more.

    Newest first: in a burst, what fell due last is what nothing else is marking yet (the jobs
    go oldest first), so another account's reminders due seconds after a big backlog are in the
    queue at the next chunk, not after the whole backlog. The lanes still claim oldest first."""
    overdue = (
        select(_NOTICES.c.id)
        .where(_NOTICES.c.status == NoticeStatus.scheduled, _NOTICES.c.send_at <= now)
        .order_by(_NOTICES.c.send_at.desc())
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        # Rows a job's marking holds are that job's to mark: skipped, not waited for.
        overdue = overdue.with_for_update(skip_locked=True)
    # The ids first, then the update: as ``IN (subquery)`` PostgreSQL may run the locking
    # subquery again for each row, and its LIMIT then bounds nothing.
    ids = list(conn.execute(overdue).scalars())
    if not ids:
        return {}
    rows = conn.execute(
        update(_NOTICES)
        .where(_NOTICES.c.id.in_(ids), _NOTICES.c.status == NoticeStatus.scheduled)
        .values(status=NoticeStatus.due, updated_at=now)
        .returning(_NOTICES.c.priority)
    )
    lanes: dict[str, int] = {}
    for (lane,) in rows:
        lanes[lane] = lanes.get(lane, 0) + 1
    return lanes


def notify(conn: Connection, lanes: Iterable[str]) -> None:
    """On PostgreSQL, tell every listening process (at this transaction's commit) which lanes
    have new due notices."""
    if conn.dialect.name != "postgresql":
        return
    for lane in lanes:
        conn.execute(text("SELECT pg_notify(:channel, :lane)"), {"channel": CHANNEL, "lane": lane})


class DueSignal:
    """Wakes a process's lanes when notices fall due: at once for what this process marked,
    through ``LISTEN`` for what others marked (PostgreSQL), and otherwise every ``poll``."""

    def __init__(self, engine: Engine, *, poll: float = 1.0) -> None:
        self.engine = engine
        self.poll = poll
        self._events = {lane.value: threading.Event() for lane in Priority}
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    def wake(self, lanes: Iterable[str]) -> None:
        for lane in lanes:
            event = self._events.get(lane)
            if event is not None:
                event.set()

    def wait(self, lane: str, stop: threading.Event | None = None) -> None:
        """Wait until ``lane`` is woken, ``poll`` seconds pass, or ``stop`` is set."""
        event = self._events[lane]
        if stop is None:
            event.wait(self.poll)
        else:
            # Short naps: a stopping process should not wait a whole poll.
            waited = 0.0
            while waited < self.poll and not stop.is_set():
                if event.wait(min(0.2, self.poll - waited)):
                    break
                waited += 0.2
        event.clear()

    def mark(
        self,
        notice_ids: Sequence[int],
        *,
        now: datetime | None = None,
        wake: Iterable[str] = (),
    ) -> dict[str, int]:
        """Mark these notices due, tell the other processes, wake this one's lanes; ``wake``
        names lanes to wake even if nothing changed (notices written due already)."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            lanes = mark_due(conn, notice_ids, now)
            woken = set(lanes) | set(wake)
            notify(conn, woken)
        self.wake(woken)
        return lanes

    def mark_overdue(
        self, now: datetime | None = None, *, chunk: int = OVERDUE_CHUNK
    ) -> dict[str, int]:
        """Every overdue notice ``due``, ``chunk`` a transaction; the lanes start on the first
        chunk while the next is marked. Without ``now``, each chunk reads the clock again: what
        falls due while a long sweep runs is taken at its next chunk."""
        total: dict[str, int] = {}
        while not self._stop.is_set():  # closing: the next start's check takes the rest
            with self.engine.begin() as conn:
                lanes = mark_overdue(conn, now or utcnow(), chunk)
                notify(conn, lanes)
            self.wake(lanes)
            for lane, n in lanes.items():
                total[lane] = total.get(lane, 0) + n
            if sum(lanes.values()) < chunk:
                break
        return total

    def announce(self, lanes: Iterable[str]) -> None:
        """Notices were written due by someone else's transaction (already committed)."""
        lanes = set(lanes)
        if not lanes:
            return
        self.wake(lanes)
        if is_postgres(self.engine):
            try:
                with self.engine.begin() as conn:
                    notify(conn, lanes)
            except Exception as exc:
                # The other processes find them at their next poll.
                log.warning("could not announce due notices (%s)", reason(exc))

    def listen(self) -> None:
        """Start listening for other processes' notices (PostgreSQL only)."""
        if not is_postgres(self.engine) or self._listener is not None:
            return
        self._listener = threading.Thread(target=self._listen, name="due-listener", daemon=True)
        self._listener.start()

    def close(self) -> None:
        self._stop.set()
        for event in self._events.values():
            event.set()
        if self._listener is not None:
            self._listener.join(timeout=5)

    def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if failures:
                        log.info("listening for due notices again")
                    failures = 0
                    # Whatever fell due while not listening is found by the lanes' poll.
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self.wake([note.payload])
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("cannot listen for due notices (%s); the lanes poll meanwhile", exc)
                self._stop.wait(min(30.0, 0.5 * 2**failures))
