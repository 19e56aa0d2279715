"""Helpers shared by the benchmarks: throw-away databases and the one-line JSON report."""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.db import make_engine
from reminders.migrate import upgrade

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def database(kind: str) -> Iterator[Engine]:
    """A migrated, empty database of ``kind`` (sqlite or postgresql), dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            upgrade(engine)
            try:
                yield engine
            finally:
                engine.dispose()
        return
    name = f"reminders_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def in_own_process(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``target`` in a fresh process, so that its peak memory and imports are its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(target, args)
    return result


def report(bench: str, value: float, unit: str, baseline: float, ratio: float) -> None:
    print(
        json.dumps(
            {
                "bench": bench,
                "value": round(value, 3),
                "unit": unit,
                "baseline": round(baseline, 3),
                "ratio": round(ratio, 4),
            }
        )
    )


def unfinished(engine: Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT count(*) FROM notices WHERE status IN ('scheduled', 'due', 'sending')"
        return int(conn.execute(text(query)).scalar() or 0)


def cluster_env(
    engine: Engine, redis_url: str, redis_prefix: str, **settings: str
) -> dict[str, str]:
    """The environment of a ``reminders`` process of a bench's cluster: this environment
    without any REMINDERS_ variable, the bench's database and Redis, and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    env.update(
        {
            "REMINDERS_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "REMINDERS_REDIS_URL": redis_url,
            "REMINDERS_REDIS_PREFIX": redis_prefix,
            "REMINDERS_LOG_LEVEL": "WARNING",
        }
    )
    env.update({f"REMINDERS_{name.upper()}": value for name, value in settings.items()})
    return env


def wait_until_alive(client: Any, redis_prefix: str, count: int, timeout: float = 60) -> None:
    """Wait until ``count`` processes of the cluster have written their alive keys in Redis."""
    deadline = time.monotonic() + timeout
    while len(list(client.scan_iter(match=f"{redis_prefix}alive:*"))) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{count} processes did not all start")
        time.sleep(0.2)
