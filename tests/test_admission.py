"""Admission: the API works on as many requests as its own pool serves and answers the next 503
with Retry-After at once; health checks, callbacks and live streams have slots of their own.

The gates are tested here on a bare ASGI app, where the test decides when an answer ends; the
service as a whole, with real uvicorn and many clients, in tests/test_busy.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.types import Message, Receive, Scope, Send

from reminders.api import admission
from reminders.api.admission import Admission, Gates, api_pool_size
from reminders.process import Process, build
from reminders.settings import Settings, SettingsError, load_settings
from tests.test_metrics import sample

Headers = dict[str, str]
SLOW, STREAM = "/api/v1/slow", "/api/v1/stats/stream"


class Held:
    """An ASGI app whose slow answers end when the test lets them; other paths answer at once.

    On ``SLOW`` the answer starts and then waits; on ``STREAM`` the start itself waits for
    ``handshake`` (a key check), then the stream waits like a slow answer.
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.handshake = asyncio.Event()
        self.handshake.set()
        self.waiting = 0  # answers started and waiting for ``release``

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/boom":
            raise RuntimeError("a bug")
        if scope["path"] == STREAM:
            await self.handshake.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] in (SLOW, STREAM):
            self.waiting += 1
            await self.release.wait()
        await send({"type": "http.response.body", "body": b"ok"})


class Answer:
    def __init__(self, messages: list[Message]) -> None:
        start = messages[0]
        self.status: int = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    def json(self) -> Any:
        return json.loads(self.body)


async def call(app: Admission, path: str) -> Answer:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    await app(scope, receive, send)
    return Answer(messages)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
    assert predicate(), what


def admitted(concurrency: int = 2, streams: int = 2) -> tuple[Admission, Held, Gates]:
    held = Held()
    gates = Gates(load_settings(api_concurrency=concurrency, api_streams=streams))
    return Admission(held, gates), held, gates


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario``; one that hangs (an answer waiting for a slot the test never frees)
    fails after 20 s. No answer is timed: a refusal that completes while the slots are still
    held did not wait for one."""
    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_request_past_the_limit_is_answered_503_at_once_with_retry_after() -> None:
    async def scenario() -> None:
        app, held, gates = admitted(concurrency=2)
        slow = [asyncio.create_task(call(app, SLOW)) for _ in range(2)]
        await until(lambda: held.waiting == 2, "both slow answers to start")

        refused = await call(app, "/api/v1/notices")  # the slow two still hold their slots
        assert refused.status == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/json"
        assert refused.json() == {
            "detail": "the service is busy: 2 requests are in progress; retry in 1 s",
            "errors": [],
        }
        # Health checks, metrics and the gateways' callbacks have slots of their own.
        for path in ("/healthz", "/readyz", "/metrics", "/webhooks/kannel/dlr"):
            assert (await call(app, path)).status == 200, path

        held.release.set()
        assert [a.status for a in await asyncio.gather(*slow)] == [200, 200]
        assert (await call(app, "/api/v1/notices")).status == 200
        assert {g.kind: g.busy for g in gates} == dict.fromkeys(
            ("requests", "callbacks", "monitoring", "streams", "handshakes"), 0
        )
        assert gates.requests.refused == 1

    run(scenario)


def test_an_error_gives_its_slot_back() -> None:
    async def scenario() -> None:
        app, _, gates = admitted(concurrency=1)
        with pytest.raises(RuntimeError):
            await call(app, "/boom")
        assert gates.requests.busy == 0
        assert (await call(app, "/api/v1/notices")).status == 200

    run(scenario)


def test_a_live_stream_holds_a_stream_slot_and_no_request_slot() -> None:
    async def scenario() -> None:
        app, held, gates = admitted(concurrency=1, streams=2)
        streams = [asyncio.create_task(call(app, STREAM)) for _ in range(2)]
        await until(lambda: held.waiting == 2, "both streams to start")
        assert (gates.streams.busy, gates.handshakes.busy, gates.requests.busy) == (2, 0, 0)
        assert (await call(app, "/api/v1/notices")).status == 200

        refused = await call(app, STREAM)
        assert refused.status == 503
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["detail"] == (
            "the service is busy: 2 live streams are in progress; retry in 10 s"
        )

        held.release.set()
        await asyncio.gather(*streams)
        assert gates.streams.busy == 0

    run(scenario)


def test_streams_starting_together_wait_their_turn_for_the_key_check() -> None:
    async def scenario() -> None:
        app, held, gates = admitted(concurrency=1, streams=10)
        held.handshake.clear()
        streams = [asyncio.create_task(call(app, STREAM)) for _ in range(6)]
        await until(lambda: gates.streams.busy == 6, "six streams to be let in")
        assert gates.handshakes.busy == admission.HANDSHAKE_SLOTS  # the others wait in turn
        held.handshake.set()
        await until(lambda: held.waiting == 6, "every stream to start")
        assert gates.handshakes.busy == 0
        assert gates.handshakes.refused == 0
        held.release.set()
        assert [a.status for a in await asyncio.gather(*streams)] == [200] * 6

    run(scenario)


def test_a_stream_that_waits_too_long_for_its_key_check_is_told_to_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admission, "HANDSHAKE_WAIT", 0.1)

    async def scenario() -> None:
        app, held, gates = admitted(concurrency=1, streams=10)
        held.handshake.clear()
        first = [asyncio.create_task(call(app, STREAM)) for _ in range(admission.HANDSHAKE_SLOTS)]
        await until(lambda: gates.handshakes.busy == admission.HANDSHAKE_SLOTS, "key checks")
        late = await call(app, STREAM)  # HANDSHAKE_WAIT, then 503
        assert late.status == 503
        assert late.headers["retry-after"] == "10"
        assert (gates.streams.busy, gates.handshakes.refused) == (admission.HANDSHAKE_SLOTS, 1)
        held.handshake.set()
        held.release.set()
        await asyncio.gather(*first)
        assert (gates.streams.busy, gates.handshakes.busy) == (0, 0)

    run(scenario)


def test_the_api_has_a_pool_of_its_own_sized_for_admission(
    process: Process, client: TestClient, reader: Headers, settings: Settings
) -> None:
    api, sending = process.runtime.api_engine, process.runtime.engine
    assert api is not None and api is not sending
    assert api.pool.size() == api_pool_size(settings)  # type: ignore[attr-defined]
    assert api.pool._max_overflow == 0  # type: ignore[attr-defined]
    response = client.get("/api/v1/notices", headers=reader)
    assert response.status_code == 200, response.text
    assert api.pool.checkedin() >= 1  # type: ignore[attr-defined]
    assert api.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_metrics_show_requests_in_progress_and_refused(client: TestClient, reader: Headers) -> None:
    text = client.get("/metrics", headers=reader).text
    assert sample(text, "reminders_api_in_progress", kind="monitoring") == 1  # this very request
    assert sample(text, "reminders_api_in_progress", kind="requests") == 0
    assert sample(text, "reminders_api_refused_total", kind="requests") == 0


def test_a_request_that_cannot_get_a_connection_is_told_to_retry_not_kept_waiting(
    settings: Settings, engine: Engine, reader: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admission keeps the pool large enough; if a bug ever takes its connections, a request
    waits a few seconds at most and gets a 503, never 30 s and a 500."""
    monkeypatch.setattr("reminders.process.API_POOL_TIMEOUT", 0.2)
    process = build(settings, engine)
    api = process.runtime.api_engine
    assert api is not None
    with TestClient(process.app, raise_server_exceptions=False) as client:
        taken = [api.connect() for _ in range(api_pool_size(settings))]
        try:
            response = client.get("/api/v1/notices", headers=reader)
        finally:
            for conn in taken:
                conn.close()
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["detail"].startswith("the service is busy")
        assert client.get("/api/v1/notices", headers=reader).status_code == 200


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"api_concurrency": 0}, "REMINDERS_API_CONCURRENCY"),
        ({"api_streams": 0}, "REMINDERS_API_STREAMS"),
        ({"database_url": "sqlite://"}, "REMINDERS_DATABASE_URL"),
        ({"database_url": "sqlite:///:memory:"}, "REMINDERS_DATABASE_URL"),
    ],
)
def test_bad_admission_settings_stop_start_up(values: dict[str, object], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(**values)
