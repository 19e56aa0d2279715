"""An unexpected error answers one clean 500 and leaves the connection usable."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from reminders.process import Process
from tests.kannel import serving


def test_after_a_500_the_same_keep_alive_connection_still_works(
    process: Process, reader: dict[str, str]
) -> None:
    def boom() -> None:
        raise RuntimeError("a bug, not the user's mistake")

    process.app.add_api_route("/boom", boom)
    with serving(process.app, lifespan="off") as base:
        url = urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        try:
            conn.request("GET", "/boom", headers=reader)  # a path without a key is a 401
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 500
            assert body == {"detail": "internal error; see the service log", "errors": []}
            assert response.getheader("connection") != "close"
            # The next request rides on the same connection.
            conn.request("GET", "/healthz")
            again = conn.getresponse()
            assert again.status == 200
            again.read()
        finally:
            conn.close()
