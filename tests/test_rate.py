"""The global send rate: bulk keeps to it, transactional jumps ahead, Redis shares it."""

from __future__ import annotations

import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.engine import Engine

from reminders.models import NoticeStatus
from reminders.scheduler.firing import fire_many
from reminders.sender.outbox import OutboxSender
from reminders.sender.rate import LocalRate, RedisRate, SendRate, make_rate
from reminders.settings import Settings, SettingsError, load_settings
from tests.conftest import REDIS_URL, wait_for
from tests.test_scheduler import make_notices, status_of

pytestmark = pytest.mark.slow  # real processes and clocks: not in the fast tier


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bulk_keeps_to_the_rate() -> None:
    clock = Clock()
    rate = LocalRate(10, clock=clock)
    assert rate._try("bulk", 1) == 0
    assert rate._try("bulk", 1) == pytest.approx(0.1)
    clock.now += 0.1
    assert rate._try("bulk", 5) == 0
    # Five messages spent half a second of budget: the next bulk batch waits for all of it.
    assert rate._try("bulk", 1) == pytest.approx(0.5)
    clock.now += 0.5
    assert rate._try("bulk", 1) == 0


def test_transactional_goes_first_and_bulk_pays_for_it() -> None:
    clock = Clock()
    rate = LocalRate(10, clock=clock, lead=1.0)
    assert rate._try("bulk", 2) == 0
    assert rate._try("bulk", 1) > 0  # bulk must wait 0.2 s...
    assert rate._try("transactional", 1) == 0  # ...an alert does not
    # Alerts may borrow up to one second of budget, then they wait too.
    assert rate._try("transactional", 8) == 0
    assert rate._try("transactional", 1) == pytest.approx(0.1)
    # Bulk now waits until everything borrowed has been paid back.
    assert rate._try("bulk", 1) == pytest.approx(1.1)


def test_unlimited_never_waits() -> None:
    rate = SendRate()
    assert rate.slice_size(200) == 200
    assert all(rate.acquire("bulk", 1000) for _ in range(100))


def test_slices_are_a_fifth_of_a_second_of_budget() -> None:
    assert LocalRate(200).slice_size(20) == 20
    assert LocalRate(200).slice_size(500) == 40
    assert LocalRate(3).slice_size(20) == 1


def test_acquire_gives_up_when_stopped() -> None:
    clock = Clock()
    rate = LocalRate(0.001, clock=clock)  # one message every 1,000 s
    assert rate.acquire("bulk", 1)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert rate.acquire("bulk", 1, stop) is False


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LocalRate(0)
    for bad in ("0", "-5", "fast"):
        with pytest.raises(SettingsError, match="REMINDERS_SEND_RATE"):
            load_settings(send_rate=bad)
    assert load_settings(send_rate="200").send_rate == 200


def test_redis_shares_the_budget_between_instances(redis_key: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    # One message per 100 s, alerts may borrow 150 s: generous margins for a slow machine.
    first = RedisRate(0.01, client, key=redis_key, lead=150)
    second = RedisRate(0.01, redis.Redis.from_url(REDIS_URL), key=redis_key, lead=150)
    assert first._try("bulk", 1) == 0
    assert 90 < second._try("bulk", 1) <= 100  # the other instance spent the budget
    assert second._try("transactional", 1) == 0  # 100 s ahead is within the alert's lead
    assert 40 < first._try("transactional", 1) <= 50  # now 200 s ahead: 50 s past the lead
    assert 190 < first._try("bulk", 1) <= 200


def test_redis_down_falls_back_to_a_local_rate(redis_key: str) -> None:
    # Not retried: redis-py's default three tries with back-off take 4 s to fail.
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    rate = RedisRate(0.01, dead, key=redis_key)
    assert rate._try("bulk", 1) == 0
    assert rate._try("bulk", 1) > 90


def test_make_rate_picks_the_kind() -> None:
    assert type(make_rate(None, None, prefix="x:")) is SendRate
    assert type(make_rate(5, None, prefix="x:")) is LocalRate
    shared = make_rate(5, redis.Redis.from_url(REDIS_URL), prefix="x:")
    assert isinstance(shared, RedisRate) and shared._key == "x:send-rate"


def test_a_stopped_firing_leaves_the_rest_due(engine: Engine, settings: Settings) -> None:
    """Waiting for the budget happens before the claim: nothing is left "sending"."""
    ids = make_notices(engine, ["0888 500 001", "0888 500 002", "0888 500 003"])
    rate = LocalRate(0.001)  # the first message spends the budget for 1,000 s
    stop = threading.Event()

    def stop_once_the_first_is_sent() -> None:  # while the firing waits for the budget
        try:
            wait_for(lambda: status_of(engine, ids[0]) == NoticeStatus.sent, what="the first")
        finally:
            stop.set()

    threading.Thread(target=stop_once_the_first_is_sent, daemon=True).start()
    sender = OutboxSender(settings, engine)
    outcomes = fire_many(engine, sender, ids, settings=settings, rate=rate, stop=stop)
    assert outcomes == {ids[0]: "sent"}
    assert [status_of(engine, i) for i in ids[1:]] == [NoticeStatus.due] * 2
