"""The server's stop, as its live streams see it.

A live statistics stream (the API's ``/stats/stream``, the control panel's ``/live``) never ends
by itself, and uvicorn's graceful stop waits for every response to finish: one open dashboard
held ``systemctl stop`` or ``docker stop`` until the process manager killed the process (10 s in
Docker, 90 s under systemd). The server now tells the streams when it begins to stop, and each
ends at its next wait, its last event sent whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import uvicorn


class Stopping:
    """Set once, when the server begins to stop; awaited by the streams between their events.

    Not an ``asyncio.Event``: that binds to the first event loop that waits on it, and an app
    may be served on more than one (each ``TestClient`` runs its own). Each wait is a future on
    its own loop, settled through that loop from whichever thread the stop begins on.
    """

    def __init__(self) -> None:
        self._begun = False
        self._lock = threading.Lock()
        self._waiting: set[asyncio.Future[None]] = set()

    def begin(self) -> None:
        """The server is stopping: every wait ends now, and every later one at once."""
        with self._lock:
            self._begun = True
            waiting, self._waiting = self._waiting, set()
        for future in waiting:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                future.get_loop().call_soon_threadsafe(_settle, future)

    @property
    def begun(self) -> bool:
        return self._begun

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, less if the server begins to stop; True once it has."""
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._begun:
                return True
            self._waiting.add(future)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await future
        finally:
            with self._lock:
                self._waiting.discard(future)
        return self._begun


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class StoppingServer(uvicorn.Server):
    """uvicorn's server, which tells the app's streams (``stopping``) as its stop begins."""

    def __init__(self, config: uvicorn.Config, stopping: Stopping) -> None:
        super().__init__(config)
        self.stopping = stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.stopping.begin()
        await super().shutdown(sockets)
