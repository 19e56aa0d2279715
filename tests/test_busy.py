"""A busy API on real uvicorn: a crowd of readers, live streams and a drain, all at once.

Before admission, 60 concurrent ``GET /api/v1/notices`` gave 40 × 500 after 30 s (the pool ran
dry while the threads that held its connections waited for one another), readers starved the
sender of connections, and 40 live streams froze the API. Here the service runs as ``serve``
does, on uvicorn's event loop and AnyIO's worker threads, against SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from reminders.models import Notice
from reminders.process import Process, build
from reminders.settings import load_settings
from tests.conftest import wait_for
from tests.kannel import serving
from tests.test_metrics import sample

pytestmark = pytest.mark.slow  # real servers and many clients: not in the fast tier

Headers = dict[str, str]
NOTICES, STREAM = "/api/v1/notices", "/api/v1/stats/stream"


@contextmanager
def service(database_url: str, engine: Engine, **settings: Any) -> Iterator[tuple[str, Process]]:
    """The whole service (API, scheduler, outbox sender) on a real port."""
    process = build(load_settings(database_url=database_url, quiet_hours="off", **settings), engine)
    with serving(process.app) as base_url:
        yield base_url, process


def phones(count: int, first: int = 0) -> list[str]:
    return [f"+3598810{i:05d}" for i in range(first, first + count)]


@dataclass
class Answer:
    status: int
    retry_after: str | None
    body: Any


async def get(client: httpx.AsyncClient, path: str) -> Answer:
    response = await client.get(path)
    return Answer(response.status_code, response.headers.get("retry-after"), response.json())


def check_refusal(answer: Answer) -> None:
    """A 503 from admission, with Retry-After and the API's JSON error. (Before admission the
    pool ran dry and answered 500 after its 30 s timeout; that the refusal does not wait for a
    slot is shown with every slot held, below and in tests/test_admission.py.)"""
    assert answer.retry_after == "1", answer
    assert answer.body["detail"].startswith("the service is busy"), answer


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def sent(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(Notice).where(col(Notice.status) == "sent")
        return int(conn.execute(query).scalar_one())


def test_sixty_concurrent_reads_get_200_or_a_fast_503_and_never_touch_the_senders_pool(
    database_url: str, engine: Engine, reader: Headers, writer: Headers
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    checkouts: list[str] = []

    def record(*_: Any) -> None:
        checkouts.append(threading.current_thread().name)

    with service(database_url, engine) as (base, _):
        message = {"to": {"phones": phones(300)}, "text": "Напомняне", "send_at": later}
        httpx.post(f"{base}/api/v1/messages", headers=writer, json=message).raise_for_status()

        async def burst() -> list[Answer]:
            limits = httpx.Limits(max_connections=60)
            async with httpx.AsyncClient(
                base_url=base, headers=reader, timeout=60, limits=limits
            ) as client:
                return await asyncio.gather(*(get(client, NOTICES) for _ in range(60)))

        event.listen(engine, "checkout", record)
        try:
            answers = asyncio.run(burst())
        finally:
            event.remove(engine, "checkout", record)

    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= 1
    for answer in answers:
        if answer.status == 503:
            check_refusal(answer)
    # The API's threads never took a connection from the scheduler's and sender's pool.
    assert not [name for name in checkouts if name.startswith("AnyIO")], checkouts


@contextmanager
def unfinished_uploads(base_url: str, count: int, key: Headers) -> Iterator[None]:
    """Requests whose body never finishes arriving: each holds a request slot until it leaves.

    They carry a valid key: without one the door answers 401 before waiting for the body."""
    authorization = key["Authorization"].encode()
    host, port = base_url.removeprefix("http://").split(":")
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(
                b"POST /api/v1/messages HTTP/1.1\r\nHost: test\r\n"
                b"Authorization: " + authorization + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            sockets.append(sock)
        yield
    finally:
        for sock in sockets:
            sock.close()


def test_with_every_slot_taken_the_api_says_503_at_once_and_health_checks_still_answer(
    database_url: str, engine: Engine, reader: Headers
) -> None:
    with service(database_url, engine, api_concurrency=2) as (base, process):
        gates = process.app.state.gates
        with unfinished_uploads(base, 2, reader):
            wait_for(lambda: gates.requests.busy == 2, timeout=10, what="two slots taken")
            refused = httpx.get(f"{base}{NOTICES}", headers=reader, timeout=60)
            # Refused while both slots were still held: it did not wait for one to free.
            assert gates.requests.busy == 2
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json() == {
                "detail": "the service is busy: 2 requests are in progress; retry in 1 s",
                "errors": [],
            }
            assert httpx.get(f"{base}/healthz").status_code == 200
            ready = httpx.get(f"{base}/readyz")
            assert ready.status_code == 200, ready.text
            metrics = httpx.get(f"{base}/metrics", headers=reader)
            assert metrics.status_code == 200
            assert sample(metrics.text, "reminders_api_in_progress", kind="requests") == 2
            assert sample(metrics.text, "reminders_api_refused_total", kind="requests") == 1
            # A gateway's callback is not turned away (it is refused for its missing secret).
            callback = httpx.get(f"{base}/webhooks/kannel/dlr")
            assert callback.status_code != 503, callback.text
        wait_for(lambda: gates.requests.busy == 0, timeout=10, what="the slots to free")
        assert httpx.get(f"{base}{NOTICES}", headers=reader).status_code == 200


def test_sending_goes_on_while_readers_saturate_the_api(
    database_url: str, engine: Engine, reader: Headers, writer: Headers
) -> None:
    with service(database_url, engine, api_concurrency=2) as (base, _):

        async def scenario() -> Counter[int]:
            seen: Counter[int] = Counter()
            stop = asyncio.Event()
            limits = httpx.Limits(max_connections=60)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
                client.headers.update(reader)

                async def read() -> None:
                    while not stop.is_set():
                        answer = await get(client, NOTICES)
                        seen[answer.status] += 1
                        if answer.status == 503:
                            check_refusal(answer)
                            # Sooner than told, to keep the API saturated; at once, the
                            # client's own loop (in this process) would be the bottleneck.
                            await asyncio.sleep(0.1)

                readers = [asyncio.create_task(read()) for _ in range(50)]
                await until(lambda: seen[503] > 0, "the API to be saturated")
                # A client that is told to retry does, and its message goes out meanwhile.
                message = {"to": {"phones": phones(200)}, "text": "Напомняне"}
                while True:
                    posted = await client.post("/api/v1/messages", headers=writer, json=message)
                    if posted.status_code != 503:
                        break
                    await asyncio.sleep(float(posted.headers["retry-after"]) / 10)
                assert posted.status_code == 201, posted.text
                # They go out while the readers go on saturating the API.
                await until(lambda: sent(engine) == 200, "the 200 notices to go out", 60)
                stop.set()
                await asyncio.gather(*readers)
            return seen

        seen = asyncio.run(scenario())
    assert set(seen) <= {200, 503}, seen
    assert seen[200] > 0


def test_many_live_streams_hold_no_connection_and_leave_the_api_answering(
    database_url: str, engine: Engine, reader: Headers
) -> None:
    streams = 30
    with service(database_url, engine, api_concurrency=2, api_streams=streams) as (base, process):
        api = process.runtime.api_engine
        gates = process.app.state.gates
        assert api is not None

        async def scenario() -> None:
            limits = httpx.Limits(max_connections=streams + 5)
            async with httpx.AsyncClient(
                base_url=base, headers=reader, timeout=30, limits=limits
            ) as client:
                ticks = [0] * streams

                async def listen(i: int) -> None:
                    async with client.stream("GET", STREAM, params={"every": 0.5}) as response:
                        assert response.status_code == 200
                        async for line in response.aiter_lines():
                            if line == "event: stats":
                                ticks[i] += 1

                # All at once: their key checks take turns; none is refused.
                listening = [asyncio.create_task(listen(i)) for i in range(streams)]
                await until(lambda: min(ticks) >= 2, "every stream to tick twice")
                # Between ticks no stream holds a connection: at most the one shared count runs.
                samples = []
                for _ in range(40):
                    samples.append(api.pool.checkedout())  # type: ignore[attr-defined]
                    await asyncio.sleep(0.025)
                assert max(samples) <= 1, samples
                for _ in range(5):
                    answer = await get(client, NOTICES)
                    assert answer.status == 200, answer
                async with client.stream("GET", STREAM) as extra:
                    assert extra.status_code == 503
                    assert extra.headers["retry-after"] == "10"
                before = list(ticks)
                await until(
                    lambda: all(t >= b + 2 for t, b in zip(ticks, before, strict=True)),
                    "the streams to go on ticking",
                )
                for task in listening:
                    task.cancel()
                await asyncio.gather(*listening, return_exceptions=True)

        asyncio.run(scenario())
        # A client that leaves gives its stream slot back.
        wait_for(lambda: gates.streams.busy == 0, timeout=10, what="the stream slots to free")
        assert gates.handshakes.refused == 0
