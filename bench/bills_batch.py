"""Bills through the batch endpoint: bills per second, against the same bills posted one by one.

Every bill brings a new customer inline (phone and name), as a billing system's first export
would, and is planned by the default "bill" policy (four notices and four jobs each). Both sides
go through the HTTP API in-process (FastAPI's TestClient) on the same kind of database.

    .venv/bin/python -m bench.bills_batch [--n 100000] [--baseline-n 500] [--db sqlite|postgresql]
Prints one JSON line: bills per second (higher is better); ratio = value/baseline.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from bench.common import database, report
from reminders import apikeys
from reminders.process import build
from reminders.settings import load_settings

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


def run(kind: str, n: int, *, batch: bool) -> float:
    with database(kind) as engine:
        settings = load_settings(database_url=str(engine.url))
        with Session(engine) as session:
            key = apikeys.create_key(session, name="bench", scope="write").secret
            session.commit()
        process = build(settings, engine, run_scheduler=False)
        headers = {"Authorization": f"Bearer {key}"}
        rows = bills(0, n)
        with TestClient(process.app) as client:
            started = time.perf_counter()
            if batch:
                for offset in range(0, n, BATCH):
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
            elapsed = time.perf_counter() - started
        return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=500)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    baseline = run(args.db, args.baseline_n, batch=False)
    value = run(args.db, args.n, batch=True)
    report(f"bills_batch_{args.db}", value, "bills/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
