"""Engines and sessions.

A process has two engines on the same database, each with its own pool: one for the scheduler
and the sender (firing, the job store, outcomes, feed syncs), one for the API. Sharing one pool
let a burst of API readers take every connection while the sender waited for one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.types import TypeDecorator
from sqlmodel import create_engine

T = TypeVar("T")
# Values per IN (...) clause: far below SQLite's 32,766 parameters and PostgreSQL's 65,535.
IN_CHUNK = 500


def in_chunks(items: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``, for statements with an IN (...) clause."""
    values = list(items)
    for start in range(0, len(values), size):
        yield values[start : start + size]


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without a zone on every backend and gives back aware UTC datetimes.

    SQLite has no time zone type, so storing naive UTC everywhere keeps both backends
    comparing the same values; a naive datetime on the way in is a bug, not an input.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        if value.tzinfo is not UTC:  # most values are UTC already; skip the conversion
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# The scheduler's and sender's pool: 10 feed-sync threads, 3 lane threads (2 connections each
# while a sender records what it sent), the scheduler's own loop (the job store), its
# watchdog's write probe, a leadership change and the health checks may all hold one at once.
# Past 5, connections close when freed.
SEND_POOL_SIZE, SEND_POOL_OVERFLOW = 5, 25


def make_engine(
    url: str,
    *,
    pool_size: int = SEND_POOL_SIZE,
    max_overflow: int = SEND_POOL_OVERFLOW,
    pool_timeout: float = 30.0,
) -> Engine:
    """An engine whose pool opens ``pool_size`` connections and up to ``max_overflow`` more on
    demand; a checkout waits ``pool_timeout`` seconds for a free one before it fails."""
    parsed = make_url(url)
    pool: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": pool_timeout,
    }
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            # An in-memory database lives in its connection, and SQLAlchemy keeps one per
            # thread: no pool to size (tools and tests only; the settings refuse it).
            pool.clear()
        # Both engines' threads write; WAL lets readers go on while one writes, and the busy
        # timeout makes writers queue for SQLite's one write lock instead of failing.
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **pool
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # UTF-8 whatever the database's encoding: on a SQL_ASCII database psycopg would otherwise
    # hand back bytes, and SQLAlchemy's first look at the server failed with a traceback before
    # startup could refuse the database in one line (startup.connect).
    return create_engine(url, pool_pre_ping=True, connect_args={"client_encoding": "utf8"}, **pool)
