"""One webhook POST, through the feed fetcher's guard against our own network (SSRF).

Every host is resolved and every address checked, the request goes to the checked address, and
a redirect (307 or 308, the ones that keep a POST a POST) is checked the same way: see
``reminders/sources/fetch.py``, whose requester and watchdog this uses. Any other redirect is
an answer, not followed. Connections are kept open between deliveries, one pool per host, so
that a connection made for one host name never carries another's request.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Final

import httpx

from reminders.sources.fetch import (
    AddressRefused,
    FetchError,
    Requester,
    Resolver,
    Watchdog,
    normalize_http_url,
    redact_url,
    system_resolver,
)

PRIVATE_WEBHOOKS: Final = "REMINDERS_ALLOW_PRIVATE_WEBHOOKS"
USER_AGENT: Final = "reminders-webhooks/0.1"
KEPT: Final = 1024  # the answer's first 1 KB goes into the delivery log
DRAINED: Final = 64 * 1024  # read past the kept part so that the connection can serve again
_FOLLOWED: Final = frozenset({307, 308})


@dataclass(frozen=True)
class Answer:
    """What one attempt brought back: a status (None: no answer), or the error instead."""

    status_code: int | None
    response: str | None
    error: str | None
    latency_ms: int
    retry_after: float | None = None  # seconds, from a 429's or 503's Retry-After
    refused: bool = False  # the address is a private one: trying again will not help


def normalize_webhook_url(url: str) -> str:
    """The URL to POST to (http or https, no credentials, no fragment); ValueError saying why."""
    return normalize_http_url(url, noun="The webhook URL")


class Poster:
    """POSTs deliveries; one per worker thread (its connections are its own)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float = 10.0,
        max_redirects: int = 3,
        resolver: Resolver | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.resolver = resolver or system_resolver
        self._transport = transport
        self._clients: dict[str, httpx.Client] = {}
        self._urls: dict[str, httpx.URL] = {}  # each endpoint's URL, normalised once

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._urls.clear()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST ``body`` to ``url`` within ``timeout`` seconds in all; never raises for the
        network or the peer."""
        started = time.monotonic()
        try:
            status, kept, retry_after = self._post(url, body, headers, started)
        except AddressRefused as exc:
            return Answer(None, None, str(exc), _since(started), refused=True)
        except FetchError as exc:
            return Answer(None, None, str(exc), _since(started))
        return Answer(status, kept, None, _since(started), retry_after)

    def _post(
        self, url: str, body: bytes, headers: dict[str, str], started: float
    ) -> tuple[int, str, float | None]:
        current = self._urls.get(url)
        if current is None:
            try:
                current = httpx.URL(normalize_webhook_url(url))
            except ValueError as exc:
                raise FetchError(str(exc)) from None
            if len(self._urls) >= 1000:  # URLs changed many times: start again
                self._urls.clear()
            self._urls[url] = current
        with Watchdog(started + self.timeout) as watchdog:
            for _ in range(self.max_redirects + 1):
                shown = redact_url(str(current))
                requester = Requester(
                    resolver=self.resolver,
                    allow_private=self.allow_private,
                    watchdog=watchdog,
                    timeout=self.timeout,
                    headers={"User-Agent": USER_AGENT, **headers},
                    method="POST",
                    content=body,
                    keep_alive=True,
                    private_setting=PRIVATE_WEBHOOKS,
                )
                try:
                    response = requester.open(self._client(current), current, shown)
                    try:
                        if response.status_code in _FOLLOWED and "Location" in response.headers:
                            current = _redirect_target(current, response)
                            continue
                        kept = _read(response, watchdog)
                        return response.status_code, kept, _retry_after(response)
                    finally:
                        response.close()
                except httpx.HTTPError as exc:
                    if watchdog.expired() or isinstance(exc, httpx.TimeoutException):
                        raise FetchError(f"{shown} did not answer within the timeout") from None
                    raise FetchError(f"{shown}: {_network_reason(exc)}") from None
        raise FetchError("too many redirects")

    def _client(self, url: httpx.URL) -> httpx.Client:
        """The client of ``url``'s host (scheme, name and port)."""
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        client = self._clients.get(origin)
        if client is None:
            client = httpx.Client(
                transport=self._transport or httpx.HTTPTransport(retries=0),
                follow_redirects=False,
                trust_env=False,  # no proxy: the request must go to the address checked
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                timeout=httpx.Timeout(self.timeout),
            )
            self._clients[origin] = client
        return client


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _read(response: httpx.Response, watchdog: Watchdog) -> str:
    """The answer's first ``KEPT`` bytes, as text; the rest is drained (up to a limit) so the
    connection can be used again, and anything longer closes it."""
    kept = bytearray()
    size = 0
    for chunk in response.iter_raw():
        if len(kept) < KEPT:
            kept.extend(chunk[: KEPT - len(kept)])
        size += len(chunk)
        if size > DRAINED or watchdog.expired():
            break
    return kept.decode("utf-8", errors="replace")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the peer asked us to wait (a number of seconds or an HTTP date), if it did."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _redirect_target(current: httpx.URL, response: httpx.Response) -> httpx.URL:
    try:
        return httpx.URL(normalize_webhook_url(str(current.join(response.headers["Location"]))))
    except (httpx.InvalidURL, ValueError):
        raise FetchError("the endpoint redirected to an address that cannot be used") from None


def _network_reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "closed the connection or did not answer in valid HTTP"
    return "the request failed"
