"""Readers against a drain: do 200 concurrent API readers slow sending down, or see errors?

``reminders serve`` runs as a subprocess (API, scheduler and the outbox sender, with
``REMINDERS_SEND_RATE``) on a fresh database. 5,000 notices fall due together, and 200 readers
loop on ``GET /api/v1/notices`` for the whole ``--duration``, from a few seconds before they fall
due, each asking again as soon as it has its answer, a 503 included (the worst case; with
``--polite`` a reader waits the Retry-After it was given). The drain time is from their send
time to the last one sent (``sent_at``, as the service recorded it). Every reader's answer must
be a 200 or a fast 503 (admission's, with Retry-After): anything else, or a 503 that took a
second, is an error.

Baseline, in the same run: the same drain on a fresh database with no readers.

    .venv/bin/python -m bench.readers [--notices 5000] [--rate 200] [--readers 200]
        [--duration 60] [--polite] [--db sqlite|postgresql]
Prints the readers' figures, then one JSON line: drain seconds with readers, without them;
ratio = with/without (the goal is at most 1.10).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bench.common import database, report
from reminders import apikeys
from reminders.models import Notice, Scope

REMINDERS = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "reminders"
LEAD = 5.0  # seconds the readers run before the notices fall due
FAST = 1.0  # seconds: a 503 slower than this counts as an error


@dataclass
class Readers:
    statuses: Counter[int | str] = field(default_factory=Counter)
    ok_seconds: list[float] = field(default_factory=list)
    busy_seconds: list[float] = field(default_factory=list)

    @property
    def errors(self) -> int:
        slow_busy = sum(1 for s in self.busy_seconds if s > FAST)
        return sum(n for k, n in self.statuses.items() if k not in (200, 503)) + slow_busy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(url: str, rate: float, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    env.update(
        REMINDERS_DATABASE_URL=url, REMINDERS_SEND_RATE=str(rate), REMINDERS_QUIET_HOURS="off"
    )
    with (workdir / "serve.log").open("ab") as log:
        proc = subprocess.Popen(
            [str(REMINDERS), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            sys.exit(f"serve exited with {proc.returncode}; see {workdir / 'serve.log'}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            sys.exit("serve did not answer /healthz within 30 s")
        time.sleep(0.1)


def _drain(engine: Engine, notices: int) -> tuple[int, float | None]:
    """How many are sent, and once all are: seconds from their send time to the last one."""
    with Session(engine) as session:
        done, first, last = session.execute(
            select(func.count(), func.min(Notice.send_at), func.max(Notice.sent_at)).where(
                col(Notice.status) == "sent"
            )
        ).one()
    if done < notices:
        return done, None
    return done, (last - first).total_seconds()


class Reader:
    """One keep-alive HTTP/1.1 connection that GETs a path again and again.

    Not httpx: with 200 connections its async pool spent more CPU than the server did, and the
    seconds its requests waited in it were counted as the server's.
    """

    def __init__(self, base: str, request: bytes) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port, self.request = host, int(port), request
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self) -> tuple[int, dict[str, str]]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(self.request)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in head[1:] if line)
        )
        await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            writer.close()
            self.streams = None
        return int(head[0].split()[1]), headers

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


async def _read(
    base: str, headers: dict[str, str], count: int, until: float, *, polite: bool
) -> Readers:
    """``count`` readers, each asking again as soon as it has its answer; after a 503 at once
    too, or, if ``polite``, after the Retry-After it was given."""
    seen = Readers()
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = f"GET /api/v1/notices HTTP/1.1\r\nHost: bench\r\n{lines}\r\n".encode()

    async def read() -> None:
        reader = Reader(base, request)
        try:
            while time.monotonic() < until:
                started = time.monotonic()
                try:
                    status, answer = await asyncio.wait_for(reader.get(), 60)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    seen.statuses[type(exc).__name__] += 1
                    reader.close()
                    reader = Reader(base, request)
                    continue
                elapsed = time.monotonic() - started
                if status == 503 and "retry-after" not in answer:
                    status = -503  # a 503 that does not say when to retry is an error
                seen.statuses[status] += 1
                (seen.ok_seconds if status == 200 else seen.busy_seconds).append(elapsed)
                if polite and status == 503:
                    await asyncio.sleep(float(answer["retry-after"]))
        finally:
            reader.close()

    await asyncio.gather(*(read() for _ in range(count)))
    return seen


def run(
    kind: str, notices: int, rate: float, readers: int, duration: float, *, polite: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, database(kind) as engine:
        with Session(engine) as session:
            secret = apikeys.create_key(
                session, name="bench", scope=Scope.write, account_id=1
            ).secret
            session.commit()
        headers = {"Authorization": f"Bearer {secret}"}
        proc, base = _serve(engine.url.render_as_string(hide_password=False), rate, Path(tmp))
        try:
            due = datetime.now(UTC) + timedelta(seconds=LEAD + 2)
            httpx.post(
                f"{base}/api/v1/messages",
                headers=headers,
                json={
                    "to": {"phones": [f"+3598879{i:05d}" for i in range(notices)]},
                    "text": "Напомняне: преглед утре в 10:30",
                    "send_at": due.isoformat(),
                },
                timeout=120,
            ).raise_for_status()
            seen = Readers()
            if readers:
                time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - LEAD))
                until = time.monotonic() + duration
                seen = asyncio.run(_read(base, headers, readers, until, polite=polite))
                done, drain = _drain(engine, notices)
                if drain is None:
                    sys.exit(
                        f"{done} of {notices} notices went out while the readers ran: part of the "
                        "drain would be measured without them; raise --duration"
                    )
            deadline = time.monotonic() + notices / rate * 5 + 60
            while (drained := _drain(engine, notices))[1] is None:
                if time.monotonic() > deadline:
                    sys.exit(f"only {drained[0]} of {notices} notices went out")
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"drain": drained[1], "readers": seen}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60, help="seconds the readers read")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--polite", action="store_true", help="readers wait the Retry-After of a 503"
    )
    args = parser.parse_args()
    alone = run(args.db, args.notices, args.rate, 0, 0)
    loaded = run(args.db, args.notices, args.rate, args.readers, args.duration, polite=args.polite)
    seen: Readers = loaded["readers"]
    answers = sum(seen.statuses.values())
    print(
        f"drain of {args.notices} at {args.rate:g}/s: {alone['drain']:.1f} s alone, "
        f"{loaded['drain']:.1f} s with {args.readers} readers\n"
        f"readers: {answers} answers in {args.duration:g} s ({answers / args.duration:.0f}/s), "
        f"by status {dict(seen.statuses)}; 200 p50 "
        f"{statistics.median(seen.ok_seconds or [0]) * 1000:.0f} ms, p99 "
        f"{_percentile(seen.ok_seconds, 0.99) * 1000:.0f} ms; slowest 503 "
        f"{max(seen.busy_seconds or [0]) * 1000:.0f} ms; errors {seen.errors}",
        file=sys.stderr,
    )
    assert seen.errors == 0, f"{seen.errors} answers were neither a 200 nor a fast 503"
    report(
        f"readers_{args.db}",
        loaded["drain"],
        "s",
        alone["drain"],
        loaded["drain"] / alone["drain"],
    )


if __name__ == "__main__":
    main()
