"""Admission: how many requests the API works on at once; the next one is told to come back.

Sync routes run on AnyIO's worker threads, and a request holds its database connection from its
first query until its session closes, across the hops between threads (the key check, the
route, closing the session). When more requests were in flight than the API's pool had
connections, the extra ones waited for a connection while holding the threads that the owners
of the connections needed to finish, and after 30 s they failed with a 500 ("QueuePool limit
... timeout 30"). So the API admits no more requests than its pool serves, and answers the next
one at once: 503 with ``Retry-After``. An admitted request never waits for a connection or a
thread.

Callers come in kinds, each with slots of its own, so that one kind cannot shut out another:

- ``requests``: the API under ``/api/v1`` and its documentation (``REMINDERS_API_CONCURRENCY``);
- ``callbacks``: the gateways' delivery reports and inbound SMS under ``/webhooks/``, which a
  crowd of API readers must not turn away;
- ``monitoring``: ``/healthz``, ``/readyz`` and ``/metrics``, answerable while the API is busy;
- ``streams``: the live statistics stream (``REMINDERS_API_STREAMS``). Its start (the key check,
  on the API's pool) takes one of two ``handshakes`` slots, waiting its turn for a few seconds
  rather than being refused, since a browser's EventSource does not retry a 503; from its first
  byte on, a stream holds no connection and no thread (see ``live.py``).

The scheduler and the sender have a pool of their own (``reminders/db.py``), so nothing here
can slow sending down.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.settings import Settings

CALLBACK_SLOTS = 4  # a report or an inbound SMS takes a few ms: hundreds a second
MONITOR_SLOTS = 4
HANDSHAKE_SLOTS = 2
HANDSHAKE_WAIT = 5.0  # seconds a stream may wait for a handshake slot before a 503
LIVE_QUERIES = 2  # the live streams' shared counts (live.py): the API's and the panel's
# Seconds to wait before trying again. A request slot frees within milliseconds; a stream slot
# only when a stream ends.
RETRY_AFTER, STREAM_RETRY_AFTER = 1, 10
# Only a bug could make a request wait for a connection (admission keeps the pool large
# enough); if one does, it is told to retry rather than kept for 30 s.
API_POOL_TIMEOUT = 5.0

MONITOR_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CALLBACK_PREFIX = "/webhooks/"
STREAM_PATHS = frozenset({"/api/v1/stats/stream", "/live"})  # /live: the control panel's


def api_pool_size(settings: Settings) -> int:
    """Connections the API's pool needs for every slot that may hold one at once."""
    return (
        settings.api_concurrency + CALLBACK_SLOTS + MONITOR_SLOTS + HANDSHAKE_SLOTS + LIVE_QUERIES
    )


@dataclass
class Gate:
    """The slots of one kind of caller.

    Plain counters and a queue of futures, with no lock: only the event loop's thread uses them.
    """

    kind: str  # its label in /metrics
    slots: int
    retry_after: int
    noun: str  # what the 503 says is in progress
    busy: int = 0
    refused: int = 0
    _waiting: deque[asyncio.Future[None]] = field(default_factory=deque, repr=False)

    def enter(self) -> bool:
        """Take a slot if one is free; count a refusal if not."""
        if self.busy >= self.slots or self._waiting:
            self.refused += 1
            return False
        self.busy += 1
        return True

    async def wait(self, timeout: float) -> bool:
        """Take a slot, waiting in turn for at most ``timeout`` seconds for one to free."""
        if self.busy < self.slots and not self._waiting:
            self.busy += 1
            return True
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), timeout)
            return True
        except TimeoutError:
            if turn.done():  # handed over just as the time ran out: keep it
                return True
            turn.cancel()
            self.refused += 1
            return False
        except BaseException:
            if turn.done():  # the caller left after it was handed a slot: give it back
                self.leave()
            turn.cancel()
            raise

    def leave(self) -> None:
        """Free a slot, or hand it to the first caller waiting for one."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.busy -= 1

    def busy_answer(self) -> JSONResponse:
        detail = f"the service is busy: {self.slots} {self.noun} are in progress"
        return JSONResponse(
            {"detail": f"{detail}; retry in {self.retry_after} s", "errors": []},
            status_code=503,
            headers={"Retry-After": str(self.retry_after)},
        )


class Gates:
    """Every kind's gate, which ones a path goes through, and their counts (a collector for
    ``/metrics``)."""

    def __init__(self, settings: Settings) -> None:
        self.requests = Gate("requests", settings.api_concurrency, RETRY_AFTER, "requests")
        self.callbacks = Gate("callbacks", CALLBACK_SLOTS, RETRY_AFTER, "gateway callbacks")
        self.monitoring = Gate("monitoring", MONITOR_SLOTS, RETRY_AFTER, "health checks")
        self.streams = Gate("streams", settings.api_streams, STREAM_RETRY_AFTER, "live streams")
        self.handshakes = Gate("handshakes", HANDSHAKE_SLOTS, STREAM_RETRY_AFTER, "stream starts")
        # An admitted caller runs on at most one worker thread at a time (its dependencies and
        # route run one after the other), and so does the live count.
        self.threads = sum(g.slots for g in self if g is not self.streams) + LIVE_QUERIES

    def __iter__(self) -> Iterator[Gate]:
        return iter((self.requests, self.callbacks, self.monitoring, self.streams, self.handshakes))

    def describe(self) -> list[Metric]:
        return self._families(())

    def collect(self) -> list[Metric]:
        """For ``/metrics``: callers in progress and callers turned away, by kind."""
        return self._families(self)

    @staticmethod
    def _families(gates: Iterable[Gate]) -> list[Metric]:
        busy = GaugeMetricFamily(
            "reminders_api_in_progress",
            "Requests being answered, by kind of caller.",
            labels=["kind"],
        )
        refused = CounterMetricFamily(
            "reminders_api_refused",
            "Requests answered 503 because every slot of their kind was taken.",
            labels=["kind"],
        )
        for gate in gates:
            busy.add_metric([gate.kind], gate.busy)
            refused.add_metric([gate.kind], gate.refused)
        return [busy, refused]

    def for_path(self, path: str) -> tuple[Gate, Gate | None]:
        """The gate held until the answer ends, and the handshake gate held until it starts."""
        if path in MONITOR_PATHS:
            return self.monitoring, None
        if path.startswith(CALLBACK_PREFIX):
            return self.callbacks, None
        if path.rstrip("/") in STREAM_PATHS:
            return self.streams, self.handshakes
        return self.requests, None


class Admission:
    """ASGI middleware: admit a request into its gate, or answer 503 at once."""

    def __init__(self, app: ASGIApp, gates: Gates) -> None:
        self.app = app
        self.gates = gates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held, handshake = self.gates.for_path(scope["path"])
        if not held.enter():
            await held.busy_answer()(scope, receive, send)
            return
        try:
            if handshake is not None and not await handshake.wait(HANDSHAKE_WAIT):
                await handshake.busy_answer()(scope, receive, send)
                return
            _enough_threads(self.gates.threads)
            starting = handshake

            async def started(message: Message) -> None:
                nonlocal starting
                if starting is not None and message["type"] == "http.response.start":
                    starting.leave()
                    starting = None
                await send(message)

            try:
                await self.app(scope, receive, started)
            finally:
                if starting is not None:
                    starting.leave()
        finally:
            held.leave()


def _enough_threads(needed: int) -> None:
    """Let AnyIO run as many sync routes at once as admission lets in (40 by default)."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    if limiter.total_tokens < needed:
        limiter.total_tokens = needed


def install_admission(app: FastAPI, settings: Settings) -> Gates:
    """Put admission in front of everything else; return its gates (``/metrics`` collects them)."""
    gates = Gates(settings)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(_: Request, __: PoolTimeout) -> JSONResponse:
        return gates.requests.busy_answer()

    app.add_middleware(Admission, gates=gates)
    return gates
