"""The suite's own databases (tests/databases.py): a database handed to the next test is as the
migrations left it, and one whose schema a test changed is never handed on."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from reminders.db import make_engine
from reminders.migrate import current_revision, head_revision
from tests.databases import PG, PgDatabases

pytestmark = pytest.mark.slow  # PostgreSQL databases made, migrated and dropped


@pytest.fixture
def databases() -> Iterator[PgDatabases]:
    """A pool of this test's own, so the session's is not disturbed."""
    pool = PgDatabases(PG)
    yield pool
    pool.close()


def _policies_and_next_group_id(name: str) -> tuple[list[tuple[object, ...]], int]:
    engine = make_engine(PG.url(name))
    try:
        with engine.begin() as conn:
            rows = conn.execute(text("SELECT * FROM policies ORDER BY id"))
            policies = [tuple(row) for row in rows]
            group = conn.execute(
                text(
                    "INSERT INTO groups (account_id, name, created_at, updated_at)"
                    " VALUES (1, 'a', now(), now()) RETURNING id"
                )
            ).scalar_one()
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    return policies, int(group)


def test_a_database_given_back_is_as_the_migrations_left_it(databases: PgDatabases) -> None:
    name = databases.lend()
    seeded, first_id = _policies_and_next_group_id(name)
    assert seeded, "the migrations seed the default policies"
    engine = make_engine(PG.url(name))
    with engine.begin() as conn:  # a test's leftovers, and a connection it forgot to close
        conn.execute(text("DELETE FROM policies WHERE name = 'bill'"))
    leftover = engine.connect()
    databases.give_back(name)
    leftover.invalidate()
    engine.dispose()

    assert databases.lend() == name
    assert _policies_and_next_group_id(name) == (seeded, first_id)


def test_a_database_whose_schema_changed_is_dropped(databases: PgDatabases) -> None:
    name = databases.lend()
    with psycopg.connect(PG.dsn(name), autocommit=True) as conn:
        conn.execute("ALTER TABLE contacts ADD COLUMN extra integer")
    databases.give_back(name)
    assert name not in databases.free
    with psycopg.connect(PG.admin_dsn) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is None
    assert databases.lend() != name
