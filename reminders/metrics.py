"""What ``/metrics`` reports, as ``prometheus_client`` collectors in a registry of each app's own.

Notices by status and queue depth are read from the database when scraped (``NoticeMetrics``),
per account: a scrape shows the caller's account, or every account for a provider key.
Send latency and gateway errors happen in whichever process fires notices, which with several
instances is not the one Prometheus scrapes; so with Redis configured those counters live in one
Redis hash that every instance adds to and any instance reports (``RedisSendMetrics``). Alone,
they live in the process. The API's admission counters are its gates' (``api/admission.py``).

Collectors, not ``Counter`` objects: every value already lives somewhere (the database, Redis,
the gates), and a scrape reads it from there. Each app has its own ``CollectorRegistry``, never
the global one, so that tests and several apps in one process do not clash.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders.accounts.scoping import scoped_session
from reminders.db import utcnow
from reminders.models import Account, Priority
from reminders.stats import queue_depth, status_counts

log = logging.getLogger(__name__)

# Seconds from the moment a notice fell due to the gateway's acceptance. The brief promises
# transactional messages within seconds, so the buckets are fine below 10 s.
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800)
# Seconds a gateway link takes to answer one request: Kannel with a dlr-url about 40 ms, a
# hosted API a few hundred; its 10 s timeout ends the scale.
LINK_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# One try of a message on a link: its outcome, and how long the gateway took to answer (None
# when the link was skipped, down, and never asked).
LinkTry = tuple[str, str, float | None]


class SendMetrics:
    """Send latency and gateway errors, kept in this process; a collector for ``/metrics``."""

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

    def observe_links(self, tries: Iterable[LinkTry]) -> None:
        """Tries of messages on gateway links, each ``(link, outcome, seconds)``: accepted,
        failed, transient, unknown, or skipped (the link was down, and the message went on to
        the next of its route). Added in one go: one Redis round trip for a whole batch."""
        fields: defaultdict[str, float] = defaultdict(float)
        for link, outcome, seconds in tries:
            fields[f"link|{link}|{outcome}"] += 1
            if seconds is not None:
                seconds = max(seconds, 0.0)
                for bound in LINK_BUCKETS:
                    if seconds <= bound:
                        fields[f"link_latency|{link}|{bound}"] += 1
                fields[f"link_latency_sum|{link}"] += seconds
                fields[f"link_latency_count|{link}"] += 1
        if fields:
            self._add(fields)

    def count_webhooks(self, outcomes: Iterable[str]) -> None:
        """Webhook attempts by what followed: delivered, failed (for good) or retrying."""
        fields: defaultdict[str, float] = defaultdict(float)
        for outcome in outcomes:
            fields[f"webhook|{'retrying' if outcome == 'pending' else outcome}"] += 1
        if fields:
            self._add(fields)

    def _add(self, fields: dict[str, float]) -> None:
        with self._lock:
            for field, amount in fields.items():
                self._values[field] += amount

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)

    def describe(self) -> list[Metric]:
        return _send_families({})

    def collect(self) -> list[Metric]:
        return _send_families(self.snapshot())


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
                if field.partition("|")[0].endswith("_sum"):  # seconds, not a count
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
    """Hash fields to add: the buckets are stored cumulative, as Prometheus reads them."""
    fields: defaultdict[str, float] = defaultdict(float)
    for seconds in latencies:
        seconds = max(seconds, 0.0)
        for bound in LATENCY_BUCKETS:
            if seconds <= bound:
                fields[f"latency|{lane}|{bound}"] += 1
        fields[f"latency_sum|{lane}"] += seconds
        fields[f"latency_count|{lane}"] += 1
    return fields


def _histogram(
    values: dict[str, float],
    prefix: str,
    bounds: Sequence[float],
    name: str,
    documentation: str,
    label: str,
) -> HistogramMetricFamily:
    """A histogram from the stored fields ``<prefix>|<label>|<bound>`` (cumulative buckets),
    ``<prefix>_count|<label>`` and ``<prefix>_sum|<label>``."""
    family = HistogramMetricFamily(name, documentation, labels=[label])
    count, total = f"{prefix}_count|", f"{prefix}_sum|"
    for key in sorted({f.split("|")[1] for f in values if f.startswith(count)}):
        # ``le`` as it always was ("1", not "1.0"), so that queries naming a bucket still match.
        buckets = [(f"{b:g}", values.get(f"{prefix}|{key}|{b}", 0.0)) for b in bounds]
        buckets.append(("+Inf", values.get(count + key, 0.0)))
        family.add_metric([key], buckets, sum_value=values.get(total + key, 0.0))
    return family


def _send_families(values: dict[str, float]) -> list[Metric]:
    latency = _histogram(
        values,
        "latency",
        LATENCY_BUCKETS,
        "reminders_send_latency_seconds",
        "From a notice falling due to its gateway's acceptance.",
        "lane",
    )
    errors = _counters(
        values,
        "errors|",
        "reminders_gateway_errors",
        "Sends the gateway refused or failed, by code.",
        ["provider", "code"],
    )
    webhooks = _counters(
        values,
        "webhook|",
        "reminders_webhook_deliveries",
        "Webhook attempts by outcome: delivered, failed (not retried, or retries ran out), "
        "retrying.",
        ["outcome"],
    )
    return [latency, errors, *_link_families(values), webhooks]


def _link_families(values: dict[str, float]) -> list[Metric]:
    """Each gateway link's tries (REMINDERS_LINKS): sent, errors by kind, skipped, latency."""
    sent = CounterMetricFamily(
        "reminders_link_sent", "Messages each gateway link accepted.", labels=["link"]
    )
    errors = CounterMetricFamily(
        "reminders_link_errors",
        "Tries on each gateway link that failed: failed (refused for good), transient (never "
        "reached it: the next link of the route takes the message), unknown (no answer).",
        labels=["link", "kind"],
    )
    skipped = CounterMetricFamily(
        "reminders_link_skipped",
        "Messages that passed a link while it was down, on to the next of their route.",
        labels=["link"],
    )
    for field in sorted(f for f in values if f.startswith("link|")):
        link, outcome = field.removeprefix("link|").split("|", 1)
        if outcome == "accepted":
            sent.add_metric([link], values[field])
        elif outcome == "skipped":
            skipped.add_metric([link], values[field])
        else:
            errors.add_metric([link, outcome], values[field])
    latency = _histogram(
        values,
        "link_latency",
        LINK_BUCKETS,
        "reminders_link_latency_seconds",
        "How long each gateway link took to answer a request, whatever the answer.",
        "link",
    )
    return [sent, errors, skipped, latency]


class LinkGauges:
    """This process's view of its gateway links, read at each scrape: requests in flight and
    whether each link is up (``read`` gives ``(link, in_flight, up)``)."""

    def __init__(self, read: Callable[[], Iterable[tuple[str, int, bool]]]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return self._families([])

    def collect(self) -> list[Metric]:
        return self._families(list(self._read()))

    @staticmethod
    def _families(states: list[tuple[str, int, bool]]) -> list[Metric]:
        in_flight = GaugeMetricFamily(
            "reminders_link_in_flight",
            "Requests this process has in flight on each gateway link.",
            labels=["link"],
        )
        up = GaugeMetricFamily(
            "reminders_link_up",
            "1 while this process sends on the link, 0 while it holds the link down after "
            "failures in a row.",
            labels=["link"],
        )
        for link, busy, is_up in states:
            in_flight.add_metric([link], busy)
            up.add_metric([link], 1 if is_up else 0)
        return [in_flight, up]


def _counters(
    values: dict[str, float], prefix: str, name: str, documentation: str, labels: list[str]
) -> CounterMetricFamily:
    """A counter family from the stored fields ``<prefix><label>|<label>``."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    for field in sorted(f for f in values if f.startswith(prefix)):
        family.add_metric(field.removeprefix(prefix).split("|", 1), values[field])
    return family


def make_metrics(client: redis.Redis | None, *, prefix: str) -> SendMetrics:
    return SendMetrics() if client is None else RedisSendMetrics(client, key=f"{prefix}metrics")


class NoticeMetrics:
    """Notices by status and queue depth per lane, read from the database at each scrape, each
    labelled with its account (``account="clinic-a"``).

    What a scrape shows depends on who asks (``visible_to``): an account's key sees its own
    account's numbers, a provider key every account's. So these are not in the app's registry,
    which holds what is the same for every caller (the process's gauges and counters).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def visible_to(self, account_id: int | None) -> AccountNotices:
        """The collector for one scrape: ``account_id``'s notices, or every account's (None)."""
        return AccountNotices(self._engine, account_id)


class AccountNotices:
    """One scrape's notice counts: one account's, or every account's."""

    def __init__(self, engine: Engine, account_id: int | None) -> None:
        self._engine = engine
        self._account_id = account_id

    def describe(self) -> list[Metric]:
        return _notice_families({}, {}, {})

    def collect(self) -> list[Metric]:
        # A session scoped to the account counts its rows alone, as a request's does.
        with scoped_session(self._engine, self._account_id) as session:
            slugs = account_slugs(session, self._account_id)
            statuses = status_counts(session)
            depth = queue_depth(session, utcnow())
        return _notice_families(slugs, statuses, depth)


def account_slugs(session: Session, account_id: int | None) -> dict[int, str]:
    """The slugs of the accounts a scrape shows: one, or all (accounts belong to none)."""
    query = select(Account.id, Account.slug)
    if account_id is not None:
        query = query.where(Account.id == account_id)
    return {row_id: slug for row_id, slug in session.exec(query) if row_id is not None}


def _notice_families(
    slugs: dict[int, str], statuses: dict[tuple[int, str], int], depth: dict[tuple[int, str], int]
) -> list[Metric]:
    notices = GaugeMetricFamily(
        "reminders_notices", "Notices by account and status.", labels=["account", "status"]
    )
    for (account_id, status), count in sorted(statuses.items()):
        if account_id in slugs:
            notices.add_metric([slugs[account_id], status], count)
    queue = GaugeMetricFamily(
        "reminders_queue_depth",
        "Notices due and not yet handed to the gateway, by account and lane.",
        labels=["account", "lane"],
    )
    # Every lane of every account shown, 0 included: an alert on a lane needs its series.
    for account_id, slug in sorted(slugs.items()):
        for lane in Priority:
            queue.add_metric([slug, lane.value], depth.get((account_id, lane.value), 0))
    return [notices, queue]


class SchedulerMetrics:
    """Whether this process fires notices: the same for every caller."""

    def __init__(self, active: Callable[[], bool]) -> None:
        self._active = active

    def describe(self) -> list[Metric]:
        return [_scheduler_family(None)]

    def collect(self) -> list[Metric]:
        return [_scheduler_family(self._active())]


def _scheduler_family(active: bool | None) -> Metric:
    return GaugeMetricFamily(
        "reminders_scheduler_active",
        "1 if this process runs the scheduler now.",
        value=None if active is None else int(active),
    )


class Scrape:
    """What one ``/metrics`` answer shows: the app's registry and the caller's notices."""

    def __init__(self, registry: CollectorRegistry, notices: AccountNotices) -> None:
        self._registry = registry
        self._notices = notices

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
        yield from self._notices.collect()


def metrics_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry of one app's own; registering checks that no two collectors share a name."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry
