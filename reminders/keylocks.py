"""Locks on natural keys, held until the transaction ends: get-or-create without duplicates.

Creating "the customer with this phone, unless there is one" reads, then writes: two requests
doing it at once both read nothing and both write. A unique index settles it for external ids
(the loser gets an IntegrityError), but not for phones, which two contacts may share. So a
writer that looks rows up by their natural keys before creating them takes those keys' locks
first and reads after: a second writer of the same keys waits for the first to commit, then
finds its rows. Planning locks the anchors it plans (``anchor_key``) the same way.

PostgreSQL: transaction-scoped advisory locks on the slots the keys hash to, taken in order in
one statement. A transaction may lock twice, its records' keys (contacts, phones, external
ids) and then its anchors', as a bill's write and its planning do in one transaction: anchors
hash to slots above every record's, so each transaction still takes its slots in one order and
two writers never wait on each other in a circle (``lock_keys`` refuses a call that would break
the order). There are ``SLOTS`` of each: a batch of 10,000 bills holds at most 256 locks (the
server's lock table has room for 64 per connection by default), and two unrelated writers
rarely share one, and then only wait for a few milliseconds. SQLite has one writer at a time:
its write lock is taken at once (``BEGIN IMMEDIATE``) instead of at the first write, after
reads that may be stale by then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import event, text
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

SLOTS = 128
_ANCHOR = "anchor:"
_HELD = "reminders.keylocks"  # in session.info: the slots this transaction holds
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


def anchor_key(anchor_id: int) -> str:
    """The key planning locks an anchor by."""
    return f"{_ANCHOR}{anchor_id}"


def slot(key: str) -> int:
    """The lock a key takes: anchors' slots come after every record's."""
    hashed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest()) % SLOTS
    return hashed + SLOTS if key.startswith(_ANCHOR) else hashed


def lock_keys(session: Session, keys: Iterable[str]) -> None:
    """Hold the locks of ``keys`` until the session's transaction ends; call it before reading.

    Call it at most once for records' keys and once for anchors' (all the anchors the
    transaction plans), in that order; keys already held may be named again. Taking a lower
    slot later, while holding higher ones, could wait in a circle with another writer: refused.
    """
    slots = sorted({slot(key) for key in keys})
    held = _held(session)
    slots = [s for s in slots if s not in held]
    if not slots:
        return
    if held and slots[0] < max(held):
        raise RuntimeError(
            "keylocks: lock each transaction's records, then its anchors, each in one call"
        )
    held.update(slots)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK_SLOTS, {"namespace": _NAMESPACE, "slots": slots})
    elif connection.dialect.name == "sqlite":
        # pysqlite begins a transaction at the first write; one begun already holds the lock.
        if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _held(session: Session) -> set[int]:
    held: set[int] | None = session.info.get(_HELD)
    if held is None:
        held = session.info[_HELD] = set()
        if not event.contains(session, "after_transaction_end", _released):
            event.listen(session, "after_transaction_end", _released)
    return held


def _released(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction, not a savepoint, ended: locks are free
        session.info.pop(_HELD, None)
