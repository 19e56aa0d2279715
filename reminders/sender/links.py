"""Several gateway links behind one sender: routing by lane and number, fallback, at most once.

A message's route is the links that serve its lane and its number: the longest matching prefix
first (a link with no prefixes takes any number, after those that name one), ties in the order
of ``REMINDERS_LINKS``. It goes to the first; if that link fails transiently (the request surely
never reached the gateway) or is down, it goes to the next. An ambiguous failure (the gateway
may have the message) ends there: trying another link could send it twice. A permanent one
(an invalid number) ends there too: another link would refuse it as well.

Each link keeps at most ``concurrency`` requests in flight (a pool of threads of its own that
calls its sender's ``send``), and at most ``rate`` messages a second when it has one, shared by
every process through Redis when the service has it, the transactional lane first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

import redis
from sqlalchemy.engine import Engine

from reminders.metrics import LinkTry, SendMetrics
from reminders.models import Priority
from reminders.sender import registry
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError
from reminders.sender.link_pool import COOL_OFF, DOWN_AFTER, LinkHealth, LinkPool
from reminders.sender.link_settings import VARIABLE, LinkSpec, read_links
from reminders.sender.rate import SendRate, make_rate
from reminders.settings import ROUTED, Settings, SettingsError

log = logging.getLogger(__name__)

Result = Accepted | SendError


@dataclass
class Link:
    """One gateway link: a sender of its own and what it may carry, how fast."""

    name: str
    sender: Sender
    concurrency: int = 1  # requests in flight
    rate: SendRate = field(default_factory=SendRate)  # messages a second; SendRate(): no limit
    lanes: frozenset[str] = frozenset(lane.value for lane in Priority)
    prefixes: tuple[str, ...] = ()  # none: any number
    down_after: int = DOWN_AFTER  # transient failures in a row that make it down
    cool_off: float = COOL_OFF  # seconds it is then left alone

    def match(self, sms: OutgoingSms) -> int | None:
        """How well this link fits ``sms``: its longest prefix that ``sms.to`` starts with (0
        for a link of any number), or None if it does not serve it."""
        if sms.lane not in self.lanes:
            return None
        if not self.prefixes:
            return 0
        lengths = [len(p) for p in self.prefixes if sms.to.startswith(p)]
        return max(lengths) if lengths else None


class RoutedSender(Sender):
    """Spreads messages over ``links`` (built from ``REMINDERS_LINKS`` when not given)."""

    name = ROUTED

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        links: Sequence[Link] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, engine)
        self._redis: redis.Redis | None = None
        self.links = list(links) if links is not None else self._build(settings, engine)
        if not self.links:
            raise SettingsError("Invalid setting REMINDERS_LINKS: names no link.")
        # A batch big enough to keep every link's requests in flight twice over; results are
        # recorded per batch, so this is also how many outcomes a crash may leave unknown.
        in_flight = sum(x.concurrency for x in self.links)
        self.batch_size = min(500, max(Sender.batch_size, 2 * in_flight))
        self.metrics = SendMetrics()  # the process's own, once ``process.build`` sets it
        self._health = {
            x.name: LinkHealth(x.name, down_after=x.down_after, cool_off=x.cool_off, clock=clock)
            for x in self.links
        }
        self._pools = {x.name: LinkPool(x.name, x.concurrency) for x in self.links}

    def _build(self, settings: Settings, engine: Engine) -> list[Link]:
        specs = read_links(settings)
        if settings.redis_url and any(spec.rate for spec in specs):
            self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        links: list[Link] = []
        try:
            for spec in specs:
                links.append(self._make_link(spec, engine))
        except BaseException:
            for link in links:
                link.sender.close()
            raise
        return links

    def _make_link(self, spec: LinkSpec, engine: Engine) -> Link:
        try:
            sender = registry.load(spec.sender)(spec.settings, engine)
        except SettingsError as exc:
            # The sender names the top-level variable it checked; the operator set the link's.
            raise SettingsError(
                str(exc).replace("REMINDERS_", f"{VARIABLE}{spec.name.upper()}_", 1)
            ) from None
        except Exception as exc:
            raise SettingsError(
                f"Invalid setting {VARIABLE}{spec.name.upper()}_SENDER: the sender "
                f"{spec.sender!r} of the link {spec.name} cannot start: {exc}"
            ) from None
        # Namespaced per link: every process that sends on a link shares its budget.
        prefix = f"{spec.settings.redis_prefix}link:{spec.name}:"
        return Link(
            name=spec.name,
            sender=sender,
            concurrency=spec.concurrency,
            rate=make_rate(spec.rate, self._redis, prefix=prefix),
            lanes=spec.lanes,
            prefixes=spec.prefixes,
            down_after=spec.down_after,
            cool_off=spec.cool_off,
        )

    def route(self, sms: OutgoingSms) -> list[Link]:
        """The links ``sms`` may take, in the order they are tried."""
        fits = [(fit, i, x) for i, x in enumerate(self.links) if (fit := x.match(sms)) is not None]
        return [x for _, _, x in sorted(fits, key=lambda t: (-t[0], t[1]))]

    def send(self, sms: OutgoingSms) -> Accepted:
        result = self.send_many([sms])[0]
        if isinstance(result, SendError):
            raise result
        return result

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Result]:
        """Each message through its route; one result per message, in order. Each link's
        share goes through its own pool; a message its link failed transiently is handed to
        the next link as soon as that answer comes, not after the batch."""
        results: list[Result | None] = [None] * len(messages)
        routes = [self.route(sms) for sms in messages]
        tries: list[LinkTry] = []  # appended to by the pools' threads (list.append is atomic)
        # Each answer is taken where it lands, on the link's thread, and the caller is woken
        # once, when the last one is in: waiting on the futures instead woke it for nearly
        # every answer and set up a waiter on every future still out each time, the lanes'
        # largest CPU cost per message after the database.
        left = [len(messages)]
        failure: list[BaseException] = []
        lock = threading.Lock()
        finished = threading.Event()

        def settle(index: int, result: Result) -> None:
            results[index] = result
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    finished.set()

        def landed(index: int, step: int, future: Future[Result | None]) -> None:
            try:
                result = future.result()
                onward = result is None or (isinstance(result, SendError) and result.transient)
                if onward and step + 1 < len(routes[index]):
                    start(index, step + 1)
                    return
                assert result is not None  # the last link of a route is never skipped
            except BaseException as exc:  # a bug: raised to the caller, as ``_send`` expects
                failure.append(exc)
                finished.set()
                return
            settle(index, result)

        def start(index: int, step: int) -> None:
            link, sms = routes[index][step], messages[index]
            last = step == len(routes[index]) - 1
            future = self._pools[link.name].submit(
                sms.lane, lambda: self._try(link, sms, last, tries)
            )
            future.add_done_callback(lambda done: landed(index, step, done))

        if not messages:
            return []
        for index, route in enumerate(routes):
            if route:
                start(index, 0)
            else:
                sms = messages[index]
                reason = f"no link serves {sms.to} in the {sms.lane} lane"
                settle(index, SendError(reason, permanent=True, code="no_route"))
        finished.wait()
        if failure:
            raise failure[0]
        self._count(tries)
        return [r for r in results if r is not None]

    def _try(self, link: Link, sms: OutgoingSms, last: bool, tries: list[LinkTry]) -> Result | None:
        """One try of ``sms`` on ``link``; None if skipped because the link is down (never the
        last link of a route: a message with nowhere else to go tries its last one). Its
        outcome and the gateway's time to answer go to ``tries``."""
        health = self._health[link.name]
        if not last and health.is_down():
            tries.append((link.name, "skipped", None))
            return None
        link.rate.acquire(sms.lane, 1)
        started = time.perf_counter()
        try:
            accepted = link.sender.send(sms)
        except SendError as exc:
            error = SendError(
                exc.message,
                permanent=exc.permanent,
                code=exc.code,
                ambiguous=exc.ambiguous,
                link=link.name,
                provider=link.sender.name,
            )
            tries.append((link.name, self._failed(link, health, sms, error, last), _since(started)))
            return error
        except Exception as exc:  # a sender bug must not stop the others' messages
            log.exception("link %s raised while sending notice %s", link.name, sms.notice_id)
            error = SendError(
                f"{type(exc).__name__}: {exc}",
                permanent=True,
                link=link.name,
                provider=link.sender.name,
            )
            tries.append((link.name, self._failed(link, health, sms, error, last), _since(started)))
            return error
        health.answered()
        tries.append((link.name, "accepted", _since(started)))
        log.debug("notice %s went through link %s", sms.notice_id, link.name)
        return replace(accepted, link=link.name, provider=link.sender.name)

    def _failed(
        self, link: Link, health: LinkHealth, sms: OutgoingSms, error: SendError, last: bool
    ) -> str:
        """Note a failed try on ``link``'s health and in the log; its outcome for the metrics."""
        if error.transient:
            health.failed()
            if not last:
                log.info(
                    "notice %s: link %s failed (%s); trying the next link of its route",
                    sms.notice_id,
                    link.name,
                    error.message,
                )
            return "transient"
        if error.ambiguous:
            # No answer: the link is in trouble, but the message may be out. Never elsewhere.
            health.failed()
            log.warning(
                "notice %s: link %s may have taken it (%s); not tried on another link",
                sms.notice_id,
                link.name,
                error.message,
            )
            return "unknown"
        # Refused for good (a bad number): says nothing of the link's health either way.
        return "failed"

    def _count(self, tries: list[LinkTry]) -> None:
        try:
            self.metrics.observe_links(tries)
        except Exception:
            log.exception("counting the link metrics failed")

    def states(self) -> list[tuple[str, int, bool]]:
        """Each link as this process sees it now: ``(name, requests in flight, up)``."""
        return [
            (x.name, self._pools[x.name].in_flight, not self._health[x.name].is_down())
            for x in self.links
        ]

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        for link in self.links:
            link.sender.close()
        if self._redis is not None:
            self._redis.close()


def _since(started: float) -> float:
    return time.perf_counter() - started
