"""Fetch a user's iCalendar feed without letting its URL reach into our own network (SSRF).

Every host name is resolved here and every address it resolves to is checked; the request is
then sent to the checked address itself, so a second, different DNS answer (rebinding) cannot
send it elsewhere. Redirects are followed by hand so that each hop is checked the same way.

Feed URLs usually carry a secret token in their path or query, so no message and no log line
made here contains either: they use `redact_url`.

Webhooks (``reminders/webhooks/posting.py``) send their POSTs through the same guard: the
address checks, the watchdog and the requester here are shared, not copied.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any

import httpx

Resolver = Callable[[str, int], list[str]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "reminders-feed-fetcher/0.1"
# Letters, digits, hyphens and the underscores some real DNS names carry; anything else in a
# host (a percent sign, a space) is a trick or a typo and would only fail later.
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
# The setting that lets each kind of outgoing URL reach private networks, named in refusals.
PRIVATE_FEEDS = "REMINDERS_ALLOW_PRIVATE_FEEDS"


class FetchError(Exception):
    """The feed could not be fetched; str(exc) is one sentence for the user.

    It never includes the URL's path or query: feed URLs are secrets.
    """


class AddressRefused(FetchError):
    """The host is, or resolves to, a private or local address: trying again will not help."""


@dataclass(frozen=True)
class FetchResult:
    """What one fetch brought back; keep etag and last_modified for the next conditional fetch."""

    not_modified: bool
    body: bytes | None
    etag: str | None
    last_modified: str | None
    final_url: str


def normalize_feed_url(url: str) -> str:
    """Return the URL to fetch: webcal:// and webcals:// become https://, the fragment goes.

    Raises ValueError with a sentence for the user when the scheme is not http, https, webcal
    or webcals, when there is no valid host, or when the URL carries a user name or password
    (credentials in feed URLs end up in logs and are not ours to keep).
    """
    return normalize_http_url(url, noun="The feed address", webcal=True)


def normalize_http_url(url: str, *, noun: str, webcal: bool = False) -> str:
    """`url` as ``normalize_feed_url`` reads it, for any outgoing URL; `noun` starts each
    refusal ("The webhook URL"); webcal:// and webcals:// are read as https:// if `webcal`."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL:
        raise ValueError(f"{noun} is not a valid URL.") from None
    if webcal and parsed.scheme in ("webcal", "webcals"):
        # Calendar apps mean "this is a feed", not "use plain HTTP"; https is the safe reading.
        parsed = parsed.copy_with(scheme="https")
    elif parsed.scheme not in ("http", "https"):
        also = ", http:// or webcal://" if webcal else " or http://"
        raise ValueError(f"{noun} must start with https://{also}.")
    if parsed.userinfo:
        raise ValueError(f"{noun} must not contain a user name or password.")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ValueError(f"{noun} has no host name.")
    if not (_HOST_NAME.fullmatch(host) or _ip_literal(host)):
        raise ValueError(f"{noun} has an invalid host name.")
    return str(parsed.copy_with(fragment=None))


def redact_url(url: str) -> str:
    """Return scheme://host[:port]/… with path, query and userinfo removed, for messages and logs.

    The trailing "…" says that a path or query was dropped; it is "/" alone when there was none.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(an invalid address)"
    if not parsed.host:
        return "(an address without a host)"
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    port = f":{parsed.port}" if parsed.port is not None else ""
    tail = "/…" if parsed.path not in ("", "/") or parsed.query else "/"
    return f"{parsed.scheme}://{host}{port}{tail}"


def fetch_feed(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    allow_private: bool = False,
    max_bytes: int = 20 * 1024 * 1024,
    timeout: float = 30.0,
    max_redirects: int = 3,
    resolver: Resolver | None = None,
    transport: httpx.BaseTransport | None = None,
) -> FetchResult:
    """Fetch the feed at `url` (a conditional GET when etag or last_modified is given).

    `timeout` bounds each connect and read and also the whole fetch: a server that drips its
    headers or body slowly is cut off once `timeout` seconds have passed since the start. Name
    lookups are the exception, bounded only by the system resolver's own limits.
    `transport` is for tests; it is closed when the fetch ends. Raises FetchError.
    """
    deadline = time.monotonic() + timeout
    try:
        current = httpx.URL(normalize_feed_url(url))
    except ValueError as exc:
        raise FetchError(str(exc)) from None
    headers = {"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.1"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    # A jar that accepts nothing: a cookie set by one hop must not ride along to the next host.
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    redirects = 0
    with (
        Watchdog(deadline) as watchdog,
        httpx.Client(
            transport=transport or httpx.HTTPTransport(retries=0),
            follow_redirects=False,
            # No proxies from the environment: the request must go to the address checked here.
            trust_env=False,
            cookies=no_cookies,
            timeout=httpx.Timeout(timeout),
        ) as client,
    ):
        requester = Requester(
            resolver=resolver or system_resolver,
            allow_private=allow_private,
            watchdog=watchdog,
            timeout=timeout,
            headers=headers,
        )
        while True:
            shown = redact_url(str(current))
            try:
                response = requester.open(client, current, shown)
                try:
                    if response.status_code in REDIRECT_STATUSES:
                        if redirects >= max_redirects:
                            raise FetchError("too many redirects")
                        redirects += 1
                        current = _redirect_target(current, response)
                        continue
                    if response.status_code == 304:
                        # A 304 may omit the validators; the caller's ones still hold then.
                        return FetchResult(
                            not_modified=True,
                            body=None,
                            etag=response.headers.get("ETag", etag),
                            last_modified=response.headers.get("Last-Modified", last_modified),
                            final_url=str(current),
                        )
                    if not 200 <= response.status_code < 300:
                        raise FetchError(_status_message(response.status_code))
                    body = _read_body(response, max_bytes, watchdog, shown)
                    return FetchResult(
                        not_modified=False,
                        body=body,
                        etag=response.headers.get("ETag"),
                        last_modified=response.headers.get("Last-Modified"),
                        final_url=str(current),
                    )
                finally:
                    response.close()
            except httpx.HTTPError as exc:
                # Past the deadline, whatever broke (a timeout, a socket the watchdog shut down)
                # broke because of it.
                if watchdog.expired():
                    raise FetchError(_too_slow_message(shown)) from None
                raise FetchError(_transport_message(exc, shown)) from None


class Watchdog:
    """Shuts down every connection of one fetch at its deadline, whatever it is waiting for.

    Timeouts bound each wait, not their sum: a server dripping its headers one byte at a time
    would otherwise hold the fetch for hours. Shutting the socket down wakes the blocked read.
    httpcore's "trace" request extension hands over each socket as soon as it is connected.

    Its timer thread starts with the first socket: a webhook sent over a kept-open connection
    connects nothing, and starting a thread per POST cost more than the POST. Such a request is
    bounded by its per-wait timeouts (each no longer than what is left) and ``expired``.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()

    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self.deadline

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: keep each socket once connected, and again once TLS wraps it."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        sock = info["return_value"].get_extra_info("socket")
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            if not self._timer.is_alive() and not self._fired:
                self._timer.start()
            if self._fired or self.expired():  # connected just as time ran out
                self._fired = True
                _shut_down(sock)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            for sock in self._sockets:
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown even for TLS: SSLSocket's own would also drop its TLS
        # state under the reading thread. A socket already closed raises, and needs nothing.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


@dataclass(frozen=True)
class Requester:
    """What every request of one fetch shares: how to resolve, what is allowed, the watchdog.

    A webhook's POST sets `method` and `content`, and `keep_alive` when its client serves one
    host alone (so a pooled connection can only ever be that host's).
    """

    resolver: Resolver
    allow_private: bool
    watchdog: Watchdog
    timeout: float
    headers: dict[str, str]
    method: str = "GET"
    content: bytes | None = None
    keep_alive: bool = False
    private_setting: str = PRIVATE_FEEDS

    def open(self, client: httpx.Client, url: httpx.URL, shown: str) -> httpx.Response:
        """Send the request for `url` to one of its checked addresses; the body is left unread."""
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = _checked_addresses(
            host, port, self.resolver, self.allow_private, shown, self.private_setting
        )
        # The URL names the checked address; the Host header and the TLS name keep the real
        # host, so virtual hosting works and the certificate is verified against the name.
        # "Connection: close" so that no pooled connection made for one host (same address,
        # other TLS name) serves a later hop for another.
        headers = {**self.headers, "Host": url.netloc.decode("ascii")}
        if not self.keep_alive:
            headers["Connection"] = "close"
        extensions: dict[str, Any] = {"trace": self.watchdog.trace}
        if url.scheme == "https" and not _ip_literal(host):
            extensions["sni_hostname"] = host
        last_error: httpx.TransportError | None = None
        for address in addresses:
            remaining = self.watchdog.deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(_too_slow_message(shown))
            request = client.build_request(
                self.method,
                url.copy_with(host=address),
                headers=headers,
                content=self.content,
                extensions=extensions,
                timeout=min(self.timeout, remaining),
            )
            try:
                return client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # One dead address (often an IPv6 one) should not fail the feed: try the next.
                last_error = exc
        assert last_error is not None  # _checked_addresses never returns an empty list
        raise last_error


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host`, each once, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_feed_address(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> None:
    """Refuse a feed URL whose host is, or resolves to, a non-public address (when registered).

    The same check every fetch makes, done early so that the user hears of it at once rather
    than at the first sync. A host that does not resolve at all is let through: a name server
    may be down for a moment, and the sync records the error on the source if it stays so.
    Raises ValueError with a sentence for the user.
    """
    check_address(
        normalize_feed_url(url),
        allow_private=allow_private,
        resolver=resolver,
        private_setting=PRIVATE_FEEDS,
    )


def check_address(
    url: str, *, allow_private: bool, private_setting: str, resolver: Resolver | None = None
) -> None:
    """``check_feed_address`` for any normalised http(s) URL; refusals name `private_setting`."""
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    shown = redact_url(str(parsed))
    try:
        addresses = _resolved(host, port, resolver or system_resolver, shown)
    except FetchError:
        return
    try:
        _refuse_private(addresses, allow_private, shown, private_setting)
    except FetchError as exc:
        raise ValueError(str(exc)) from None


def _checked_addresses(
    host: str, port: int, resolver: Resolver, allow_private: bool, shown: str, setting: str
) -> list[str]:
    """Resolve `host` (an IP literal stands for itself) and refuse it if any address is not public.

    Every address must pass, not just the first: the connection may fall back to any of them,
    and a name that mixes public and private addresses is a classic way around a first-only check.
    """
    addresses = _resolved(host, port, resolver, shown)
    _refuse_private(addresses, allow_private, shown, setting)
    return addresses


def _resolved(host: str, port: int, resolver: Resolver, shown: str) -> list[str]:
    """The addresses of `host` (an IP literal stands for itself); FetchError if there are none."""
    if _ip_literal(host):
        return [host]
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError):
        addresses = []
    # Anything but IP addresses (a stub's mistake) would only fail later, less clearly.
    if not addresses or not all(_ip_literal(a) for a in addresses):
        raise FetchError(f"the host name of {shown} could not be found")
    return addresses


def _refuse_private(addresses: list[str], allow_private: bool, shown: str, setting: str) -> None:
    if not allow_private and not all(_is_public_address(a) for a in addresses):
        # The address itself is left out: it would tell a user about our internal network.
        raise AddressRefused(
            f"{shown} points to a private or local network address, which is refused unless "
            f"{setting} is true"
        )


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_public_address(address: str) -> bool:
    """Whether a connection to `address` stays on the public internet."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # ::ffff:a.b.c.d reaches the IPv4 host a.b.c.d; judge it as that host.
            candidates = [ip.ipv4_mapped]
        elif ip.sixtofour is not None:
            # 6to4 (2002::/16) carries an IPv4 address too; Python < 3.12.4 calls it global.
            candidates.append(ip.sixtofour)
    return all(
        c.is_global and not (c.is_multicast or c.is_reserved or c.is_unspecified)
        for c in candidates
    )


def _redirect_target(current: httpx.URL, response: httpx.Response) -> httpx.URL:
    """The next URL: Location resolved against the current URL and normalised like user input."""
    location = response.headers.get("Location")
    if not location:
        raise FetchError(f"{redact_url(str(current))} sent a redirect without a destination")
    try:
        return httpx.URL(normalize_feed_url(str(current.join(location))))
    except (httpx.InvalidURL, ValueError):
        raise FetchError("the feed redirected to an address that cannot be fetched") from None


def _read_body(response: httpx.Response, max_bytes: int, watchdog: Watchdog, shown: str) -> bytes:
    """Read the body, stopping as soon as it is over `max_bytes` or past the deadline."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(_too_large_message(max_bytes))
    chunks: list[bytes] = []
    size = 0
    # Decoded bytes are counted, so a small gzip body that inflates hugely is cut off too.
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(_too_large_message(max_bytes))
        if watchdog.expired():
            raise FetchError(_too_slow_message(shown))
        chunks.append(chunk)
    if watchdog.expired():
        # A body that ends with its connection (no Content-Length) also "ends" when the
        # watchdog shuts the socket down: what arrived then is a truncated feed.
        raise FetchError(_too_slow_message(shown))
    return b"".join(chunks)


def _too_slow_message(shown: str) -> str:
    return f"{shown} took too long to send the feed"


def _too_large_message(max_bytes: int) -> str:
    megabytes = max_bytes / (1024 * 1024)
    if megabytes < 0.1:
        return f"the feed is larger than {max_bytes} bytes"
    return f"the feed is larger than {f'{megabytes:.1f}'.removesuffix('.0')} MB"


def _status_message(status: int) -> str:
    # The standard phrase, not the server's own: that text is the server's to choose.
    return f"the server answered {status} {httpx.codes.get_reason_phrase(status)}".rstrip()


def _transport_message(exc: httpx.HTTPError, shown: str) -> str:
    """A short reason for a network failure; httpx's own text can be long or technical."""
    if isinstance(exc, httpx.TimeoutException):
        return f"{shown} did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect to {shown}{_connect_reason(exc)}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{shown} closed the connection or did not answer in valid HTTP"
    if isinstance(exc, httpx.DecodingError):
        return f"{shown} sent a compressed feed that could not be decoded"
    return f"could not fetch the feed from {shown}"


def _connect_reason(exc: BaseException) -> str:
    """The operating system's or TLS's reason behind a connect error, in brackets, or ""."""
    cause: BaseException | None = exc
    for _ in range(8):  # chains are short; the bound only guards against a cycle
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f" (its certificate is not valid: {cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return " (the secure connection failed)"
        if isinstance(cause, OSError) and cause.strerror:
            return f" ({cause.strerror.lower()})"
        # httpx and httpcore chain their wrappers by cause or by context, depending on the path.
        cause = cause.__cause__ or cause.__context__
    return ""
