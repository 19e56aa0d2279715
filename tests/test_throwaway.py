"""The throw-away servers fault tests rely on really stop, come back, and fill up."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
import redis

pytestmark = pytest.mark.slow  # real servers started, stopped and cut off


def test_pg_cluster_restarts_and_keeps_data(pg_cluster: Any) -> None:
    url = pg_cluster.create_database("faults")
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn = psycopg.connect(dsn, autocommit=True)
    pg_cluster.restart()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")  # the connection from before the restart is gone
    with psycopg.connect(dsn, autocommit=True) as fresh:
        assert fresh.execute("SELECT x FROM t").fetchone() == (1,)


def test_own_redis_stops_and_starts(own_redis: Any) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=2)
    client.set("k", "v")
    own_redis.stop()
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    own_redis.start()
    assert client.get("k") is None  # no persistence: what it held is gone


def test_small_disk_fills_and_frees(small_disk: Any) -> None:
    db = sqlite3.connect(small_disk.path / "x.db")
    db.execute("CREATE TABLE t (x blob)")
    db.commit()
    small_disk.fill()
    with pytest.raises(sqlite3.OperationalError, match="full"):
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
        db.commit()
    db.rollback()
    small_disk.free()
    db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    db.commit()
    db.close()


def test_a_cut_link_refuses_until_mended() -> None:
    from tests.throwaway import TcpProxy

    proxy = TcpProxy(5432)  # the machine's PostgreSQL, only reached through the link
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    try:
        conn = psycopg.connect(dsn, autocommit=True)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        proxy.cut()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")  # the open connection is ended
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=2)  # and a new one refused
        proxy.mend()
        with psycopg.connect(dsn, autocommit=True) as fresh:
            assert fresh.execute("SELECT 1").fetchone() == (1,)
    finally:
        proxy.close()
