"""/metrics: queue depth per lane, send latency, gateway errors; shared through Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from reminders.api import create_app
from reminders.db import utcnow
from reminders.metrics import RedisSendMetrics, SendMetrics, metrics_registry
from reminders.models import Notice
from reminders.process import Process
from reminders.scheduler.firing import fire_many
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.settings import Settings, load_settings
from tests.conftest import REDIS_URL, account_session, make_key, wait_for
from tests.test_scheduler import BrokenSender, make_notices

Headers = dict[str, str]


def families(text: str) -> dict[str, Metric]:
    """Every family in Prometheus text, by name, as Prometheus's own parser reads it."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or None if it is absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def exposition(collector: Collector) -> str:
    return generate_latest(metrics_registry(collector)).decode()


def test_latency_histogram_is_cumulative_by_lane() -> None:
    metrics = SendMetrics()
    metrics.observe_sent("transactional", [0.03, 0.3, 3.0])
    metrics.observe_sent("bulk", [700.0])
    text = exposition(metrics)
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
    text = exposition(metrics)
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
    text = exposition(web)
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
    text = exposition(metrics)
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
    assert sample(text, "reminders_notices", account="default", status="sent") == 1
    assert sample(text, "reminders_notices", account="default", status="scheduled") == 2
    assert sample(text, "reminders_queue_depth", account="default", lane="bulk") == 0
    assert sample(text, "reminders_queue_depth", account="default", lane="transactional") == 0
    assert sample(text, "reminders_scheduler_active") == 1

    # Two notices that fell due while nothing fired them: a backlog of one in each lane.
    with account_session(engine) as session:
        session.execute(
            update(Notice)
            .where(col(Notice.status) == "scheduled")
            .values(send_at=utcnow() - timedelta(minutes=5))
        )
        session.commit()
    client.app.state.scheduler.shutdown(wait=True)  # type: ignore[attr-defined]
    text = scraped()
    assert sample(text, "reminders_queue_depth", account="default", lane="bulk") == 1
    assert sample(text, "reminders_queue_depth", account="default", lane="transactional") == 1
    assert sample(text, "reminders_scheduler_active") == 0


# What README promises under "Monitoring": each family's type and label names.
FAMILIES: dict[str, tuple[str, set[str]]] = {
    "reminders_notices": ("gauge", {"account", "status"}),
    "reminders_queue_depth": ("gauge", {"account", "lane"}),
    "reminders_send_latency_seconds": ("histogram", {"lane"}),  # and "le" on its buckets
    "reminders_gateway_errors": ("counter", {"provider", "code"}),
    "reminders_link_sent": ("counter", {"link"}),
    "reminders_link_errors": ("counter", {"link", "kind"}),
    "reminders_link_skipped": ("counter", {"link"}),
    "reminders_link_latency_seconds": ("histogram", {"link"}),
    "reminders_webhook_deliveries": ("counter", {"outcome"}),
    "reminders_api_in_progress": ("gauge", {"kind"}),
    "reminders_api_refused": ("counter", {"kind"}),
    "reminders_scheduler_active": ("gauge", set()),
}
KINDS = {"requests", "callbacks", "monitoring", "streams", "handshakes"}


def test_the_whole_exposition_parses_with_its_families_and_types(
    process: Process, client: TestClient, reader: Headers, writer: Headers
) -> None:
    process.runtime.metrics.count_errors("kannel", ["http_503"])  # as a failed send would
    # As a routed sender's send would; its gauges (in flight, up) are tested with links.
    process.runtime.metrics.observe_links(
        [("mtel", "accepted", 0.04), ("mtel", "transient", 0.002), ("a1", "skipped", None)]
    )
    process.runtime.metrics.count_webhooks(["delivered", "pending"])  # as a webhook thread would
    body = {"to": {"phones": ["0888 402 001"]}, "text": "Hi", "priority": "bulk"}
    assert client.post("/api/v1/messages", json=body, headers=writer).status_code == 201
    latency = "reminders_send_latency_seconds_count"
    wait_for(
        lambda: sample(client.get("/metrics", headers=reader).text, latency, lane="bulk") == 1,
        what="the message's latency",
    )
    response = client.get("/metrics", headers=reader)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")

    found = families(response.text)
    assert {name: family.type for name, family in found.items()} == {
        name: kind for name, (kind, _) in FAMILIES.items()
    }
    for name, (_, labels) in FAMILIES.items():
        assert found[name].samples, f"{name} has no samples"
        for each in found[name].samples:
            bucket = each.name.endswith("_bucket")
            assert set(each.labels) == labels | ({"le"} if bucket else set()), each
    in_progress = {s.labels["kind"]: s.value for s in found["reminders_api_in_progress"].samples}
    # This very scrape is the one caller in progress.
    assert in_progress == {kind: int(kind == "monitoring") for kind in KINDS}
    refused = {s.labels["kind"]: s.value for s in found["reminders_api_refused"].samples}
    assert refused == dict.fromkeys(KINDS, 0)
    assert {s.name for s in found["reminders_send_latency_seconds"].samples} == {
        f"reminders_send_latency_seconds_{end}" for end in ("bucket", "sum", "count")
    }
    errors = "reminders_gateway_errors_total"
    assert sample(response.text, errors, provider="kannel", code="http_503") == 1


def test_two_apps_in_one_process_each_report_their_own(
    process: Process, client: TestClient, reader: Headers
) -> None:
    """Each app has a registry of its own: a second app neither clashes with the first nor
    reports the first one's scheduler."""
    other = create_app(
        process.runtime, NoticeScheduler(process.runtime.engine), run_scheduler=False
    )
    with TestClient(other) as other_client:
        mine, theirs = (c.get("/metrics", headers=reader).text for c in (client, other_client))
    assert sample(mine, "reminders_scheduler_active") == 1
    assert sample(theirs, "reminders_scheduler_active") == 0
    assert other.state.metrics is not process.app.state.metrics
    assert "reminders_notices" not in families(generate_latest(REGISTRY).decode())


def test_a_provider_sees_every_account_labelled_and_an_account_its_own(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    """The notices' families carry ``account``; what a scrape holds depends on its key, and
    each form parses as Prometheus reads it."""
    provider = make_key(engine, "provider")
    made = client.post("/api/v1/accounts", json={"slug": "clinic-a"}, headers=provider)
    assert made.status_code == 201, made.text
    clinic = make_key(engine, "write", "clinic-a")
    later = (utcnow() + timedelta(hours=1)).isoformat()
    for headers, phones in ((writer, ["0888 403 001"]), (clinic, ["0888 403 002", "0888 403 003"])):
        body = {"to": {"phones": phones}, "text": "Hi", "send_at": later}
        assert client.post("/api/v1/messages", json=body, headers=headers).status_code == 201

    def scrape(headers: Headers) -> dict[str, Metric]:
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 200, response.text
        return families(response.text)

    def by_account(found: dict[str, Metric], name: str) -> dict[tuple[str, str], float]:
        return {
            (s.labels["account"], s.labels.get("status") or s.labels["lane"]): s.value
            for s in found[name].samples
        }

    everyone = scrape(provider)
    assert by_account(everyone, "reminders_notices") == {
        ("default", "scheduled"): 1,
        ("clinic-a", "scheduled"): 2,
    }
    assert set(by_account(everyone, "reminders_queue_depth")) == {
        (account, lane) for account in ("default", "clinic-a") for lane in ("bulk", "transactional")
    }
    # The process's own numbers are the same for every caller, and carry no account.
    assert [s.labels for s in everyone["reminders_scheduler_active"].samples] == [{}]
    assert {s.labels["kind"] for s in everyone["reminders_api_in_progress"].samples} == KINDS

    assert by_account(scrape(clinic), "reminders_notices") == {("clinic-a", "scheduled"): 2}
    inside = scrape({**provider, "Reminders-Account": "default"})
    assert by_account(inside, "reminders_notices") == {("default", "scheduled"): 1}
    assert {a for a, _ in by_account(inside, "reminders_queue_depth")} == {"default"}
