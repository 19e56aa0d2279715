"""Feed fetching: a real local HTTP(S) server for the network paths, stubs for the SSRF rules.

Nothing here reaches the internet: public names map to public addresses only through resolver
stubs, and requests to them go to an httpx.MockTransport.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from reminders.sources import fetch
from reminders.sources.fetch import (
    FetchError,
    FetchResult,
    fetch_feed,
    normalize_feed_url,
    redact_url,
)
from tests.conftest import wait_for

FEED = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
SECRET = "s3cret-token"
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


# --- a real local server -------------------------------------------------------------------


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[Seen]
    stop: threading.Event
    hung_up: threading.Event  # a client left while an answer was still being sent


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: a body without Content-Length simply ends when the connection closes.
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # the name http.server calls
        self.server.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
        path = self.path.split("?", 1)[0]
        try:
            if path == "/feed.ics":
                self._feed()
            elif path.startswith("/hops/"):
                left = int(path.rsplit("/", 1)[1])
                if left == 0:
                    self._feed()
                else:
                    self._head(302, {"Location": f"/hops/{left - 1}?token={SECRET}"})
            elif path == "/stream":
                self._head(200, {})
                for _ in range(100):
                    self.wfile.write(b"x" * 4096)
            elif path == "/declared":
                self._head(200, {"Content-Length": str(3 * 1024 * 1024)})
                # The body never comes: a client reading it would wait for its read timeout.
                self.server.stop.wait()
            elif path == "/drip-head":
                # Headers one byte at a time: no body loop ever runs to check the clock.
                self._drip(b"HTTP/1.0 200 OK\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n", 0.05)
                self.wfile.write(b"feed")
            elif path == "/drip":
                self._head(200, {})
                self._drip(b"B" * 100, 0.1)
            else:
                self._head(404, {"Content-Length": "9"})
                self.wfile.write(b"not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading on purpose

    def _drip(self, data: bytes, every: float) -> None:
        """Send ``data`` a byte every ``every`` seconds (over 10 s), noting a client that left
        before the last byte."""
        try:
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if self.server.stop.wait(every):
                    return
        except OSError:  # a reset, a broken pipe, or TLS's own words for them
            self.server.hung_up.set()

    def _feed(self) -> None:
        if (
            self.headers.get("If-None-Match") == ETAG
            or self.headers.get("If-Modified-Since") == LAST_MODIFIED
        ):
            self._head(304, {"ETag": ETAG})
            return
        self._head(
            200,
            {
                "Content-Type": "text/calendar",
                "Content-Length": str(len(FEED)),
                "ETag": ETAG,
                "Last-Modified": LAST_MODIFIED,
            },
        )
        self.wfile.write(FEED)

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


@dataclass
class Local:
    port: int
    seen: list[Seen]
    hung_up: threading.Event
    sni: list[str | None] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def _serve(context: ssl.SSLContext | None = None) -> Iterator[Local]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen, server.stop, server.hung_up = [], threading.Event(), threading.Event()
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Local(server.server_address[1], server.seen, server.hung_up)
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def local() -> Iterator[Local]:
    yield from _serve()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- stubs ---------------------------------------------------------------------------------


def resolver_for(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def no_resolver(host: str, port: int) -> list[str]:
    raise AssertionError(f"an IP literal must not be resolved, got {host}")


class Recorder:
    """A MockTransport that records every request and answers with `answer`."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, content=FEED))
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def fetch_public(url: str, addresses: list[str], recorder: Recorder, **kwargs: Any) -> FetchResult:
    """Fetch `url` whose host feeds.example resolves to `addresses`, without any network."""
    resolver = resolver_for({"feeds.example": addresses, "internal.example": ["10.1.2.3"]})
    return fetch_feed(url, resolver=resolver, transport=recorder.transport, **kwargs)


# --- against the real local server ---------------------------------------------------------


def test_feed_with_validators_then_not_modified(local: Local) -> None:
    url = local.url(f"/feed.ics?token={SECRET}")
    first = fetch_feed(url, allow_private=True)
    assert first == FetchResult(False, FEED, ETAG, LAST_MODIFIED, url)

    by_etag = fetch_feed(url, etag=first.etag, allow_private=True)
    assert by_etag == FetchResult(True, None, ETAG, None, url)
    assert local.seen[1].headers["if-none-match"] == ETAG

    # The server sends no Last-Modified with its 304: the caller's value is handed back.
    by_date = fetch_feed(url, last_modified=first.last_modified, allow_private=True)
    assert by_date == FetchResult(True, None, ETAG, LAST_MODIFIED, url)
    assert local.seen[2].headers["if-modified-since"] == LAST_MODIFIED
    assert "if-none-match" not in local.seen[0].headers


def test_loopback_needs_allow_private(local: Local) -> None:
    url = local.url("/feed.ics")
    with pytest.raises(FetchError, match="private or local network address"):
        fetch_feed(url)
    assert local.seen == []  # refused before connecting
    assert fetch_feed(url, allow_private=True).body == FEED


def test_connects_to_the_checked_address_with_the_original_host(local: Local) -> None:
    resolver = resolver_for({"feed.test": ["127.0.0.1"]})
    url = local.url(f"/feed.ics?token={SECRET}", host="feed.test")
    result = fetch_feed(url, allow_private=True, resolver=resolver)
    assert result.body == FEED
    assert result.final_url == url
    assert local.seen[0].headers["host"] == f"feed.test:{local.port}"


def test_default_resolver_and_transport(local: Local) -> None:
    # localhost may come back as ::1 first, where nothing listens: the next address is tried.
    url = local.url("/feed.ics", host="localhost")
    assert fetch_feed(url, allow_private=True).body == FEED
    with pytest.raises(FetchError, match="private or local"):
        fetch_feed(url)


@pytest.mark.parametrize("hops", [1, 3])
def test_redirect_chain_within_the_limit(local: Local, hops: int) -> None:
    result = fetch_feed(local.url(f"/hops/{hops}"), allow_private=True)
    assert result.body == FEED
    assert result.final_url == local.url(f"/hops/0?token={SECRET}")
    assert len(local.seen) == hops + 1


def test_too_many_redirects(local: Local) -> None:
    with pytest.raises(FetchError, match="^too many redirects$"):
        fetch_feed(local.url("/hops/4"), allow_private=True)
    assert len(local.seen) == 4  # the fourth Location is never requested
    with pytest.raises(FetchError, match="^too many redirects$"):
        fetch_feed(local.url("/hops/1"), allow_private=True, max_redirects=0)


def test_streamed_body_over_the_cap(local: Local) -> None:
    with pytest.raises(FetchError, match="^the feed is larger than 10000 bytes$"):
        fetch_feed(local.url("/stream"), allow_private=True, max_bytes=10_000)


def test_declared_length_over_the_cap_is_refused_before_reading(local: Local) -> None:
    # The body never comes: a fetch that tried to read it would end in a timeout instead.
    with pytest.raises(FetchError, match="^the feed is larger than 2 MB$"):
        fetch_feed(local.url("/declared"), allow_private=True, max_bytes=2 * 1024 * 1024)


def test_http_error_status(local: Local) -> None:
    with pytest.raises(FetchError) as caught:
        fetch_feed(local.url(f"/missing?token={SECRET}"), allow_private=True)
    assert str(caught.value) == "the server answered 404 Not Found"


def test_closed_port() -> None:
    port = closed_port()
    with pytest.raises(FetchError) as caught:
        fetch_feed(f"http://127.0.0.1:{port}/private/feed.ics?token={SECRET}", allow_private=True)
    message = str(caught.value)
    assert message == f"could not connect to http://127.0.0.1:{port}/… (connection refused)"


@pytest.mark.slow  # the real clock: the fetch's 1 s deadline
def test_slow_drip_is_cut_off_by_the_overall_deadline(local: Local) -> None:
    # One byte every 0.1 s never trips the read timeout; only the whole-fetch deadline stops it.
    started = time.monotonic()
    with pytest.raises(FetchError, match="took too long to send the feed"):
        fetch_feed(local.url(f"/drip?token={SECRET}"), allow_private=True, timeout=1.0)
    assert time.monotonic() - started >= 1.0  # not before the deadline
    # Cut off mid-drip: a fetch that read the whole feed first would leave no drip unfinished.
    wait_for(local.hung_up.is_set, what="the server to see the fetch hang up mid-drip")


@pytest.mark.slow  # the real clock: the fetch's 1 s deadline
def test_slow_headers_are_cut_off_by_the_overall_deadline(local: Local) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="took too long to send the feed"):
        fetch_feed(local.url("/drip-head"), allow_private=True, timeout=1.0)
    assert time.monotonic() - started >= 1.0
    wait_for(local.hung_up.is_set, what="the server to see the fetch hang up mid-drip")


# --- TLS: the name, not the address, is what the certificate is checked against ------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    # scripts/test installs openssl when it is missing; a missing tool is a failure, not a skip.
    assert shutil.which("openssl"), "openssl is needed to make a test certificate"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=feed.test",
         "-addext", "subjectAltName=DNS:feed.test"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_local(certificate: tuple[Path, Path]) -> Iterator[Local]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    for served in _serve(context):
        served.sni = names
        yield served


def trusting(certificate: tuple[Path, Path]) -> httpx.HTTPTransport:
    return httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(certificate[0])))


def test_https_uses_the_host_name_for_sni_and_verification(
    tls_local: Local, certificate: tuple[Path, Path]
) -> None:
    resolver = resolver_for({"feed.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    url = tls_local.url("/feed.ics", host="feed.test", scheme="https")
    result = fetch_feed(url, allow_private=True, resolver=resolver, transport=trusting(certificate))
    assert result.body == FEED
    assert tls_local.sni == ["feed.test"]
    assert tls_local.seen[0].headers["host"] == f"feed.test:{tls_local.port}"

    # Same address, other name: the certificate does not match it, so the fetch must fail.
    other = tls_local.url(f"/feed.ics?token={SECRET}", host="other.test", scheme="https")
    with pytest.raises(FetchError) as caught:
        fetch_feed(other, allow_private=True, resolver=resolver, transport=trusting(certificate))
    assert str(caught.value).startswith(
        f"could not connect to https://other.test:{tls_local.port}/… (its certificate is not valid"
    )


@pytest.mark.slow  # the real clock: the fetch's 1 s deadline
def test_slow_headers_over_tls_are_cut_off(
    tls_local: Local, certificate: tuple[Path, Path]
) -> None:
    resolver = resolver_for({"feed.test": ["127.0.0.1"]})
    url = tls_local.url("/drip-head", host="feed.test", scheme="https")
    started = time.monotonic()
    with pytest.raises(FetchError, match="took too long to send the feed"):
        fetch_feed(
            url, allow_private=True, resolver=resolver, transport=trusting(certificate), timeout=1
        )
    assert time.monotonic() - started >= 1.0
    wait_for(tls_local.hung_up.is_set, what="the server to see the fetch hang up mid-drip")


# --- SSRF rules, with stubs only -----------------------------------------------------------


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["127.1.2.3"],
        ["::1"],
        ["10.0.0.1"],
        ["172.16.0.1"],
        ["172.31.255.254"],
        ["192.168.1.1"],
        ["169.254.169.254"],
        ["100.64.0.1"],
        ["fc00::1"],
        ["fd12:3456::1"],
        ["fe80::1"],
        ["fe80::1%eth0"],
        ["::ffff:127.0.0.1"],
        ["::ffff:10.0.0.1"],
        ["2002:7f00:1::1"],  # 6to4 wrapping 127.0.0.1
        ["64:ff9b::7f00:1"],  # NAT64 wrapping 127.0.0.1
        ["0.0.0.0"],
        ["::"],
        ["224.0.0.1"],
        ["224.0.1.1"],  # multicast that Python calls global
        ["ff02::1"],
        ["240.0.0.1"],
        ["255.255.255.255"],
        ["198.18.0.1"],
        [PUBLIC_V4, "10.0.0.1"],
        ["192.168.0.10", PUBLIC_V4],
    ],
)
def test_non_public_addresses_are_refused(addresses: list[str]) -> None:
    recorder = Recorder()
    with pytest.raises(FetchError) as caught:
        fetch_public(f"https://feeds.example/cal.ics?token={SECRET}", addresses, recorder)
    assert str(caught.value) == (
        "https://feeds.example/… points to a private or local network address, which is refused "
        "unless REMINDERS_ALLOW_PRIVATE_FEEDS is true"
    )
    assert recorder.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]:8080/feed",
        "http://10.0.0.1/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:80/",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
    ],
)
def test_literal_ip_hosts_are_checked_without_resolving(url: str) -> None:
    recorder = Recorder()
    with pytest.raises(FetchError, match="private or local network address"):
        fetch_feed(url, resolver=no_resolver, transport=recorder.transport)
    assert recorder.requests == []


@pytest.mark.parametrize(
    "addresses, sent_to",
    [
        ([PUBLIC_V4], f"https://{PUBLIC_V4}/cal.ics?token={SECRET}"),
        ([PUBLIC_V6], f"https://[{PUBLIC_V6}]/cal.ics?token={SECRET}"),
        ([f"::ffff:{PUBLIC_V4}"], f"https://[::ffff:{PUBLIC_V4}]/cal.ics?token={SECRET}"),
    ],
)
def test_public_host_is_sent_to_the_checked_address(addresses: list[str], sent_to: str) -> None:
    recorder = Recorder()
    url = f"webcal://feeds.example/cal.ics?token={SECRET}"
    result = fetch_public(url, addresses, recorder)
    assert result.body == FEED
    assert result.final_url == f"https://feeds.example/cal.ics?token={SECRET}"
    [request] = recorder.requests
    assert str(request.url) == sent_to
    assert request.headers["Host"] == "feeds.example"
    assert request.extensions["sni_hostname"] == "feeds.example"


def test_resolver_gets_host_and_port() -> None:
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return [PUBLIC_V4]

    recorder = Recorder()
    fetch_feed("https://münchen.example/f", resolver=resolve, transport=recorder.transport)
    fetch_feed("http://feeds.example:8080/f", resolver=resolve, transport=recorder.transport)
    assert calls == [("xn--mnchen-3ya.example", 443), ("feeds.example", 8080)]
    assert recorder.requests[0].headers["Host"] == "xn--mnchen-3ya.example"
    assert recorder.requests[1].headers["Host"] == "feeds.example:8080"
    assert "sni_hostname" not in recorder.requests[1].extensions  # plain http: no TLS name


def test_next_address_is_tried_when_one_does_not_connect() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC_V6:
            raise httpx.ConnectError("Network is unreachable", request=request)
        return httpx.Response(200, content=FEED)

    recorder = Recorder(answer)
    result = fetch_public("https://feeds.example/f", [PUBLIC_V6, PUBLIC_V4], recorder)
    assert result.body == FEED
    assert [r.url.host for r in recorder.requests] == [PUBLIC_V6, PUBLIC_V4]


def test_unknown_host() -> None:
    with pytest.raises(FetchError) as caught:
        fetch_public(f"https://nowhere.example/f?token={SECRET}", [], Recorder())
    assert str(caught.value) == "the host name of https://nowhere.example/… could not be found"
    with pytest.raises(FetchError, match="could not be found"):
        fetch_public("https://feeds.example/f", [], Recorder())
    with pytest.raises(FetchError, match="could not be found"):
        fetch_public("https://feeds.example/f", ["not-an-address"], Recorder(), allow_private=True)


@pytest.mark.parametrize(
    "location, reason",
    [
        ("http://127.0.0.1/latest", "private or local"),
        ("http://127.0.0.1:8080/x", "private or local"),
        ("http://[::1]/", "private or local"),
        ("http://169.254.169.254/latest/meta-data/", "private or local"),
        ("//internal.example/feed", "private or local"),
        ("https://internal.example/feed", "private or local"),
        ("ftp://feeds.example/cal.ics", "cannot be fetched"),
        ("https://user:pw@feeds.example/cal.ics", "cannot be fetched"),
    ],
)
def test_redirect_to_a_refused_address(location: str, reason: str) -> None:
    recorder = Recorder(lambda request: httpx.Response(302, headers={"Location": location}))
    with pytest.raises(FetchError, match=reason):
        fetch_public(f"https://feeds.example/cal.ics?token={SECRET}", [PUBLIC_V4], recorder)
    [request] = recorder.requests  # the refused hop is never requested
    assert request.url.host == PUBLIC_V4
    assert request.headers["Host"] == "feeds.example"


def test_relative_and_webcal_redirects_are_followed() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a":
            return httpx.Response(301, headers={"Location": "b?token=1"})
        if request.url.path == "/b":
            return httpx.Response(307, headers={"Location": "webcal://feeds.example/c"})
        return httpx.Response(200, content=FEED)

    recorder = Recorder(answer)
    result = fetch_public("http://feeds.example/a", [PUBLIC_V4], recorder)
    assert result.final_url == "https://feeds.example/c"
    assert [str(r.url) for r in recorder.requests] == [
        f"http://{PUBLIC_V4}/a",
        f"http://{PUBLIC_V4}/b?token=1",
        f"https://{PUBLIC_V4}/c",
    ]


def test_redirect_without_location() -> None:
    recorder = Recorder(lambda request: httpx.Response(302))
    with pytest.raises(FetchError, match="^https://feeds.example/… sent a redirect without"):
        fetch_public(f"https://feeds.example/x?token={SECRET}", [PUBLIC_V4], recorder)


def test_conditional_headers_and_no_cookies_across_hops() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a":
            return httpx.Response(302, headers={"Location": "/b", "Set-Cookie": "s=1; Path=/"})
        return httpx.Response(304)

    recorder = Recorder(answer)
    result = fetch_public("https://feeds.example/a", [PUBLIC_V4], recorder, etag=ETAG)
    assert result == FetchResult(True, None, ETAG, None, "https://feeds.example/b")
    assert all(r.headers["If-None-Match"] == ETAG for r in recorder.requests)
    assert "cookie" not in recorder.requests[1].headers


@pytest.mark.parametrize(
    "status, message",
    [
        (500, "the server answered 500 Internal Server Error"),
        (403, "the server answered 403 Forbidden"),
        (300, "the server answered 300 Multiple Choices"),
        (599, "the server answered 599"),
    ],
)
def test_status_messages(status: int, message: str) -> None:
    recorder = Recorder(lambda request: httpx.Response(status, content=b"go away, /secret"))
    with pytest.raises(FetchError) as caught:
        fetch_public("https://feeds.example/f", [PUBLIC_V4], recorder)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "max_bytes, text",
    [
        (100, "100 bytes"),
        (1536 * 1024, "1.5 MB"),
        (2 * 1024 * 1024, "2 MB"),
        (20 * 1024 * 1024, "20 MB"),
    ],
)
def test_size_cap_message(max_bytes: int, text: str) -> None:
    recorder = Recorder(lambda request: httpx.Response(200, content=b"x" * (max_bytes + 1)))
    with pytest.raises(FetchError) as caught:
        fetch_public("https://feeds.example/f", [PUBLIC_V4], recorder, max_bytes=max_bytes)
    assert str(caught.value) == f"the feed is larger than {text}"


def test_body_of_exactly_the_cap_is_kept() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, content=b"x" * 100))
    assert fetch_public("https://feeds.example/f", [PUBLIC_V4], recorder, max_bytes=100).body


def test_invalid_start_url_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="must start with"):
        fetch_feed("ftp://feeds.example/x", resolver=no_resolver, transport=Recorder().transport)


def test_system_resolver_reads_localhost() -> None:
    # /etc/hosts only: no DNS query leaves the machine.
    assert {"127.0.0.1", "::1"} & set(fetch.system_resolver("localhost", 80))


# --- URL helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, normal",
    [
        ("webcal://example.com/cal.ics", "https://example.com/cal.ics"),
        ("webcals://example.com/cal.ics?k=1", "https://example.com/cal.ics?k=1"),
        ("WEBCAL://Example.COM/a?b=1", "https://example.com/a?b=1"),
        ("http://example.com/a", "http://example.com/a"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("  https://example.com/x#frag\n", "https://example.com/x"),
        ("https://münchen.example/f", "https://xn--mnchen-3ya.example/f"),
        ("http://[2001:db8::1]:8080/f", "http://[2001:db8::1]:8080/f"),
        ("http://127.0.0.1/f", "http://127.0.0.1/f"),  # allowed here; fetch_feed checks it
    ],
)
def test_normalize_feed_url(url: str, normal: str) -> None:
    assert normalize_feed_url(url) == normal


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/cal.ics", "must start with"),
        ("file:///etc/passwd", "must start with"),
        ("javascript:alert(1)", "must start with"),
        ("example.com/cal.ics", "must start with"),
        ("", "must start with"),
        ("https://user:pw@example.com/cal.ics", "user name or password"),
        ("https://user@example.com/cal.ics", "user name or password"),
        ("http://evil.example\\@127.0.0.1/", "user name or password"),
        ("https:///cal.ics", "no host name"),
        ("webcal:///cal.ics", "no host name"),
        ("http://exa mple.com/", "invalid host name"),
        ("http://example.com/a\r\nHost: evil", "not a valid URL"),
    ],
)
def test_normalize_feed_url_refuses(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_feed_url(url)


@pytest.mark.parametrize(
    "url, redacted",
    [
        (f"https://example.com/private/cal.ics?token={SECRET}", "https://example.com/…"),
        ("https://user:pw@example.com:8443/x", "https://example.com:8443/…"),
        (f"https://example.com?token={SECRET}", "https://example.com/…"),
        ("https://example.com/#frag", "https://example.com/"),
        ("https://example.com", "https://example.com/"),
        ("http://[::1]:8080/a", "http://[::1]:8080/…"),
        ("http://example.com:80/a", "http://example.com/…"),
        ("webcal://example.com/a", "webcal://example.com/…"),
        ("not a url", "(an address without a host)"),
        ("http://a/\r\n", "(an invalid address)"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
