"""A firing finds its batch by primary key, however many other notices are due.

A burst's cost must grow with its size, not with its square: if the statements that read and
claim a batch walked the (status, send_at) index, each batch would visit every due notice.
SQLite keeps no statistics, so its plan is the same for three rows as for 100,000, and asking
it is enough; PostgreSQL plans by its statistics, and bench/burst.py measures the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from reminders.scheduler.firing import fire_many
from reminders.sender.outbox import OutboxSender
from reminders.settings import Settings
from tests.test_scheduler import make_notices


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite alone: PostgreSQL plans by its statistics, so its plan on three rows says nothing
    of its plan on 100,000 (bench/burst.py measures that)."""
    request.getfixturevalue("sqlite_template").copy_to(tmp_path / "reminders.db")
    return f"sqlite:///{tmp_path / 'reminders.db'}"


def test_a_batch_is_read_and_claimed_by_primary_key(engine: Engine, settings: Settings) -> None:
    ids = make_notices(engine, ["0888 700 001", "0888 700 002", "0888 700 003"])
    by_id: list[tuple[str, Any]] = []

    def remember(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not many and "notices.id IN" in statement:
            by_id.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        statuses = fire_many(engine, OutboxSender(settings, engine), ids, settings=settings)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert statuses == dict.fromkeys(ids, "sent")
    kinds = {statement.split()[0] for statement, _ in by_id}
    assert kinds == {"SELECT", "UPDATE"}  # the load and the claim
    with engine.connect() as conn:
        for statement, parameters in by_id:
            explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = [row[-1] for row in explained]
            on_notices = [step for step in plan if "notices" in step.split()]
            assert on_notices, plan
            assert all("PRIMARY KEY" in step for step in on_notices), (statement, plan)
