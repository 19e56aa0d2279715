"""Counters of what the senders did, for ``/metrics``: send latency and gateway errors.

Notices by status and queue depth are read from the database when scraped. Latency and errors
happen in whichever process fires notices, which with several instances is not the one
Prometheus scrapes; so with Redis configured the counters live in one Redis hash that every
instance adds to and any instance reports. Alone, they live in the process.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence

import redis

log = logging.getLogger(__name__)

# Seconds from the moment a notice fell due to the gateway's acceptance. The brief promises
# transactional messages within seconds, so the buckets are fine below 10 s.
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800)


def _labels(**labels: str) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class SendMetrics:
    """Kept in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: defaultdict[str, float] = defaultdict(float)

    def observe_sent(self, lane: str, latencies: Sequence[float]) -> None:
        if latencies:
            self._add(_latency_fields(lane, latencies))

    def count_errors(self, provider: str, codes: Iterable[str | None]) -> None:
        fields: defaultdict[str, float] = defaultdict(float)
        for code in codes:
            fields[f"errors|{provider}|{code or 'unknown'}"] += 1
        if fields:
            self._add(fields)

    def _add(self, fields: dict[str, float]) -> None:
        with self._lock:
            for field, amount in fields.items():
                self._values[field] += amount

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)

    def render(self) -> list[str]:
        """Prometheus text lines for the latency histogram and the error counter."""
        return render(self.snapshot())


class RedisSendMetrics(SendMetrics):
    """Kept in one Redis hash shared by every instance; in the process while Redis is away."""

    def __init__(self, client: redis.Redis, *, key: str) -> None:
        super().__init__()
        self._client = client
        self._key = key

    def _add(self, fields: dict[str, float]) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            for field, amount in fields.items():
                if field.startswith("latency_sum|"):
                    pipe.hincrbyfloat(self._key, field, amount)
                else:
                    pipe.hincrby(self._key, field, int(amount))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: Redis unreachable (%s); counting in this process", exc)
            super()._add(fields)

    def snapshot(self) -> dict[str, float]:
        local = super().snapshot()
        try:
            shared = self._client.hgetall(self._key)
        except redis.RedisError:
            return local
        merged: defaultdict[str, float] = defaultdict(float, local)
        for field, value in shared.items():  # type: ignore[union-attr]
            name = field.decode() if isinstance(field, bytes) else str(field)
            merged[name] += float(value)
        return dict(merged)


def _latency_fields(lane: str, latencies: Sequence[float]) -> dict[str, float]:
    fields: defaultdict[str, float] = defaultdict(float)
    for seconds in latencies:
        seconds = max(seconds, 0.0)
        for bound in LATENCY_BUCKETS:
            if seconds <= bound:
                fields[f"latency|{lane}|{bound}"] += 1
        fields[f"latency_sum|{lane}"] += seconds
        fields[f"latency_count|{lane}"] += 1
    return fields


def render(values: dict[str, float]) -> list[str]:
    lines = [
        "# HELP reminders_send_latency_seconds From a notice falling due to its gateway's "
        "acceptance.",
        "# TYPE reminders_send_latency_seconds histogram",
    ]
    lanes = sorted({f.split("|")[1] for f in values if f.startswith("latency_count|")})
    for lane in lanes:
        for bound in LATENCY_BUCKETS:
            count = values.get(f"latency|{lane}|{bound}", 0)
            labels = _labels(lane=lane, le=f"{bound:g}")
            lines.append(f"reminders_send_latency_seconds_bucket{labels} {count:g}")
        total = values.get(f"latency_count|{lane}", 0)
        lines.append(
            f"reminders_send_latency_seconds_bucket{_labels(lane=lane, le='+Inf')} {total:g}"
        )
        lines.append(
            f"reminders_send_latency_seconds_sum{_labels(lane=lane)} "
            f"{values.get(f'latency_sum|{lane}', 0):.6f}"
        )
        lines.append(f"reminders_send_latency_seconds_count{_labels(lane=lane)} {total:g}")
    lines += [
        "# HELP reminders_gateway_errors_total Sends the gateway refused or failed, by code.",
        "# TYPE reminders_gateway_errors_total counter",
    ]
    for field in sorted(f for f in values if f.startswith("errors|")):
        _, provider, code = field.split("|", 2)
        labels = _labels(provider=provider, code=code)
        lines.append(f"reminders_gateway_errors_total{labels} {values[field]:g}")
    return lines


def make_metrics(client: redis.Redis | None, *, prefix: str) -> SendMetrics:
    return SendMetrics() if client is None else RedisSendMetrics(client, key=f"{prefix}metrics")
