"""Locks on natural keys, held until the transaction ends: get-or-create without duplicates.

Creating "the customer with this phone, unless there is one" reads, then writes: two requests
doing it at once both read nothing and both write. A unique index settles it for external ids
(the loser gets an IntegrityError), but not for phones, which two contacts may share. So a
writer that looks rows up by their natural keys before creating them takes those keys' locks
first and reads after: a second writer of the same keys waits for the first to commit, then
finds its rows.

PostgreSQL: transaction-scoped advisory locks on the slots the keys hash to, taken in order in
one statement, so that two writers never wait on each other in a circle. There are ``SLOTS`` of
them: a batch of 10,000 bills holds at most 256 locks (the server's lock table has room for 64
per connection by default), and two unrelated writers rarely share one, and then only wait for
a few milliseconds. SQLite has one writer at a time: its
write lock is taken at once (``BEGIN IMMEDIATE``) instead of at the first write, after reads
that may be stale by then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlmodel import Session

SLOTS = 256
# The first half of each advisory lock's key: ours, apart from any other application's locks.
_NAMESPACE = 0x726D64  # "rmd"
_LOCK_SLOTS = text(
    "SELECT pg_advisory_xact_lock(CAST(:namespace AS integer), slot) "
    "FROM (SELECT unnest(CAST(:slots AS integer[])) AS slot ORDER BY slot) AS ordered"
)


def contact_key(external_id: str) -> str:
    return f"contact:ext:{external_id}"


def phone_key(phone: str) -> str:
    """The key of a phone (E.164) that contacts are found by: a bill's customer, an SMS's
    sender."""
    return f"phone:{phone}"


def slot(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest()) % SLOTS


def lock_keys(session: Session, keys: Iterable[str]) -> None:
    """Hold the locks of ``keys`` until the session's transaction ends; call it before reading.

    Call it once per transaction, at its start: taking more later, while holding some, could
    wait in a circle with another writer.
    """
    slots = sorted({slot(key) for key in keys})
    if not slots:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK_SLOTS, {"namespace": _NAMESPACE, "slots": slots})
    elif connection.dialect.name == "sqlite":
        # pysqlite begins a transaction at the first write; one begun already holds the lock.
        if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")
