"""Webhooks: 10,000 events delivered to a local receiver by two ``reminders worker`` processes.

The workers start first and idle; then 10,000 events for one endpoint are written to the outbox
in one transaction, and the clock runs from that commit until the last delivery is recorded
(each one claimed under a lease, signed, POSTed through the address guard, and its attempt and
outcome written). The receiver, a bare ASGI app under uvicorn in a process of its own, answers
204 and counts what it got; no event may be missed.

Baseline, in the same run against the same receiver: a bare ``httpx.Client`` loop posting the
same 10,000 requests (the same bodies, signed the same way), one after another.

    .venv/bin/python -m bench.webhooks [--n 10000] [--db postgresql]
Prints one JSON line: events/s delivered by the workers, the loop's as the baseline, the ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.common import cluster_env, database, report, wait_until_alive

REDIS_URL = "redis://127.0.0.1:6379/0"
REMINDERS = Path(sys.executable).parent / "reminders"
WORKERS = 2


def _receive(port: int) -> None:
    """The customer's endpoint: 204 to every POST; GET tells how many came, and how many ids."""
    import uvicorn

    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "GET":
            body = json.dumps({"requests": len(seen), "ids": len(set(seen))}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            seen.clear()
            return
        headers = dict(scope["headers"])
        seen.append(headers.get(b"webhook-id", b"").decode())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _counted(base: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{base}/count", timeout=10).json()
    return counts


def _write_events(engine: Engine, url: str, n: int) -> None:
    from reminders.webhooks.outbox import Event, enqueue
    from reminders.webhooks.signing import new_secret

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhook_endpoints (account_id, url, events, enabled, secret,"
                " created_at, updated_at) VALUES (1, :url, '[\"*\"]', :t, :secret, :at, :at)"
            ),
            {"url": url, "t": True, "secret": new_secret(), "at": datetime.now(UTC)},
        )
    at = datetime.now(UTC)
    events = [
        Event(1, "notice.delivered", {"notice_id": i, "phone": "+359888000000"}, at)
        for i in range(n)
    ]
    with engine.begin() as conn:
        for start in range(0, n, 1000):
            enqueue(conn, events[start : start + 1000])


def ours(engine: Engine, receiver: str, n: int, workdir: Path) -> float:
    """Events per second the workers deliver, from the outbox's commit to the last record."""
    prefix = f"bench-webhooks-{uuid.uuid4().hex[:8]}:"
    env = cluster_env(
        engine,
        REDIS_URL,
        prefix,
        quiet_hours="off",
        allow_private_webhooks="true",
        webhook_poll="0.05",
    )
    client = redis.Redis.from_url(REDIS_URL)
    procs = []
    try:
        for i in range(WORKERS):
            log = (workdir / f"worker-{i}.log").open("wb")
            procs.append(
                subprocess.Popen([str(REMINDERS), "worker"], env=env, stdout=log, stderr=log)
            )
        wait_until_alive(client, prefix, WORKERS)
        _write_events(engine, f"{receiver}/hooks", n)
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while _pending(engine):
            if time.monotonic() > deadline:
                raise SystemExit(f"{_pending(engine)} deliveries left after 600 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    with engine.connect() as conn:
        query = "SELECT status, count(*) FROM webhook_deliveries GROUP BY status"
        states = {str(status): int(count) for status, count in conn.execute(text(query))}
    if states != {"delivered": n}:
        raise SystemExit(f"deliveries ended {states}")
    return n / elapsed


def _pending(engine: Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
        return int(conn.execute(text(query)).scalar() or 0)


def baseline(engine: Engine, receiver: str) -> float:
    """The same requests from a bare httpx loop: events per second."""
    from reminders.webhooks.signing import headers

    with engine.connect() as conn:
        secret = conn.execute(text("SELECT secret FROM webhook_endpoints")).scalar_one()
        rows = conn.execute(text("SELECT message_id, body FROM webhook_deliveries")).all()
    with httpx.Client() as client:
        started = time.perf_counter()
        for message_id, body in rows:
            content = body.encode()
            signed = headers(secret, message_id, int(time.time()), content)
            client.post(f"{receiver}/hooks", content=content, headers=signed).raise_for_status()
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--db", default="postgresql", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    port = _free_port()
    receiver = f"http://127.0.0.1:{port}"
    server = multiprocessing.get_context("spawn").Process(target=_receive, args=(port,))
    server.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _counted(receiver)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("the receiver did not start") from None
                time.sleep(0.1)
        with database(args.db) as engine, tempfile.TemporaryDirectory() as tmp:
            rate = ours(engine, receiver, args.n, Path(tmp))
            got = _counted(receiver)
            print(f"workers: {rate:.0f} events/s; the receiver got {got}")
            if got["ids"] != args.n:
                raise SystemExit(f"the receiver got {got['ids']} events, not {args.n}")
            loop = baseline(engine, receiver)
            print(f"bare httpx loop: {loop:.0f} events/s")
    finally:
        server.terminate()
        server.join(timeout=10)
    report(f"webhooks_{args.db}", rate, "events/s", loop, rate / loop)


if __name__ == "__main__":
    main()
