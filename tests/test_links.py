"""Several gateway links: configuration, routing, fallback at most once, concurrency, rates, and
the link each attempt records, end to end through real HTTP gateways."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from reminders.process import build
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError
from reminders.sender.link_pool import LinkPool
from reminders.sender.link_settings import read_links
from reminders.sender.links import Link, RoutedSender
from reminders.sender.rate import LocalRate, RedisRate
from reminders.settings import Settings, SettingsError, load_settings
from tests.conftest import REDIS_URL, wait_for
from tests.http_gateway import SECRET, Gateway
from tests.test_panel import add_user, sign_in

Headers = dict[str, str]
BOTH = frozenset({"transactional", "bulk"})


def sms(to: str = "+359888100200", lane: str = "bulk", notice_id: int = 1) -> OutgoingSms:
    return OutgoingSms(notice_id=notice_id, to=to, text="Hi", sender_id=None, lane=lane)


class Fake(Sender):
    """A sender that does what ``behave`` says and remembers whom it was asked to send to."""

    name = "fake"

    def __init__(self, behave: Callable[[OutgoingSms], Accepted] | None = None) -> None:
        super().__init__(load_settings(), None)  # type: ignore[arg-type]
        self.behave = behave or (lambda m: Accepted(provider_message_id=f"id-{m.notice_id}"))
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def send(self, sms: OutgoingSms) -> Accepted:
        with self._lock:
            self.sent.append(sms.to)
        return self.behave(sms)


def raising(**error: Any) -> Callable[[OutgoingSms], Accepted]:
    def behave(_: OutgoingSms) -> Accepted:
        raise SendError("gateway trouble", **error)

    return behave


TRANSIENT = {"permanent": False, "code": "network"}
AMBIGUOUS = {"permanent": True, "ambiguous": True, "code": "timeout"}


def routed(*links: Link, **options: Any) -> RoutedSender:
    return RoutedSender(load_settings(), None, links=links, **options)  # type: ignore[arg-type]


@pytest.fixture
def closing() -> Iterator[list[RoutedSender]]:
    made: list[RoutedSender] = []
    yield made
    for sender in made:
        sender.close()


# Configuration ---------------------------------------------------------------------------


MTEL_A1 = {
    "REMINDERS_LINK_MTEL_SENDER": "kannel",
    "REMINDERS_LINK_MTEL_KANNEL_URL": "http://mtel:13013/cgi-bin/sendsms",
    "REMINDERS_LINK_MTEL_RATE": "100",
    "REMINDERS_LINK_MTEL_CONCURRENCY": "16",
    "REMINDERS_LINK_MTEL_LANES": "transactional,bulk",
    "REMINDERS_LINK_MTEL_PREFIXES": "+35988,+35989",
    "REMINDERS_LINK_MTEL_DOWN_AFTER": "5",
    "REMINDERS_LINK_MTEL_COOL_OFF": "12.5",
    "REMINDERS_LINK_A1_SENDER": "kannel",
    "REMINDERS_LINK_A1_KANNEL_URL": "http://a1:13013/cgi-bin/sendsms",
    "REMINDERS_LINK_A1_KANNEL_MAX_PARTS": "3",
}


def test_links_are_read_in_order_each_with_its_own_settings() -> None:
    settings = load_settings(
        links="mtel,A1", kannel_username="u", kannel_password="p", send_rate=500
    )
    assert settings.sender == "links"  # REMINDERS_LINKS alone picks the routed sender
    mtel, a1 = read_links(settings, MTEL_A1)
    assert (mtel.name, mtel.sender, mtel.rate, mtel.concurrency) == ("mtel", "kannel", 100, 16)
    assert mtel.lanes == BOTH and mtel.prefixes == ("+35988", "+35989")
    assert mtel.settings.kannel_url == "http://mtel:13013/cgi-bin/sendsms"
    assert mtel.settings.kannel_max_parts == 10
    assert (a1.name, a1.rate, a1.concurrency, a1.prefixes) == ("a1", None, 4, ())
    assert (mtel.down_after, mtel.cool_off) == (5, 12.5)
    assert (a1.down_after, a1.cool_off) == (3, 30.0)  # the defaults
    assert a1.settings.kannel_url == "http://a1:13013/cgi-bin/sendsms"
    assert a1.settings.kannel_max_parts == 3
    # What a link does not replace is the deployment's: the Kannel user, for one.
    assert a1.settings.kannel_username == "u" and a1.settings.links is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"REMINDERS_LINK_VIVA_SENDER": "kannel"},
            "Invalid setting REMINDERS_LINK_VIVA_SENDER: 'viva' is not a link of "
            "REMINDERS_LINKS (mtel, a1).",
        ),
        (
            {"REMINDERS_LINK_MTEL_SENDER": "kanel"},
            "Invalid setting REMINDERS_LINK_MTEL_SENDER: 'kanel' is not a known sender "
            "(console, http, kannel, outbox, twilio).",
        ),
        (
            {"REMINDERS_LINK_MTEL_SENDER": "links"},
            "Invalid setting REMINDERS_LINK_MTEL_SENDER: 'links' is not a known sender "
            "(console, http, kannel, outbox, twilio).",
        ),
        (
            {"REMINDERS_LINK_A1_SENDER": ""},
            "Invalid setting REMINDERS_LINK_A1_SENDER: the link a1 needs a sender, such as kannel.",
        ),
        (
            {"REMINDERS_LINK_MTEL_RATE": "-5"},
            "Invalid setting REMINDERS_LINK_MTEL_RATE: Input should be greater than 0.",
        ),
        (
            {"REMINDERS_LINK_A1_KANNEL_MAX_PARTS": "many"},
            "Invalid setting REMINDERS_LINK_A1_KANNEL_MAX_PARTS: Input should be a valid "
            "integer, unable to parse string as an integer.",
        ),
        (
            {"REMINDERS_LINK_A1_KANNEL_ULR": "http://a1/"},
            "Invalid setting REMINDERS_LINK_A1_KANNEL_ULR: a link has no setting 'kannel_ulr'.",
        ),
        (
            {"REMINDERS_LINK_A1_DATABASE_URL": "sqlite:///other.db"},
            "Invalid setting REMINDERS_LINK_A1_DATABASE_URL: a link has no setting 'database_url'.",
        ),
        (
            {"REMINDERS_LINK_MTEL_CONCURRENCY": "0"},
            "Invalid setting REMINDERS_LINK_MTEL_CONCURRENCY: must be a whole number of "
            "requests in flight, 1 to 512.",
        ),
        (
            {"REMINDERS_LINK_MTEL_DOWN_AFTER": "0"},
            "Invalid setting REMINDERS_LINK_MTEL_DOWN_AFTER: must be a whole number of "
            "transient failures in a row, 1 to 1000.",
        ),
        (
            {"REMINDERS_LINK_A1_COOL_OFF": "soon"},
            "Invalid setting REMINDERS_LINK_A1_COOL_OFF: must be seconds a down link is left "
            "alone, above 0 and at most 3600.",
        ),
        (
            {"REMINDERS_LINK_A1_COOL_OFF": "0"},
            "Invalid setting REMINDERS_LINK_A1_COOL_OFF: must be seconds a down link is left "
            "alone, above 0 and at most 3600.",
        ),
        (
            {"REMINDERS_LINK_MTEL_LANES": "urgent"},
            "Invalid setting REMINDERS_LINK_MTEL_LANES: must name lanes among bulk, transactional.",
        ),
        (
            {"REMINDERS_LINK_MTEL_PREFIXES": "35988"},
            "Invalid setting REMINDERS_LINK_MTEL_PREFIXES: '35988' is not the start of an "
            "E.164 number such as +35988.",
        ),
        (
            {"REMINDERS_LINK_MTEL_LANES": "bulk", "REMINDERS_LINK_A1_LANES": "bulk"},
            "Invalid setting REMINDERS_LINKS: no link serves the transactional lane; add it "
            "to one link's REMINDERS_LINK_<NAME>_LANES.",
        ),
    ],
)
def test_a_bad_link_variable_stops_start_up_in_one_line(
    change: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        read_links(load_settings(links="mtel,a1"), MTEL_A1 | change)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"links": "mtel,a1", "sender": "kannel"},
            "Invalid setting REMINDERS_SENDER: 'kannel' contradicts REMINDERS_LINKS; name each "
            "link's sender in REMINDERS_LINK_<NAME>_SENDER and leave REMINDERS_SENDER unset.",
        ),
        (
            {"sender": "links"},
            "Invalid setting REMINDERS_SENDER: 'links' needs REMINDERS_LINKS, the links' names.",
        ),
        ({"links": "mtel,MTEL"}, "Invalid setting REMINDERS_LINKS: names a link twice."),
        (
            {"links": "mtel,a_1"},
            "Invalid setting REMINDERS_LINKS: 'a_1' is not a link name (letters and digits, "
            "such as mtel or a1).",
        ),
    ],
)
def test_contradictory_links_settings_stop_start_up(given: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**given)
    assert str(caught.value) == message


def test_a_links_sender_that_cannot_start_names_the_links_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REMINDERS_LINKS", "mtel")
    monkeypatch.setenv("REMINDERS_LINK_MTEL_SENDER", "kannel")
    with pytest.raises(SettingsError) as caught:
        RoutedSender(load_settings(), None)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "Invalid setting REMINDERS_LINK_MTEL_KANNEL_URL: the kannel sender needs it."
    )


def test_without_links_the_one_sender_is_built_as_before(database_url: str, engine: Engine) -> None:
    plain = build(load_settings(database_url=database_url, sender="console"), engine)
    try:
        assert plain.runtime.sender.name == "console"
        assert not isinstance(plain.runtime.sender, RoutedSender)
    finally:
        plain.scheduler.shutdown(wait=True)


def test_one_sender_with_several_requests_in_flight_is_the_link_called_default(
    database_url: str, engine: Engine
) -> None:
    settings = load_settings(database_url=database_url, sender="console", send_concurrency=6)
    one = build(settings, engine)
    try:
        sender = one.runtime.sender
        assert isinstance(sender, RoutedSender)
        [link] = sender.links
        assert (link.name, link.sender.name, link.concurrency) == ("default", "console", 6)
        assert sender.batch_size == 20  # twice the requests in flight, at least the default
        [accepted] = sender.send_many([sms()])
        assert isinstance(accepted, Accepted)
        assert (accepted.link, accepted.provider) == ("default", "console")
    finally:
        one.scheduler.shutdown(wait=True)
        one.runtime.sender.close()


def test_each_links_rate_is_shared_through_its_own_redis_key(
    monkeypatch: pytest.MonkeyPatch, closing: list[RoutedSender]
) -> None:
    for name, value in {
        "REMINDERS_LINKS": "mtel,a1",
        "REMINDERS_REDIS_URL": REDIS_URL,
        "REMINDERS_REDIS_PREFIX": "deploy1:",
        "REMINDERS_LINK_MTEL_SENDER": "console",
        "REMINDERS_LINK_MTEL_RATE": "100",
        "REMINDERS_LINK_A1_SENDER": "console",
        "REMINDERS_LINK_A1_RATE": "30",
    }.items():
        monkeypatch.setenv(name, value)
    sender = RoutedSender(load_settings(), None)  # type: ignore[arg-type]
    closing.append(sender)
    mtel, a1 = sender.links
    assert isinstance(mtel.rate, RedisRate) and isinstance(a1.rate, RedisRate)
    assert (mtel.rate._key, mtel.rate.rate) == ("deploy1:link:mtel:send-rate", 100)
    assert (a1.rate._key, a1.rate.rate) == ("deploy1:link:a1:send-rate", 30)


# Routing and fallback --------------------------------------------------------------------


def test_the_route_is_the_longest_prefix_first_then_the_order_of_the_links(
    closing: list[RoutedSender],
) -> None:
    mtel = Link("mtel", Fake(), prefixes=("+35988", "+35989"))
    a1 = Link("a1", Fake())
    bg = Link("bg", Fake(), lanes=frozenset({"transactional"}), prefixes=("+359",))
    sender = routed(a1, bg, mtel)
    closing.append(sender)

    def names(message: OutgoingSms) -> list[str]:
        return [link.name for link in sender.route(message)]

    assert names(sms("+359888100200", "bulk")) == ["mtel", "a1"]
    assert names(sms("+359888100200", "transactional")) == ["mtel", "bg", "a1"]
    assert names(sms("+359878100200", "transactional")) == ["bg", "a1"]
    assert names(sms("+447700900123", "bulk")) == ["a1"]


def test_messages_go_by_their_route_and_come_back_in_order(closing: list[RoutedSender]) -> None:
    mtel_sender, a1_sender = Fake(), Fake()
    mtel = Link("mtel", mtel_sender, concurrency=3, prefixes=("+35988",))
    a1 = Link("a1", a1_sender, concurrency=2)
    sender = routed(mtel, a1)
    closing.append(sender)
    numbers = [f"+3598{8 if i % 2 else 7}810020{i}" for i in range(10)]
    results = sender.send_many([sms(n, notice_id=i) for i, n in enumerate(numbers)])
    assert [r.provider_message_id for r in results if isinstance(r, Accepted)] == [
        f"id-{i}" for i in range(10)
    ]
    assert [r.link for r in results if isinstance(r, Accepted)] == [
        "mtel" if i % 2 else "a1" for i in range(10)
    ]
    assert all(isinstance(r, Accepted) and r.provider == "fake" for r in results)
    assert sorted(mtel_sender.sent) == sorted(numbers[1::2])
    assert sorted(a1_sender.sent) == sorted(numbers[0::2])


def test_a_number_no_link_serves_fails_for_good(closing: list[RoutedSender]) -> None:
    sender = routed(Link("mtel", Fake(), prefixes=("+35988",)))
    closing.append(sender)
    [result] = sender.send_many([sms("+447700900123")])
    assert isinstance(result, SendError) and result.permanent and result.code == "no_route"


def test_a_transient_failure_goes_on_to_the_next_link(closing: list[RoutedSender]) -> None:
    mtel_sender, a1_sender = Fake(raising(**TRANSIENT)), Fake()
    sender = routed(Link("mtel", mtel_sender), Link("a1", a1_sender))
    closing.append(sender)
    [result] = sender.send_many([sms()])
    assert isinstance(result, Accepted) and result.link == "a1"
    assert mtel_sender.sent == ["+359888100200"] and a1_sender.sent == ["+359888100200"]


@pytest.mark.parametrize("error", [AMBIGUOUS, {"permanent": True, "code": "invalid_number"}])
def test_an_ambiguous_or_permanent_failure_is_never_tried_on_another_link(
    error: dict[str, Any], closing: list[RoutedSender]
) -> None:
    mtel_sender, a1_sender = Fake(raising(**error)), Fake()
    sender = routed(Link("mtel", mtel_sender), Link("a1", a1_sender))
    closing.append(sender)
    [result] = sender.send_many([sms()])
    assert isinstance(result, SendError) and result.link == "mtel" and result.provider == "fake"
    assert result.ambiguous is error.get("ambiguous", False) and result.code == error["code"]
    assert a1_sender.sent == []  # at most once: the message may already be on its way


def test_a_transient_failure_on_the_last_link_is_returned(closing: list[RoutedSender]) -> None:
    sender = routed(
        Link("mtel", Fake(raising(**TRANSIENT))), Link("a1", Fake(raising(**TRANSIENT)))
    )
    closing.append(sender)
    [result] = sender.send_many([sms()])
    assert isinstance(result, SendError) and result.transient and result.link == "a1"


def test_a_link_down_is_skipped_until_its_cool_off_ends(closing: list[RoutedSender]) -> None:
    now = [0.0]
    failing = [True]

    def mtel_behaves(message: OutgoingSms) -> Accepted:
        if failing[0]:
            raise SendError("connection refused", **TRANSIENT)
        return Accepted(provider_message_id="m")

    mtel_sender, a1_sender = Fake(mtel_behaves), Fake()
    sender = routed(
        Link("mtel", mtel_sender, down_after=2, cool_off=30),
        Link("a1", a1_sender),
        clock=lambda: now[0],
    )
    closing.append(sender)

    def via() -> str | None:
        [result] = sender.send_many([sms()])
        assert isinstance(result, Accepted)
        return result.link

    assert [via(), via()] == ["a1", "a1"]
    assert len(mtel_sender.sent) == 2  # two failures in a row: down now
    assert [via(), via()] == ["a1", "a1"]
    assert len(mtel_sender.sent) == 2  # skipped, not tried
    now[0] = 29.0
    assert via() == "a1" and len(mtel_sender.sent) == 2
    now[0] = 30.5  # the cool-off is over: tried again, fails, down again at once
    assert via() == "a1" and len(mtel_sender.sent) == 3
    assert via() == "a1" and len(mtel_sender.sent) == 3
    failing[0] = False
    now[0] = 61.0
    assert via() == "mtel" and via() == "mtel"  # back up
    assert len(mtel_sender.sent) == 5 and len(a1_sender.sent) == 7
    counts = sender.metrics.snapshot()
    assert {k: v for k, v in counts.items() if k.startswith("link|")} == {
        "link|mtel|transient": 3,
        "link|mtel|skipped": 4,
        "link|mtel|accepted": 2,
        "link|a1|accepted": 7,
    }
    # Each try that asked the gateway is timed; a skipped one asked nothing.
    assert counts["link_latency_count|mtel"] == 5 and counts["link_latency_count|a1"] == 7


def test_the_last_link_of_a_route_is_tried_even_when_down(closing: list[RoutedSender]) -> None:
    only = Fake(raising(**TRANSIENT))
    sender = routed(Link("mtel", only, down_after=1, cool_off=300))
    closing.append(sender)
    for _ in range(3):
        [result] = sender.send_many([sms()])
        assert isinstance(result, SendError) and result.transient
    assert len(only.sent) == 3


# Concurrency and rates -------------------------------------------------------------------


def test_a_batch_is_counted_once_and_a_bug_on_a_link_thread_reaches_the_caller(
    closing: list[RoutedSender],
) -> None:
    writes: list[list[tuple[str, str]]] = []
    sender = routed(Link("mtel", Fake(raising(**TRANSIENT))), Link("a1", Fake()))
    closing.append(sender)
    sender.metrics.observe_links = lambda tries: writes.append(  # type: ignore[method-assign]
        sorted((link, outcome) for link, outcome, _ in tries)
    )
    results = sender.send_many([sms(notice_id=i) for i in range(5)])
    assert [r.link for r in results] == ["a1"] * 5
    # One write for the batch: three failures put mtel down, and the last two skipped it.
    assert writes == [
        sorted([("mtel", "transient")] * 3 + [("mtel", "skipped")] * 2 + [("a1", "accepted")] * 5)
    ]

    class Broken(LocalRate):
        def acquire(self, lane: str, count: int, stop: threading.Event | None = None) -> bool:
            raise ZeroDivisionError("a bug in the rate")

    buggy = routed(Link("mtel", Fake(), rate=Broken(10)))
    closing.append(buggy)
    with pytest.raises(ZeroDivisionError, match="a bug in the rate"):
        buggy.send_many([sms(notice_id=i) for i in range(3)])


def test_a_link_keeps_exactly_its_concurrency_in_flight(closing: list[RoutedSender]) -> None:
    lock, gate = threading.Lock(), threading.Event()
    in_flight, most = [0], [0]

    def slow(message: OutgoingSms) -> Accepted:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        gate.wait(10)
        with lock:
            in_flight[0] -= 1
        return Accepted(provider_message_id=str(message.notice_id))

    sender = routed(Link("mtel", Fake(slow), concurrency=4))
    closing.append(sender)
    results: list[Any] = []
    batch = [sms(notice_id=i) for i in range(20)]
    worker = threading.Thread(target=lambda: results.extend(sender.send_many(batch)))
    worker.start()
    wait_for(lambda: in_flight[0] == 4, timeout=5, what="four requests in flight")
    time.sleep(0.1)  # room for a fifth, were the bound not kept
    assert in_flight[0] == 4
    gate.set()
    worker.join(10)
    assert most[0] == 4
    assert [r.provider_message_id for r in results] == [str(i) for i in range(20)]


def test_the_transactional_lane_goes_first_on_a_busy_link() -> None:
    pool = LinkPool("mtel", 1)
    gate, order = threading.Event(), []
    try:
        pool.submit("bulk", lambda: gate.wait(5))
        futures = [
            pool.submit(lane, lambda lane=lane, i=i: order.append(f"{lane}{i}"))
            for i, lane in enumerate(["bulk", "bulk", "transactional", "bulk", "transactional"])
        ]
        gate.set()
        for future in futures:
            future.result(5)
    finally:
        pool.close()
    assert order == ["transactional2", "transactional4", "bulk0", "bulk1", "bulk3"]


def test_a_links_rate_holds_its_share_back_and_not_the_others(
    closing: list[RoutedSender],
) -> None:
    mtel_sender, a1_sender = Fake(), Fake()
    sender = routed(
        Link("mtel", mtel_sender, concurrency=4, rate=LocalRate(50), prefixes=("+35988",)),
        Link("a1", a1_sender, concurrency=4),
    )
    closing.append(sender)
    start = time.monotonic()
    sender.send_many([sms("+359878100200", notice_id=i) for i in range(20)])
    unlimited = time.monotonic() - start
    start = time.monotonic()
    sender.send_many([sms("+359888100200", notice_id=i) for i in range(20)])
    limited = time.monotonic() - start
    # 20 at 50 a second: the first at once, the last 19 intervals of 20 ms later.
    assert 0.36 <= limited < 1.5
    assert unlimited < 0.2
    assert len(mtel_sender.sent) == 20 and len(a1_sender.sent) == 20


# End to end: two in-house gateways on two links -------------------------------------------


@pytest.fixture
def second_gateway() -> Iterator[Gateway]:
    server = Gateway()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def settings(
    database_url: str,
    gateway: Gateway,
    second_gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Settings:
    """Two links: mtel (the first gateway) for +35988 numbers, a1 (the second) for any."""
    mtel_rate = getattr(request, "param", None)
    for name, value in {
        "REMINDERS_LINK_MTEL_SENDER": "http",
        "REMINDERS_LINK_MTEL_HTTP_SENDER_URL": gateway.url,
        "REMINDERS_LINK_MTEL_HTTP_SENDER_SECRET": SECRET,
        "REMINDERS_LINK_MTEL_PREFIXES": "+35988",
        "REMINDERS_LINK_A1_SENDER": "http",
        "REMINDERS_LINK_A1_HTTP_SENDER_URL": second_gateway.url,
        "REMINDERS_LINK_A1_HTTP_SENDER_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    if mtel_rate:
        monkeypatch.setenv("REMINDERS_LINK_MTEL_RATE", str(mtel_rate))
    return load_settings(database_url=database_url, links="mtel,a1", quiet_hours="off")


def send(client: TestClient, writer: Headers, phones: list[str]) -> list[int]:
    body = {"to": {"phones": phones}, "text": "Hi"}
    made = client.post("/api/v1/messages", json=body, headers=writer)
    assert made.status_code == 201, made.text
    return [int(notice["id"]) for notice in made.json()["notices"]]


def detail(client: TestClient, writer: Headers, notice_id: int) -> Any:
    return client.get(f"/api/v1/notices/{notice_id}", headers=writer).json()


def test_each_attempt_records_the_link_that_carried_it(
    client: TestClient,
    writer: Headers,
    gateway: Gateway,
    second_gateway: Gateway,
    engine: Engine,
) -> None:
    mtel_notice, a1_notice = send(client, writer, ["+359888300100", "+359878300100"])
    for notice_id in (mtel_notice, a1_notice):
        wait_for(lambda n=notice_id: detail(client, writer, n)["status"] == "sent", what="sent")
    [mtel_attempt] = detail(client, writer, mtel_notice)["attempts"]
    [a1_attempt] = detail(client, writer, a1_notice)["attempts"]
    assert (mtel_attempt["link"], mtel_attempt["provider"]) == ("mtel", "http")
    assert (a1_attempt["link"], a1_attempt["provider"]) == ("a1", "http")
    assert [m["to"] for m in gateway.received] == ["+359888300100"]
    assert [m["to"] for m in second_gateway.received] == ["+359878300100"]
    add_user(engine, "ana@clinic.bg", role="viewer")
    assert sign_in(client, "ana@clinic.bg").status_code == 303
    page = client.get(f"/notices/{mtel_notice}", headers={"Accept-Language": "en"}).text
    assert "through the link <code>mtel</code>" in page
    metrics = client.get("/metrics", headers=writer).text
    assert 'reminders_link_sent_total{link="mtel"} 1.0' in metrics
    assert 'reminders_link_sent_total{link="a1"} 1.0' in metrics
    assert 'reminders_link_latency_seconds_count{link="mtel"} 1.0' in metrics
    assert 'reminders_link_in_flight{link="mtel"} 0.0' in metrics
    assert 'reminders_link_up{link="a1"} 1.0' in metrics
    assert "reminders_link_errors_total{" not in metrics  # none failed
    ready = client.get("/readyz").json()
    assert ready["links"] == {
        "mtel": {"up": True, "in_flight": 0},
        "a1": {"up": True, "in_flight": 0},
    }
    stats = client.get("/api/v1/stats/links", headers=writer)
    assert stats.status_code == 200, stats.text
    carried = {(x["link"], x["provider"], x["attempts"]) for x in stats.json()["links"]}
    assert carried == {("mtel", "http", 1), ("a1", "http", 1)}
    assert [x["statuses"] for x in stats.json()["links"]] == [{"sent": 1}, {"sent": 1}]


@pytest.mark.parametrize("settings", [20], indirect=True)  # mtel: 20 a second
def test_a_link_stopped_mid_drain_hands_its_messages_to_the_other_none_twice(
    client: TestClient,
    writer: Headers,
    gateway: Gateway,
    second_gateway: Gateway,
) -> None:
    phones = [f"+3598883001{i:02d}" for i in range(60)]  # all mtel's first
    notice_ids = send(client, writer, phones)
    wait_for(lambda: len(gateway.received) >= 10, timeout=10, what="mtel to carry some")
    gateway.httpd.shutdown()  # mtel's gateway goes away: connections refused from now on
    gateway.httpd.server_close()
    assert len(gateway.received) < len(phones), "the drain ended before the link was stopped"

    def all_sent() -> bool:
        return all(detail(client, writer, n)["status"] == "sent" for n in notice_ids)

    wait_for(all_sent, timeout=30, what="every notice to be sent")
    mtel = [m["to"] for m in gateway.received]
    a1 = [m["to"] for m in second_gateway.received]
    assert len(mtel) < len(phones) and a1, (len(mtel), len(a1))
    assert sorted(mtel + a1) == sorted(phones)  # each number once, on one link or the other
    links = {detail(client, writer, n)["attempts"][-1]["link"] for n in notice_ids}
    assert links == {"mtel", "a1"}
    # The metrics tell the story: mtel's refused connections, then mtel held down.
    metrics = client.get("/metrics", headers=writer).text
    assert 'reminders_link_errors_total{kind="transient",link="mtel"}' in metrics
    assert f'reminders_link_sent_total{{link="mtel"}} {len(mtel)}.0' in metrics
    assert f'reminders_link_sent_total{{link="a1"}} {len(a1)}.0' in metrics
    assert 'reminders_link_up{link="mtel"} 0.0' in metrics
    assert client.get("/readyz").json()["links"]["mtel"]["up"] is False
