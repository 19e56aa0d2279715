"""An in-house SMS gateway for tests: a real local HTTP server that checks our signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "shared-secret"


class Gateway:
    """An in-house gateway: checks the signature, answers what the test asks."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes] = (202, b'{"id": "gw-1"}')
        self.received: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-Reminders-Timestamp"]
                expected = (
                    "sha256="
                    + hmac.new(
                        SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                )
                if not hmac.compare_digest(expected, self.headers["X-Reminders-Signature"]):
                    self.send_response(401)
                    self.end_headers()
                    return
                owner.received.append(json.loads(body))
                status, reply = owner.answer
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sms"
        # ``shutdown`` waits for the loop's next look at it: every 0.5 s by default, which was
        # most of a short test's teardown.
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
