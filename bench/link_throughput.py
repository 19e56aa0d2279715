"""Link throughput: messages per second one worker hands to a real Kannel over one gateway link
with ``--concurrency`` requests in flight, delivery reports requested.

Kannel (bearerbox, smsbox, fakesmsc as the operator) runs on 127.0.0.1 through the test harness
(tests/kannel.py); its delivery reports go to a small local app that answers 200, so that
Kannel's DLR bookkeeping is paid as in production (each ``sendsms`` with a ``dlr-url`` takes
Kannel about 40 ms to answer: throughput is bound by requests in flight).

Measured: due notices in PostgreSQL drained by one process's lanes, as a worker runs them (claim
with SKIP LOCKED, load, compose, send through ``RoutedSender`` and its link's pool of
``KannelSender.send``, record the attempt and the outcome), from the lanes' start to the last
outcome recorded. Baseline, in the same run against the same Kannel: a bare ``httpx.Client``
with the same number of requests in flight sending the same queries, no database around it.
Both runs must see every message at fakesmsc; the run fails otherwise.

    .venv/bin/python -m bench.link_throughput [--n 3000] [--concurrency 16]
Prints one JSON line: the service's msg/s, the bare client's, ratio = service/bare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bench.common import database, report, unfinished
from bench.kannel_throughput import SENDER_ID, TEXTS, arrived, messages, timed
from reminders.accounts.scoping import scoped_session
from reminders.messages import create_message
from reminders.pending_jobs import commit_and_schedule
from reminders.runtime import Runtime
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.schemas.messages import MessageCreate
from reminders.sender.kannel import KannelSender
from reminders.sender.kannel_dlr import new_attempt
from reminders.sender.links import Link, RoutedSender
from reminders.settings import Settings, load_settings
from tests import kannel as harness


async def _took(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


# Kannel's delivery reports land here: answered, not read (the bench measures sending).
REPORTS = Starlette(routes=[Route("/{path:path}", _took, methods=["GET", "POST"])])


def reporting_settings(kannel: harness.Kannel, reports_url: str, **more: Any) -> Settings:
    """Settings that send through the harness's Kannel and ask for every delivery report."""
    return load_settings(
        kannel_url=kannel.sendsms_url,
        kannel_username=harness.USERNAME,
        kannel_password=harness.PASSWORD,
        kannel_max_parts=kannel.max_messages,
        public_url=reports_url,  # with a webhook secret: every send asks for reports
        webhook_secret="bench-secret",
        quiet_hours="off",
        **more,
    )


def bare(url: str, queries: Sequence[dict[str, str | int]], concurrency: int) -> None:
    """The baseline: one httpx client, ``concurrency`` requests in flight, nothing else."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=10, limits=limits) as client:

        def get(params: dict[str, str | int]) -> None:
            response = client.get(url, params=params)
            if response.status_code != 202:
                raise SystemExit(f"Kannel answered {response.status_code}: {response.text}")

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(get, queries))


def bare_rate(
    kannel: harness.Kannel, settings: Settings, prefix: str, n: int, concurrency: int
) -> float:
    """Messages per second ``bare`` hands to Kannel: the ``sendsms`` queries the ``kannel``
    sender builds with ``settings`` (after 50 to warm up), every one seen at fakesmsc."""
    engine = create_engine("sqlite://")  # kept by the sender, never used to send
    sender = KannelSender(settings, engine)
    try:
        text = TEXTS["ascii"]
        warm = [sender.params(m, new_attempt()) for m in messages(f"{prefix}0", 50, text)]
        queries = [sender.params(m, new_attempt()) for m in messages(f"{prefix}1", n, text)]
        assert "dlr-url" in queries[0], "the bench must ask for delivery reports"
        bare(kannel.sendsms_url, warm, concurrency)
        return timed(
            kannel,
            f"{prefix}1",
            n,
            lambda: bare(kannel.sendsms_url, queries, concurrency),
            "bare client",
        )
    finally:
        sender.close()
        engine.dispose()


def whole_service(
    kannel: harness.Kannel, settings: Settings, prefix: str, n: int, concurrency: int
) -> float:
    """Messages per second one worker's lanes take from due notices (PostgreSQL) to Kannel's
    acceptance through one link, each outcome recorded."""
    phones = [f"{prefix}{i:05d}" for i in range(n)]
    with database("postgresql") as engine:
        for start in range(0, n, 10_000):
            data = MessageCreate.model_validate(
                {
                    "to": {"phones": phones[start : start + 10_000]},
                    "text": TEXTS["ascii"],
                    "sender_id": SENDER_ID,
                }
            )
            with scoped_session(engine, 1, expire_on_commit=False) as session:
                create_message(session, None, data, region="BG")  # written due: no job
                commit_and_schedule(session)
        link = Link("kannel", KannelSender(settings, engine), concurrency=concurrency)
        sender = RoutedSender(settings, engine, links=[link])
        scheduler = NoticeScheduler(
            engine, runtime=Runtime(settings=settings, engine=engine, sender=sender)
        )
        try:
            started = time.perf_counter()
            scheduler.start()
            deadline = time.monotonic() + 300
            while unfinished(engine):
                if time.monotonic() > deadline:
                    raise SystemExit(f"whole service: {unfinished(engine)} left after 300 s")
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            scheduler.shutdown()
            sender.close()
        with engine.connect() as conn:
            states = dict(
                conn.execute(text("SELECT status, count(*) FROM notices GROUP BY status")).all()
            )
    if states != {"sent": n}:
        raise SystemExit(f"whole service: notices ended {states}")
    if arrived(kannel, prefix) != n:
        raise SystemExit(f"whole service: fakesmsc got {arrived(kannel, prefix)} of {n}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="REMINDERS_SEND_THREADS")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        harness.running(Path(tmp)) as kannel,
        harness.serving(REPORTS) as reports_url,
    ):
        settings = reporting_settings(kannel, reports_url, send_threads=args.threads)
        baseline = bare_rate(kannel, settings, "+359888", args.n, args.concurrency)
        value = whole_service(kannel, settings, "+3598883", args.n, args.concurrency)
    print(
        f"{args.n} messages, {args.concurrency} in flight, delivery reports requested: bare "
        f"httpx {baseline:.0f}/s, the service through one link {value:.0f}/s",
        file=sys.stderr,
        flush=True,
    )
    report("link_throughput", value, "msg/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
