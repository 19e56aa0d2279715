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

import uvicorn


class Stopping:
    """Set once, when the server begins to stop; awaited by the streams between their events."""

    def __init__(self) -> None:
        # asyncio.Event binds to the running loop at its first wait, not here.
        self._event = asyncio.Event()

    def begin(self) -> None:
        """The server is stopping (call on its event loop)."""
        self._event.set()

    @property
    def begun(self) -> bool:
        return self._event.is_set()

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, less if the server begins to stop; True once it has."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()
        return self._event.is_set()


class StoppingServer(uvicorn.Server):
    """uvicorn's server, which tells the app's streams (``stopping``) as its stop begins."""

    def __init__(self, config: uvicorn.Config, stopping: Stopping) -> None:
        super().__init__(config)
        self.stopping = stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.stopping.begin()
        await super().shutdown(sockets)
