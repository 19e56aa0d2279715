"""The door: a caller's key (or a gateway's signature headers) is checked before its body is read.

These tests speak HTTP over a raw socket to a real uvicorn, so that they control how much of a
body is sent: a refusal that comes back while most of the body is still unsent proves the
server never waited for it.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from reminders.api.gate import is_public
from reminders.api.limits import MB
from reminders.settings import Settings, load_settings

CHUNK = 64 * 1024
FIFTY_MB = 50 * MB
CONTACT = json.dumps({"name": "Иван", "phone": "0888123456", "attributes": {"n": "x" * CHUNK}})


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, quiet_hours="off", http_sender_secret="hs")


def connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def send_head(sock: socket.socket, path: str, headers: dict[str, str]) -> None:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def answer(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return response.status, headers, json.loads(response.read())


def keep_sending(sock: socket.socket, total: int) -> int:
    """Push the rest of a chunked body until the server has hung up; return what was sent."""
    sent, block = 0, chunk(b"x" * CHUNK)
    try:
        while sent < total:
            sock.sendall(block)
            sent += CHUNK
    except OSError:  # reset or broken pipe: the server closed the connection
        return sent
    return sent


def rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


def refused_before_the_body(base_url: str, path: str, headers: dict[str, str]) -> Any:
    """A chunked 50 MB body streamed to ``path``: answered after its first 64 KB, and the
    connection closed, so that the rest cannot be sent."""
    with connect(base_url) as sock:
        send_head(sock, path, {**headers, "Transfer-Encoding": "chunked"})
        sock.sendall(chunk(CONTACT.encode()[:CHUNK]))
        status, response_headers, body = answer(sock)
        assert response_headers.get("connection") == "close", response_headers
        assert keep_sending(sock, FIFTY_MB) < FIFTY_MB
        return status, response_headers, body


def test_a_body_without_a_key_is_answered_401_before_it_is_sent(live_server: str) -> None:
    status, headers, body = refused_before_the_body(live_server, "/api/v1/contacts", {})
    assert status == 401 and "API key is required" in body["detail"], body
    assert headers["www-authenticate"] == "Bearer"

    wrong = {"Authorization": "Bearer rmd_not-a-key"}
    status, _, body = refused_before_the_body(live_server, "/api/v1/contacts", wrong)
    assert status == 401 and "not valid" in body["detail"], body

    # Declared at 50 MB and not sent at all: the key comes first, then the size.
    with connect(live_server) as sock:
        send_head(sock, "/api/v1/bills/batch", {"Content-Length": str(FIFTY_MB)})
        status, _, body = answer(sock)
    assert status == 401, body


def test_ten_parallel_50_mb_bodies_without_a_key_cost_no_memory(live_server: str) -> None:
    before = rss()
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(
                lambda _: refused_before_the_body(live_server, "/api/v1/contacts", {}), range(10)
            )
        )
    assert [status for status, _, _ in answers] == [401] * 10
    # Each connection was refused after its first 64 KB: the server held none of the 500 MB.
    assert rss() - before < 20 * MB


def test_a_key_first_then_a_body_past_the_limit_is_413_at_once(
    live_server: str, writer: dict[str, str]
) -> None:
    with connect(live_server) as sock:
        send_head(sock, "/api/v1/contacts", {**writer, "Content-Length": str(FIFTY_MB)})
        status, headers, body = answer(sock)
    assert status == 413 and headers["connection"] == "close"
    assert body["errors"] == [
        {"field": "body", "in": "body", "message": "the request body may be at most 1 MB"}
    ]

    # Chunked, with a key: read as it comes and refused once past the limit.
    with connect(live_server) as sock:
        send_head(sock, "/api/v1/contacts", {**writer, "Transfer-Encoding": "chunked"})
        sent = 0
        while sent <= MB:
            sock.sendall(chunk(b"x" * CHUNK))
            sent += CHUNK
        status, headers, body = answer(sock)
    assert status == 413 and headers["connection"] == "close"


def test_a_signed_callback_without_its_signature_is_refused_before_its_body(
    live_server: str,
) -> None:
    path = "/webhooks/http/status"
    status, _, body = refused_before_the_body(live_server, path, {})
    assert status == 403 and "Signature" in body["detail"], body

    stale = str(int(time.time()) - 3600)
    headers = {"X-Reminders-Timestamp": stale, "X-Reminders-Signature": "sha256=00"}
    status, _, body = refused_before_the_body(live_server, path, headers)
    assert status == 403 and "Timestamp" in body["detail"], body


def test_one_place_decides_which_paths_are_public(client: TestClient) -> None:
    """A path is public exactly when its routes ask for no key, as the API documents them."""
    schema = client.get("/openapi.json").json()
    public = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            keyed = bool(operation.get("security"))
            assert keyed != is_public(path), (method, path)
            if not keyed:
                public.add(path)
    assert public == {
        "/healthz",
        "/readyz",
        "/webhooks/kannel/dlr",
        "/webhooks/kannel/inbound",
        "/webhooks/twilio/status",
        "/webhooks/twilio/inbound",
        "/webhooks/http/status",
        "/webhooks/http/inbound",
    }
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 200, path
    # An unknown path is not a way around the door.
    assert client.post("/api/v1/nothing-here", content=b"x" * 100).status_code == 401
