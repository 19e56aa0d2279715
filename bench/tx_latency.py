"""Transactional latency under a bulk drain: does an alert wait behind 20,000 reminders?

A whole service (API, scheduler, Kannel sender, ``REMINDERS_SEND_RATE=200``) runs in this
process against a real Kannel with its fake SMSC. 20,000 bulk notices fall due at once: at 200
messages a second they take 100 s to drain. Meanwhile 50 transactional messages are posted
through the API, one every 0.5 s. Latency is from the API call to the gateway's acceptance
(the attempt's ``submitted_at``).

Baseline, in the same run: the same 50 transactional messages with no backlog at all.

    .venv/bin/python -m bench.tx_latency [--bulk 20000] [--rate 200] [--db sqlite|postgresql]
Prints the p50s, then one JSON line: p99 in ms under the drain, p99 idle; ratio = value/baseline.
The goal is a p99 under 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session, col

from bench.common import database, report
from reminders import apikeys
from reminders.models import Attempt, Notice, Scope
from reminders.process import build
from reminders.settings import load_settings
from tests import kannel as harness

ALERTS = 50
SPACING = 0.5  # seconds between alerts


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _alerts(client: TestClient, headers: dict[str, str], base: int) -> dict[int, float]:
    """Post the alerts one by one; return each message id with the time of its API call."""
    called: dict[int, float] = {}
    for i in range(ALERTS):
        started = time.time()
        response = client.post(
            "/api/v1/messages",
            headers=headers,
            json={
                "to": {"phones": [f"+3598877{base + i:05d}"]},
                "text": f"Card payment of 42.00 BGN declined ({i})",
                "priority": "transactional",
            },
        )
        response.raise_for_status()
        called[int(response.json()["id"])] = started
        time.sleep(SPACING)
    return called


def _latencies(engine: Any, called: dict[int, float], timeout: float = 60) -> list[float]:
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            rows = session.exec(
                select(Notice.message_id, func.min(Attempt.submitted_at))
                .join(Attempt, col(Attempt.notice_id) == col(Notice.id))
                .where(col(Notice.message_id).in_(list(called)))
                .group_by(col(Notice.message_id))
            ).all()
        if len(rows) == len(called) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if len(rows) != len(called):
        sys.exit(f"only {len(rows)} of {len(called)} alerts reached the gateway")
    return [
        (submitted.replace(tzinfo=UTC).timestamp() - called[message_id]) * 1000
        for message_id, submitted in rows
    ]


def run(kind: str, bulk: int, rate: float) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        harness.running(Path(tmp)) as kannel,
        database(kind) as engine,
    ):
        settings = load_settings(
            database_url=engine.url.render_as_string(hide_password=False),
            sender="kannel",
            kannel_url=kannel.sendsms_url,
            kannel_username=harness.USERNAME,
            kannel_password=harness.PASSWORD,
            kannel_max_parts=kannel.max_messages,
            send_rate=rate,
            quiet_hours="off",
        )
        process = build(settings, engine)
        with Session(engine) as session:
            secret = apikeys.create_key(
                session, name="bench", scope=Scope.write, account_id=1
            ).secret
            session.commit()
        headers = {"Authorization": f"Bearer {secret}"}
        try:
            with TestClient(process.app) as client:
                idle = _latencies(engine, _alerts(client, headers, 0))

                due = datetime.now(UTC) + timedelta(seconds=3)
                for start in range(0, bulk, 10_000):
                    phones = [f"+3598878{i:05d}" for i in range(start, min(bulk, start + 10_000))]
                    client.post(
                        "/api/v1/messages",
                        headers=headers,
                        json={
                            "to": {"phones": phones},
                            "text": "Напомняне: преглед утре в 10:30",
                            "send_at": due.isoformat(),
                        },
                    ).raise_for_status()
                while datetime.now(UTC) < due + timedelta(seconds=2):
                    time.sleep(0.1)
                drain_started = time.time()
                loaded = _latencies(engine, _alerts(client, headers, ALERTS))
                elapsed = time.time() - drain_started
                with Session(engine) as session:
                    left = int(
                        session.scalar(
                            select(func.count())
                            .select_from(Notice)
                            .where(
                                col(Notice.priority) == "bulk",
                                col(Notice.status).in_(("scheduled", "due")),
                            )
                        )
                        or 0
                    )
        finally:
            process.scheduler.shutdown(wait=True)
            process.runtime.sender.close()
    if left == 0:
        sys.exit("the bulk backlog drained before the alerts were measured; raise --bulk")
    return {
        "idle_p50": statistics.median(idle),
        "idle_p99": _percentile(idle, 0.99),
        "p50": statistics.median(loaded),
        "p99": _percentile(loaded, 0.99),
        "bulk_rate": (bulk - left) / (elapsed + 2),
        "bulk_left": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    result = run(args.db, args.bulk, args.rate)
    print(
        f"alerts: idle p50 {result['idle_p50']:.0f} ms p99 {result['idle_p99']:.0f} ms; "
        f"under the drain p50 {result['p50']:.0f} ms p99 {result['p99']:.0f} ms; "
        f"bulk drained at {result['bulk_rate']:.0f}/s, {result['bulk_left']} still waiting",
        file=sys.stderr,
    )
    report(
        f"tx_latency_{args.db}",
        result["p99"],
        "ms",
        result["idle_p99"],
        result["p99"] / result["idle_p99"],
    )


if __name__ == "__main__":
    main()
