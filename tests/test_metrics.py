"""/metrics: queue depth per lane, send latency, gateway errors; shared through Redis."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders.db import utcnow
from reminders.metrics import RedisSendMetrics, SendMetrics
from reminders.models import Notice
from reminders.scheduler.firing import fire_many
from reminders.settings import Settings, load_settings
from tests.conftest import REDIS_URL, wait_for
from tests.test_scheduler import BrokenSender, make_notices

Headers = dict[str, str]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None if it is absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    for line in text.splitlines():
        found = re.match(pattern, line)
        if found:
            return float(found.group(1))
    return None


def test_latency_histogram_is_cumulative_by_lane() -> None:
    metrics = SendMetrics()
    metrics.observe_sent("transactional", [0.03, 0.3, 3.0])
    metrics.observe_sent("bulk", [700.0])
    text = "\n".join(metrics.render())
    bucket = "reminders_send_latency_seconds_bucket"
    assert sample(text, bucket, lane="transactional", le="0.05") == 1
    assert sample(text, bucket, lane="transactional", le="0.5") == 2
    assert sample(text, bucket, lane="transactional", le="2") == 2
    assert sample(text, bucket, lane="transactional", le="5") == 3
    assert sample(text, bucket, lane="transactional", le="+Inf") == 3
    assert sample(text, "reminders_send_latency_seconds_count", lane="transactional") == 3
    assert sample(text, "reminders_send_latency_seconds_sum", lane="transactional") == (
        pytest.approx(3.33)
    )
    assert sample(text, bucket, lane="bulk", le="300") == 0
    assert sample(text, bucket, lane="bulk", le="1800") == 1


def test_gateway_errors_are_counted_by_provider_and_code(
    engine: Engine, settings: Settings
) -> None:
    ids = make_notices(engine, ["0888 400 201", "0888 400 202"])
    metrics = SendMetrics()
    fire_many(engine, BrokenSender(settings, engine), ids, settings=settings, metrics=metrics)
    text = "\n".join(metrics.render())
    total = "reminders_gateway_errors_total"
    assert sample(text, total, provider="broken", code="invalid_number") == 2
    assert sample(text, "reminders_send_latency_seconds_count", lane="bulk") is None


def test_redis_metrics_add_up_across_instances(redis_key: str) -> None:
    worker = RedisSendMetrics(redis.Redis.from_url(REDIS_URL), key=redis_key)
    other = RedisSendMetrics(redis.Redis.from_url(REDIS_URL), key=redis_key)
    worker.observe_sent("bulk", [0.2, 0.2])
    other.observe_sent("bulk", [0.2])
    worker.count_errors("kannel", ["http_400", None])
    # A web instance that sent nothing reports what the others did.
    web = RedisSendMetrics(redis.Redis.from_url(REDIS_URL), key=redis_key)
    text = "\n".join(web.render())
    assert sample(text, "reminders_send_latency_seconds_count", lane="bulk") == 3
    assert sample(text, "reminders_send_latency_seconds_sum", lane="bulk") == pytest.approx(0.6)
    total = "reminders_gateway_errors_total"
    assert sample(text, total, provider="kannel", code="http_400") == 1
    assert sample(text, total, provider="kannel", code="unknown") == 1


def test_redis_away_counts_in_the_process() -> None:
    # Not retried: redis-py's default three tries with back-off take 4 s to fail.
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    metrics = RedisSendMetrics(dead, key="x")
    metrics.observe_sent("bulk", [1.0])
    text = "\n".join(metrics.render())
    assert sample(text, "reminders_send_latency_seconds_count", lane="bulk") == 1


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, quiet_hours="off")


def test_metrics_endpoint(
    client: TestClient, reader: Headers, writer: Headers, engine: Engine
) -> None:
    assert client.get("/metrics").status_code == 401
    later = (utcnow() + timedelta(hours=1)).isoformat()
    for priority, phone, send_at in (
        ("bulk", "0888 401 001", None),
        ("bulk", "0888 401 002", later),
        ("transactional", "0888 401 003", later),
    ):
        body = {"to": {"phones": [phone]}, "text": "Hi", "priority": priority}
        if send_at:
            body["send_at"] = send_at
        assert client.post("/api/v1/messages", json=body, headers=writer).status_code == 201

    def scraped() -> str:
        response = client.get("/metrics", headers=reader)
        assert response.status_code == 200
        return response.text

    wait_for(
        lambda: sample(scraped(), "reminders_send_latency_seconds_count", lane="bulk") == 1,
        what="the first message's latency",
    )
    text = scraped()
    assert sample(text, "reminders_notices", status="sent") == 1
    assert sample(text, "reminders_notices", status="scheduled") == 2
    assert sample(text, "reminders_queue_depth", lane="bulk") == 0
    assert sample(text, "reminders_queue_depth", lane="transactional") == 0
    assert sample(text, "reminders_scheduler_active") == 1

    # Two notices that fell due while nothing fired them: a backlog of one in each lane.
    with Session(engine) as session:
        session.execute(
            update(Notice)
            .where(Notice.status == "scheduled")
            .values(send_at=utcnow() - timedelta(minutes=5))
        )
        session.commit()
    client.app.state.scheduler.shutdown(wait=True)  # type: ignore[attr-defined]
    text = scraped()
    assert sample(text, "reminders_queue_depth", lane="bulk") == 1
    assert sample(text, "reminders_queue_depth", lane="transactional") == 1
    assert sample(text, "reminders_scheduler_active") == 0
