"""Secrets that travel in URLs never reach the log, and the log lines stay whole."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from reminders.redaction import RedactSecrets
from tests.conftest import wait_for
from tests.test_e2e import Server, free_port, start

SECRETS = ("abc123", "hunter2", "s3cr3t", "Zm9vYmFy")


def access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it: the formatter unpacks its five args."""
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5555", "GET", path, "1.1", 200), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/kannel/dlr?notice=1&secret=abc123&type=1",
        "/webhooks/kannel/dlr?notice=1&attempt=a1&sig=Zm9vYmFy&type=1",
        "/cgi-bin/sendsms?username=u&password=hunter2&to=%2B359888123456",
        "/feed.ics?token=s3cr3t",
    ],
)
def test_access_log_lines_are_redacted_and_still_format(path: str) -> None:
    record = access_record(path)
    assert RedactSecrets().filter(record) is True
    # uvicorn's own formatter, as `reminders serve` runs it: it must still find its five args.
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    for secret in SECRETS:
        assert secret not in line
    assert line.startswith('127.0.0.1:5555 - "GET /')
    assert line.endswith('HTTP/1.1" 200 OK') and "…" in line
    assert isinstance(record.args, tuple) and record.args[4] == 200


def test_plain_and_keyword_records_are_redacted() -> None:
    plain = logging.LogRecord("x", logging.ERROR, __file__, 1, "GET /x?secret=abc123", None, None)
    RedactSecrets().filter(plain)
    assert plain.getMessage() == "GET /x?secret=…"
    keyed = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "%(url)s %(n)d", ({"url": "/f?token=s3cr3t", "n": 3},), None
    )
    RedactSecrets().filter(keyed)
    assert keyed.getMessage() == "/f?token=… 3"
    # httpx passes the URL as an object; URL-encoded inside another URL, as a dlr-url travels.
    nested = httpx.URL(
        "http://k/cgi-bin/sendsms", params={"dlr-url": "http://s/d?sig=Zm9vYmFy&x=1"}
    )
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "GET %s", (nested,), None)
    RedactSecrets().filter(record)
    assert "Zm9vYmFy" not in record.getMessage() and "sig%3D" in record.getMessage()


def test_gateway_requests_are_not_logged_at_info() -> None:
    """httpx's request lines hold the recipient's number and the SMS text."""
    from reminders.process import configure_logging
    from reminders.settings import load_settings

    configure_logging(load_settings(log_level="DEBUG"))
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)


@pytest.mark.slow
def test_a_kannel_callback_writes_one_redacted_access_line(tmp_path: Path) -> None:
    """`reminders serve` with its own logging: uvicorn's access line, whole and redacted.

    The filter once emptied the record's args, and uvicorn's formatter, which unpacks them,
    wrote a 60-line "--- Logging error ---" block for every callback instead of the line.
    """
    secret = "kannel-webhook-s3cr3t"
    servers: list[Server] = []
    try:
        server = start(
            servers,
            f"sqlite:///{tmp_path / 'log.db'}",
            free_port(),
            tmp_path,
            env={"REMINDERS_WEBHOOK_SECRET": secret, "REMINDERS_LOG_LEVEL": "INFO"},
        )
        path = f"/webhooks/kannel/dlr?notice=1&secret={secret}&type=8&smsc=fake"
        response = httpx.get(server.base_url + path, timeout=10)
        assert response.status_code == 200 and response.text == "unknown"  # no such notice

        def access_lines() -> list[str]:
            return [line for line in server.stdout.splitlines() if "/webhooks/kannel/dlr" in line]

        [line] = wait_for(access_lines, timeout=10, what="the callback's access line")
        assert '"GET /webhooks/kannel/dlr?notice=1&secret=…&type=8&smsc=fake HTTP/1.1" 200' in line
        assert server.terminate() == 0, server.stderr
        assert "Logging error" not in server.stderr, server.stderr[:3000]
        assert secret not in server.stdout + server.stderr
    finally:
        for started in servers:
            started.kill()
