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


APPOINTMENT_WHEN = "0013"


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


def _before_appointment_when(engine: Engine) -> str:
    script = ScriptDirectory.from_config(alembic_config(engine)).get_revision(APPOINTMENT_WHEN)
    assert script is not None and isinstance(script.down_revision, str)
    return script.down_revision


def _migrated_to_before_appointment_when(database_url: str) -> Engine:
    engine = make_engine(database_url)
    command.upgrade(alembic_config(engine), _before_appointment_when(engine))
    return engine


def _add_notices(engine: Engine, steps: list[dict[str, Any]]) -> None:
    """Scheduled and sent notices with the old texts, of an appointment and of another policy."""
    now = datetime(2026, 11, 25)
    with engine.begin() as conn:
        for key, policy in (("a", "appointment"), ("b", "mine")):
            conn.execute(
                text(
                    "INSERT INTO anchors (key, kind, title, at, all_day, policy, data, cancelled,"
                    " created_at, updated_at) VALUES (:key, 'event', 'x', :now, :no, :policy,"
                    " '{}', :no, :now, :now)"
                ),
                {"key": key, "policy": policy, "now": now, "no": False},
            )
        anchors = dict(conn.execute(text("SELECT key, id FROM anchors")).all())
        rows = [
            ("a", 0, "scheduled"),
            ("a", 1, "scheduled"),
            ("a", 1, "sent"),
            ("b", 1, "scheduled"),
        ]
        conn.execute(
            text(
                "INSERT INTO notices (key, kind, status, anchor_id, step, phone, text, is_template,"
                " priority, transliterate, send_at, created_at, updated_at) VALUES (:key,"
                " 'event_reminder', :status, :anchor, :step, '+359888100001', :text, :yes, 'bulk',"
                " :no, :now, :now, :now)"
            ),
            [
                {
                    "key": f"{anchor}:{step}:{status}",
                    "status": status,
                    "anchor": anchors[anchor],
                    "step": step,
                    "text": steps[step]["template"],
                    "yes": True,
                    "no": False,
                    "now": now,
                }
                for anchor, step, status in rows
            ],
        )


def _notice_texts(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT key, text FROM notices")).all())


def test_the_seeded_appointment_texts_are_replaced_when_untouched(database_url: str) -> None:
    engine = _migrated_to_before_appointment_when(database_url)
    try:
        old = _appointment_steps(engine)
        assert "днес в {{ time }} ч." in old[1]["template"]
        _add_notices(engine, old)
        upgrade(engine)
        new = _appointment_steps(engine)
        assert [(s["offset"], s["at"]) for s in new] == [("-P1D", "18:00"), ("-PT2H", None)]
        assert all("{{ when }}" in s["template"] and "днес" not in s["template"] for s in new)
        # The appointment's notices still to go get the new text; one that went out, and
        # another policy's with the same words, keep theirs.
        assert _notice_texts(engine) == {
            "a:0:scheduled": new[0]["template"],
            "a:1:scheduled": new[1]["template"],
            "a:1:sent": old[1]["template"],
            "b:1:scheduled": old[1]["template"],
        }
        command.downgrade(alembic_config(engine), _before_appointment_when(engine))
        assert _appointment_steps(engine) == old
        assert set(_notice_texts(engine).values()) == {s["template"] for s in old}
    finally:
        engine.dispose()


def test_an_edited_appointment_policy_is_left_alone(database_url: str) -> None:
    engine = _migrated_to_before_appointment_when(database_url)
    try:
        edited = _appointment_steps(engine)
        edited[0]["at"] = "19:00"
        _set_appointment_steps(engine, edited)
        _add_notices(engine, edited)
        before = _notice_texts(engine)
        upgrade(engine)
        assert _appointment_steps(engine) == edited
        assert _notice_texts(engine) == before
    finally:
        engine.dispose()


def test_attempts_take_their_notices_account(database_url: str) -> None:
    """0016 copies each attempt's account from its notice, for the quota's and usage's counts."""
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0015")
        now = datetime(2026, 11, 25)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (slug, name, sender_ids, rate_share, status, created_at,"
                    " updated_at) VALUES ('clinic-a', 'A', '[]', 1, 'active', :now, :now)"
                ),
                {"now": now},
            )
            accounts = dict(conn.execute(text("SELECT slug, id FROM accounts")).all())
            for slug, account_id in accounts.items():
                conn.execute(
                    text(
                        "INSERT INTO notices (account_id, key, kind, status, phone, text,"
                        " is_template, priority, transliterate, send_at, created_at, updated_at)"
                        " VALUES (:account, :key, 'message', 'sent', '+359888100001', 'x', :no,"
                        " 'bulk', :no, :now, :now, :now)"
                    ),
                    {"account": account_id, "key": slug, "no": False, "now": now},
                )
            conn.execute(
                text(
                    "INSERT INTO attempts (notice_id, provider, status, segments, submitted_at)"
                    " SELECT id, 'outbox', 'sent', 1, :now FROM notices"
                ),
                {"now": now},
            )
        upgrade(engine)
        with engine.connect() as conn:
            pairs = conn.execute(
                text(
                    "SELECT a.account_id, n.account_id FROM attempts a"
                    " JOIN notices n ON n.id = a.notice_id"
                )
            ).all()
        assert len(pairs) == 2 and all(mine == theirs for mine, theirs in pairs)
        assert {mine for mine, _ in pairs} == set(accounts.values())
    finally:
        engine.dispose()
