"""A session acting for one account sees and writes only that account's rows.

Scoping is done once, here, rather than by a ``where account_id = …`` in every query: a query
someone forgets to filter would show one clinic's patients to another. A session whose
``info`` names an account (``scope``) gets, on every ORM select, update and delete it runs, the
criterion ``account_id = <it>`` on each table in ``models.OWNED`` the statement touches (joins
and subqueries included), and every new row of those tables it flushes is stamped with the
account. A session that names none (the scheduler, the gateways' callbacks, the provider's own
routes) sees every account and must say whose rows it writes.

What this does not cover, by design: Core statements on ``Table`` objects (``insert(t)``,
``select(t.c.id)``) and raw SQL, which the bulk paths use. Those a request reaches set
``account_id`` themselves (``current``: the bulk inserts of contacts, anchors and notices) or
touch only the children of a row read through the scoped session (an anchor's recipients, a
feed's series, by its id). ``tests/test_isolation.py`` checks the result over every operation
of the API's document.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, with_loader_criteria
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from reminders.models import OWNED, Owned

_KEY = "reminders.account_id"
# ``.execution_options(every_account=True)``: this one statement sees every account.
EVERY_ACCOUNT = "every_account"


def scope(session: Session, account_id: int) -> Session:
    """Make ``session`` act for ``account_id`` from now on; returns it."""
    session.info[_KEY] = account_id
    return session


@contextmanager
def acting_for(session: Session, account_id: int) -> Iterator[Session]:
    """Scope ``session`` to ``account_id`` within the block, as it was after it. For work that
    learns its account from what it reads (a feed's source, an SMS's number)."""
    before = session.info.get(_KEY)
    if before is not None and before != account_id:
        raise RuntimeError(f"a session for account {before} may not act for {account_id}")
    session.info[_KEY] = account_id
    try:
        yield session
    finally:
        if before is None:
            session.info.pop(_KEY, None)


def scoped_session(engine: Engine, account_id: int | None, **options: Any) -> Session:
    """A new session acting for ``account_id`` (every account when None)."""
    session = Session(engine, **options)
    if account_id is not None:
        scope(session, account_id)
    return session


def account_of(session: OrmSession) -> int | None:
    """The account ``session`` acts for, or None when it sees every account."""
    value: int | None = session.info.get(_KEY)
    return value


def current(session: OrmSession) -> int:
    """The account a scoped session acts for; an unscoped one has none to give."""
    account_id = account_of(session)
    if account_id is None:
        raise RuntimeError("this session acts for no account: say whose rows these are")
    return account_id


@event.listens_for(Session, "do_orm_execute")
def _filter(state: ORMExecuteState) -> None:
    account_id = account_of(state.session)
    if account_id is None or not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # loading more of rows the session already filtered
    if state.execution_options.get(EVERY_ACCOUNT):
        return  # a look-up that must see past the account (a gateway's id is stored once)
    state.statement = state.statement.options(*_criteria(account_id))


@lru_cache(maxsize=1024)
def _criteria(account_id: int) -> tuple[Any, ...]:
    """The option that filters every ``Owned`` table by ``account_id``, made once per account.

    One option on the common base, not one per table: each option is coerced and hashed into
    the cache key at every statement, and eleven of them took a third of a bill's single write.
    The lambda's closure becomes a bound parameter, so every account shares one compiled form.
    """
    return (
        with_loader_criteria(
            Owned,
            lambda cls: cls.account_id == account_id,
            include_aliases=True,
        ),
    )


@event.listens_for(Session, "before_flush")
def _stamp(session: Session, _context: Any, _instances: Any) -> None:
    account_id = account_of(session)
    for row in session.new:
        if isinstance(row, OWNED) and getattr(row, "account_id", None) is None:
            if account_id is None:
                continue  # a provider key or user; or the database refuses the row
            row.account_id = account_id  # type: ignore[attr-defined]
        elif (
            account_id is not None and isinstance(row, OWNED) and row.account_id != account_id  # type: ignore[attr-defined]
        ):
            raise RuntimeError(f"a session for account {account_id} may not write another's row")
