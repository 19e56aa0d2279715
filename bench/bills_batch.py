"""Bills through the batch endpoint: bills per second, against two ways of writing them one by one.

Every bill brings a new customer inline (phone and name), as a billing system's first export
would, and is planned by the default "bill" policy (four notices and four jobs each). The batch
goes through the HTTP API in-process (FastAPI's TestClient), 10,000 bills a request. Its two
baselines, each on a fresh database of the same kind:

- ``http_one_by_one``: the same bills posted to ``POST /bills`` one by one, what a client
  without the batch endpoint would do (request, key check, validation, answer: all included);
- ``row_by_row``: the service's own single-bill path, ``bills.upsert_bill``, called in a loop
  in-process (no HTTP), one session and one commit per bill: what the batch saves by writing a
  statement per table instead of a few per bill.

    .venv/bin/python -m bench.bills_batch [--n 100000] [--baseline-n 500] [--rows-n 5000]
        [--db sqlite|postgresql]
Prints two JSON lines, bills per second (higher is better), the batch against each baseline;
ratio = value/baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from bench.common import database, report
from reminders import apikeys
from reminders.accounts.scoping import scoped_session
from reminders.bills import BillIn, upsert_bill
from reminders.pending_jobs import commit_and_schedule
from reminders.process import Process, build
from reminders.settings import Settings, load_settings

BATCH = 10_000


def bills(start: int, n: int) -> list[dict[str, Any]]:
    due = (date.today() + timedelta(days=30)).isoformat()
    return [
        {
            "external_id": f"inv-{i}",
            "contact": {
                "external_id": f"cust-{i}",
                "phone": f"+35988{i:07d}",
                "name": f"Клиент {i}",
            },
            "amount": f"{10 + i % 90}.{i % 100:02d}",
            "due": due,
            "title": "Ток",
        }
        for i in range(start, start + n)
    ]


def over_http(process: Process, key: str, rows: list[dict[str, Any]], *, batch: bool) -> float:
    """Seconds to post ``rows`` through the API, in batches or one by one."""
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(process.app) as client:
        started = time.perf_counter()
        if batch:
            for offset in range(0, len(rows), BATCH):
                response = client.post(
                    "/api/v1/bills/batch",
                    json={"bills": rows[offset : offset + BATCH]},
                    headers=headers,
                )
                assert response.status_code == 200, response.text
                assert not response.json()["refused"], response.json()["refused"][:3]
        else:
            for row in rows:
                response = client.post("/api/v1/bills", json=row, headers=headers)
                assert response.status_code == 201, response.text
        return time.perf_counter() - started


def row_by_row(process: Process, settings: Settings, rows: list[dict[str, Any]]) -> float:
    """Seconds to write ``rows`` through ``upsert_bill``, a session and a commit per bill, as a
    request would; validating each row counts, as it does for the other two."""
    engine = process.runtime.engine
    started = time.perf_counter()
    for row in rows:
        with scoped_session(engine, 1, expire_on_commit=False) as session:
            written = upsert_bill(
                session, process.scheduler, BillIn.model_validate(row), settings=settings
            )
            assert written.created, row
            commit_and_schedule(session)
    return time.perf_counter() - started


def run(kind: str, n: int, how: str) -> float:
    """Bills per second, on a fresh database, written ``how``."""
    with database(kind) as engine:
        settings = load_settings(database_url=str(engine.url))
        with Session(engine) as session:
            key = apikeys.create_key(session, name="bench", scope="write", account_id=1).secret
            session.commit()
        process = build(settings, engine, run_scheduler=False)
        rows = bills(0, n)
        if how == "row_by_row":
            elapsed = row_by_row(process, settings, rows)
        else:
            elapsed = over_http(process, key, rows, batch=how == "batch")
        print(f"{how}: {n} bills in {elapsed:.1f} s", file=sys.stderr)
        return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=500, help="bills posted one by one")
    parser.add_argument("--rows-n", type=int, default=5_000, help="bills written row by row")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    one_by_one = run(args.db, args.baseline_n, "http_one_by_one")
    rows = run(args.db, args.rows_n, "row_by_row")
    value = run(args.db, args.n, "batch")
    for name, baseline in (("http_one_by_one", one_by_one), ("row_by_row", rows)):
        report(f"bills_batch_vs_{name}_{args.db}", value, "bills/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
