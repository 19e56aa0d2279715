"""Make chosen statements fail as if the database went away, on SQLite and PostgreSQL alike.

``Faults(engine).fail(CLAIM, times=2)`` makes the next two claims raise the driver's own
``OperationalError`` (SQLAlchemy wraps it as it would a real one). ``at="commit"`` fails the
commit of a transaction that ran the statement, before it commits; ``at="answer"`` commits it
and then fails, as when the connection drops while the server's answer is on its way.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import Engine

# The statements of one firing, as SQLAlchemy writes them on both backends.
LOAD = r"^SELECT .*\sFROM notices\s+WHERE notices\.id IN"
CLAIM = r"^UPDATE notices SET status=.*RETURNING"
RECORD = r"^UPDATE notices SET status=.*status_reason="
RELEASE = r"^UPDATE notices SET status=.*claimed_by=(?!.*RETURNING)"
OUTBOX = r"^INSERT INTO outbox"

Step = Literal["execute", "commit", "answer"]


@dataclass
class _Rule:
    pattern: re.Pattern[str]
    times: int
    at: Step
    then: Callable[[], None] | None


class Faults:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.error = engine.dialect.loaded_dbapi.OperationalError
        self.rules: list[_Rule] = []
        self.injected = 0
        self._lock = threading.Lock()
        self._pending: dict[int, list[str]] = {}  # each open transaction's statements
        event.listen(engine, "before_cursor_execute", self._before_execute)
        commit = engine.dialect.do_commit
        rollback = engine.dialect.do_rollback

        def do_commit(dbapi_connection: Any) -> None:
            statements = self._pending.pop(id(dbapi_connection), [])
            rule = self._take(statements, ("commit", "answer"))
            if rule is not None and rule.at == "commit":
                # As when the connection drops: the server rolls the transaction back.
                rollback(dbapi_connection)
                raise self._fail(rule)
            commit(dbapi_connection)
            if rule is not None:
                raise self._fail(rule)

        def do_rollback(dbapi_connection: Any) -> None:
            self._pending.pop(id(dbapi_connection), None)
            rollback(dbapi_connection)

        engine.dialect.do_commit = do_commit  # type: ignore[method-assign]
        engine.dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    def fail(
        self,
        pattern: str,
        times: int = 1,
        *,
        at: Step = "execute",
        then: Callable[[], None] | None = None,
    ) -> None:
        """Fail the next ``times`` statements matching ``pattern``; ``then`` runs after each."""
        with self._lock:
            self.rules.append(_Rule(re.compile(pattern, re.S), times, at, then))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _before_execute(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        # Keyed by the pooled connection, which is what the dialect's commit is given.
        self._pending.setdefault(id(conn.connection), []).append(statement)
        rule = self._take([statement], ("execute",))
        if rule is not None:
            raise self._fail(rule)

    def _take(self, statements: list[str], steps: tuple[Step, ...]) -> _Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.at in steps:
                    if any(rule.pattern.search(s) for s in statements):
                        rule.times -= 1
                        self.injected += 1
                        return rule
        return None

    def _fail(self, rule: _Rule) -> Exception:
        if rule.then is not None:
            rule.then()
        return self.error("injected: the connection to the database was lost")  # type: ignore[no-any-return]


# APScheduler's own question after each round: when is the next job due?
NEXT_RUN_TIME = r"^SELECT apscheduler_jobs\.next_run_time\s+FROM apscheduler_jobs"
