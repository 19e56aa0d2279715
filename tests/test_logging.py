"""Secrets that travel in URLs never reach the log."""

from __future__ import annotations

import logging

import pytest

from reminders.service import RedactSecrets


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/kannel/dlr?notice=1&secret=abc123&type=1",
        "/cgi-bin/sendsms?username=u&password=hunter2&to=%2B359888123456",
        "/feed.ics?token=s3cr3t",
    ],
)
def test_access_log_lines_are_redacted(path: str) -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1", "GET", path, "1.1", 200), None,
    )  # fmt: skip
    assert RedactSecrets().filter(record) is True
    line = record.getMessage()
    for secret in ("abc123", "hunter2", "s3cr3t"):
        assert secret not in line
    assert "…" in line and "127.0.0.1" in line


def test_gateway_requests_are_not_logged_at_info() -> None:
    """httpx's request lines hold the recipient's number and the SMS text."""
    from reminders.service import configure_logging
    from reminders.settings import load_settings

    configure_logging(load_settings(log_level="DEBUG"))
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
