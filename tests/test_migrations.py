"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from reminders.migrate import current_revision, ensure_schema, head_revision
from reminders.models import JOBS_TABLE


def test_migrated_schema_equals_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}


def test_job_table_matches_apschedulers_own(engine: Engine) -> None:
    """The mirrored job table must be the one APScheduler would create, or its store breaks."""
    theirs = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE, metadata=MetaData()).jobs_t
    ours = SQLModel.metadata.tables[JOBS_TABLE]
    assert [(c.name, type(c.type), c.primary_key, c.nullable) for c in theirs.columns] == [
        (c.name, type(c.type), c.primary_key, c.nullable) for c in ours.columns
    ]
    assert {tuple(i.columns.keys()) for i in theirs.indexes} == {
        tuple(i.columns.keys()) for i in ours.indexes
    }


def test_ensure_schema_is_idempotent(engine: Engine) -> None:
    assert ensure_schema(engine) == "current"
