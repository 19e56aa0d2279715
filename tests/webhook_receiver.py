"""A customer's webhook endpoint, on 127.0.0.1: it keeps what it was sent and answers as told.

``answers`` is the script: the status of each request in turn (the last one repeats). A request
whose answer is ``HOLD`` is kept waiting until ``release`` (a delivery "in flight").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD = -1


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self, answers: list[int] | None = None, retry_after: str | None = None) -> None:
        self.answers = list(answers or [200])
        self.retry_after = retry_after
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status = receiver._arrived(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                if status == HOLD:
                    receiver._released.wait(60)
                    status = 200
                answer = b'{"ok": true}' if status < 300 else b"not now, please"
                self.send_response(status)
                if receiver.retry_after and status in (429, 503):
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()

    def _arrived(self, received: Received) -> int:
        with self._changed:
            index = len(self.received)
            self.received.append(received)
            self._changed.notify_all()
        return self.answers[min(index, len(self.answers) - 1)]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The first ``count`` requests, once they have come."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} request(s) came, not {count}")
            return list(self.received[:count])

    def release(self) -> None:
        self._released.set()
