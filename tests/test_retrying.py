"""How a failure is logged: the database away is one line, anything else a traceback."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from reminders.scheduler.retrying import log_failure

log = logging.getLogger("tests.retrying")


def test_the_database_away_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    # A real driver error: nothing listens on port 1.
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(OperationalError) as raised:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    with caplog.at_level(logging.INFO, logger="tests.retrying"):
        log_failure(log, "the %s lane's batch", raised.value, "bulk")
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage().startswith("the bulk lane's batch failed (OperationalError: ")
    assert "Traceback" not in caplog.text


def test_anything_else_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        with caplog.at_level(logging.INFO, logger="tests.retrying"):
            log_failure(log, "delivering webhooks", exc)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "delivering webhooks failed (KeyError: 'missing')"
    assert "Traceback" in caplog.text
