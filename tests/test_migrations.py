"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from reminders.db import make_engine
from reminders.migrate import (
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade,
)
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


APPOINTMENT_WHEN = "0012_appointment_when"


def _appointment_steps(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        steps = conn.execute(text("SELECT steps FROM policies WHERE name = 'appointment'"))
        value = steps.scalar_one()
    return json.loads(value) if isinstance(value, str) else list(value)


def _set_appointment_steps(engine: Engine, steps: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE policies SET steps = :steps WHERE name = 'appointment'"),
            {"steps": json.dumps(steps)},
        )


def _migrated_to_before_appointment_when(database_url: str) -> Engine:
    engine = make_engine(database_url)
    before = ScriptDirectory.from_config(alembic_config(engine)).get_revision(APPOINTMENT_WHEN)
    assert before is not None and isinstance(before.down_revision, str)
    command.upgrade(alembic_config(engine), before.down_revision)
    return engine


def test_the_seeded_appointment_texts_are_replaced_when_untouched(database_url: str) -> None:
    engine = _migrated_to_before_appointment_when(database_url)
    try:
        old = _appointment_steps(engine)
        assert "днес в {{ time }} ч." in old[1]["template"]
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO notices (key, kind, status, phone, text, is_template, priority,"
                    " transliterate, send_at, created_at, updated_at, step) VALUES"
                    " (:key, 'event_reminder', :status, '+359888100001', :text, :yes, 'bulk',"
                    " :no, :now, :now, :now, 1)"
                ),
                [
                    {"key": f"k{status}", "status": status, "text": old[1]["template"]}
                    | {"yes": True, "no": False, "now": datetime(2026, 11, 25)}
                    for status in ("scheduled", "sent")
                ],
            )
        upgrade(engine)
        new = _appointment_steps(engine)
        assert [(s["offset"], s["at"]) for s in new] == [("-P1D", "18:00"), ("-PT2H", None)]
        assert all("{{ when }}" in s["template"] and "днес" not in s["template"] for s in new)
        with engine.connect() as conn:
            texts = dict(conn.execute(text("SELECT status, text FROM notices")).all())
        # A notice still to go gets the new text; one that went out keeps what it was.
        assert texts == {"scheduled": new[1]["template"], "sent": old[1]["template"]}
    finally:
        engine.dispose()


def test_an_edited_appointment_policy_is_left_alone(database_url: str) -> None:
    engine = _migrated_to_before_appointment_when(database_url)
    try:
        edited = _appointment_steps(engine)
        edited[0]["at"] = "19:00"
        _set_appointment_steps(engine, edited)
        upgrade(engine)
        assert _appointment_steps(engine) == edited
    finally:
        engine.dispose()
