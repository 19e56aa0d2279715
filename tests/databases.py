"""Databases for the tests: empty ones, and ones already at the schema's head.

Migrating a fresh database for every test was most of the suite's time: on PostgreSQL a test
paid for ``CREATE DATABASE``, every Alembic migration and a ``DROP DATABASE`` (which waits for a
checkpoint), 1.5 to 3 s on the shared 2-core machine; on SQLite the migrations alone took 0.1 to
0.6 s. So each session migrates once: SQLite into a file that every test copies, PostgreSQL into
a template database. A PostgreSQL test gets a copy of the template (``CREATE DATABASE ...
TEMPLATE``) or a database an earlier test of this session used, emptied back to exactly what
the migrations left in it (their seed rows, every sequence where it stood). A database whose
schema a test changed is dropped rather than handed on.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from reminders.db import make_engine
from reminders.migrate import upgrade

# Everything a test could change about the schema itself: relations, columns, indexes,
# constraints, functions and triggers in the public schema, and the Alembic revision.
SCHEMA_FINGERPRINT = """
SELECT md5(string_agg(item, '|' ORDER BY item)) FROM (
    SELECT c.relname || ':' || c.relkind::text AS item
      FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':'
           || coalesce(column_default, '')
      FROM information_schema.columns WHERE table_schema = 'public'
    UNION ALL
    SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL
    SELECT conrelid::regclass || ':' || conname || ':' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'trigger ' || tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT 'revision ' || version_num FROM alembic_version
) AS schema
"""


def new_name() -> str:
    return f"reminders_test_{uuid.uuid4().hex[:12]}"


@dataclass
class PgServer:
    """The machine's PostgreSQL, reached as its superuser through ``admin_dsn``."""

    admin_dsn: str

    def dsn(self, name: str) -> str:
        return f"{self.admin_dsn.rsplit('/', 1)[0]}/{name}"

    def url(self, name: str) -> str:
        """SQLAlchemy's URL for database ``name``."""
        return self.dsn(name).replace("postgresql://", "postgresql+psycopg://", 1)

    def admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(statement)

    def create(self, name: str, template: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        self.admin(statement)

    def drop(self, name: str) -> None:
        self.admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_empty(self) -> tuple[str, Callable[[], None]]:
        """A new empty database: its SQLAlchemy URL, and how to drop it."""
        name = new_name()
        self.create(name)
        return self.url(name), lambda: self.drop(name)


@dataclass
class _Table:
    name: str
    rows: bytes  # what the migrations left in it, as COPY ... TO STDOUT wrote it


class PgDatabases:
    """PostgreSQL databases at the schema's head, each lent to one test at a time."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.template = new_name()
        self.free: list[str] = []
        self.made: list[str] = []
        server.create(self.template)
        self.made.append(self.template)
        engine = make_engine(server.url(self.template))
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        with psycopg.connect(server.dsn(self.template)) as conn:
            self.fingerprint = _fingerprint(conn)
            self.tables = [_Table(name, _copy_out(conn, name)) for name in _tables(conn)]
            self.sequences = conn.execute(
                "SELECT schemaname || '.' || sequencename, last_value, last_value IS NOT NULL"
                " FROM pg_sequences WHERE schemaname = 'public'"
            ).fetchall()

    def lend(self) -> str:
        """The name of a database at head, as the migrations left it, for one test."""
        if self.free:
            return self.free.pop()
        name = new_name()
        self.server.create(name, template=self.template)
        self.made.append(name)
        return name

    def give_back(self, name: str) -> None:
        """Empty the database for the next test, or drop it if its schema was changed."""
        with psycopg.connect(self.server.admin_dsn, autocommit=True) as conn:
            # Whatever the test left connected (a pool, a server it started) is ended first; the
            # timeout makes each call wait until that backend has gone, with its locks.
            conn.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        with psycopg.connect(self.server.dsn(name)) as conn:
            changed = _fingerprint(conn) != self.fingerprint
            if not changed:
                # No foreign key checks while every table is emptied and refilled in one go.
                conn.execute("SET session_replication_role = replica")
                for table in self.tables:
                    conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
                    if table.rows:
                        _copy_in(conn, table)
                for sequence, value, called in self.sequences:
                    conn.execute("SELECT setval(%s, %s, %s)", (sequence, value or 1, called))
        if changed:
            self.server.drop(name)
            self.made.remove(name)
        else:
            self.free.append(name)

    def close(self) -> None:
        for name in self.made:
            self.server.drop(name)
        self.made.clear()
        self.free.clear()


# The machine's PostgreSQL, which the tests reach as its superuser.
PG = PgServer(os.environ.get("REMINDERS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))


def _fingerprint(conn: psycopg.Connection) -> str:
    row = conn.execute(SCHEMA_FINGERPRINT).fetchone()
    assert row is not None
    return str(row[0])


def _tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename <> 'alembic_version' ORDER BY tablename"
    ).fetchall()
    return [str(name) for (name,) in rows]


def _copy_out(conn: psycopg.Connection, table: str) -> bytes:
    data = bytearray()
    with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table))) as copy:
        for chunk in copy:
            data += chunk
    return bytes(data)


def _copy_in(conn: psycopg.Connection, table: _Table) -> None:
    statement = sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table.name))
    with conn.cursor().copy(statement) as copy:
        copy.write(table.rows)


class SqliteTemplate:
    """A SQLite file at the schema's head; a test's database is a copy of it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "migrated.db"
        engine = make_engine(f"sqlite:///{self.path}")
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        # The last connection to close folds the write-ahead log into the file itself.
        assert not self.path.with_name(self.path.name + "-wal").exists()

    def copy_to(self, path: Path) -> None:
        shutil.copyfile(self.path, path)
