"""A real Kannel for tests: bearerbox, smsbox and fakesmsc (the operator stand-in) on free ports.

Everything listens on 127.0.0.1 only, on ports picked at start, so a system Kannel on the
default ports (13000, 13001, 13013) is neither used nor disturbed. Each process runs in its
own session and is stopped by its process group, so nothing outlives the fixture.

What the operator received is read back from fakesmsc's output, one line per SMS (per part
for a concatenated message)::

    DEBUG: Got message 1: <MyShop +359888123456 text Hello>
    DEBUG: Got message 2: <MyShop +359888123456 ucs-2 %04%1F%04%40...>
    DEBUG: Got message 3: <MyShop +359888123456 udh %05%00%03%07%03%01 data First+part...>

A "udh" line (one part of a long message) is URL-encoded and does not say its coding.

Mobile-originated SMS (a customer's reply) come from a second fake link, "handsets": a fakesmsc
in interactive mode that sends each line written to its stdin (``Kannel.send_mo``). Given an
``inbound_url``, smsbox has a default sms-service that GETs it for every such SMS and never
answers the handset (max-messages = 0), which smsbox logs as "No reply sent, denied.".
``serving`` runs an app on a real port for Kannel to call back.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Literal
from urllib.parse import quote_from_bytes, unquote_to_bytes

import httpx
import uvicorn
from starlette.types import ASGIApp

BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
CONFIG_TEMPLATE = Path(__file__).with_name("kannel") / "kannel.conf.in"
SERVICE_TEMPLATE = CONFIG_TEMPLATE.with_name("sms-service.conf.in")
USERNAME = "reminders"
PASSWORD = "kannel-test-password"
ADMIN_PASSWORD = "kannel-admin-password"
# Kannel's start-up takes about 0.4 s here; the margin covers a loaded CI machine.
START_TIMEOUT = 15.0

# fakesmsc prints each SMS it receives as "<sender receiver type [udh] data>".
_RECEIVED = re.compile(r"Got message \d+: <(?P<body>.*)>\s*$")


class KannelError(RuntimeError):
    """Kannel could not be installed or started; the message says why."""


def ensure_installed() -> None:
    """Install Debian's kannel and kannel-extras (fakesmsc) if a binary is missing.

    The tests never skip: without Kannel they would prove nothing about the sender, so a
    missing Kannel is installed when we can (root with apt-get) and a clear failure otherwise.
    """
    if all(path.exists() for path in (BEARERBOX, SMSBOX, FAKESMSC)):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise KannelError(
            "Kannel is not installed: run `apt-get install -y kannel kannel-extras` as root "
            "(or scripts/services)."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "kannel", "kannel-extras"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KannelError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    if not all(path.exists() for path in (BEARERBOX, SMSBOX, FAKESMSC)):
        raise KannelError("apt-get installed kannel but bearerbox, smsbox or fakesmsc is missing")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held together, so never the same one)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


@dataclass(frozen=True)
class ReceivedSms:
    """One SMS (one part of a long one) as fakesmsc received it."""

    sender: str
    receiver: str
    kind: str  # "text" (GSM-7), "ucs-2", or "udh" (a part of a long message, either coding)
    udh: bytes
    data: bytes  # UTF-8 for GSM-7 text (Kannel's internal form), UTF-16BE for UCS-2

    def decode(self, *, ucs2: bool = False) -> str:
        """The body as text. A "udh" line does not say its coding: pass ``ucs2`` for those."""
        if self.kind == "ucs-2" or (self.kind == "udh" and ucs2):
            return self.data.decode("utf-16-be")
        return self.data.decode("utf-8")


def _unquote(data: str) -> bytes:
    """fakesmsc's URL encoding: %XX escapes, and "+" for a space (a real "+" is %2B)."""
    return unquote_to_bytes(data.replace("+", "%20"))


def parse_received(line: str) -> ReceivedSms | None:
    """Read one of fakesmsc's "Got message" lines, or None for any other line.

    The forms: "S R text plain text", "S R ucs-2 %04%1F...", "S R udh %05%00%03... data %7B...";
    only plain text is left unencoded, so in the others a space separates fields.
    """
    match = _RECEIVED.search(line)
    if match is None:
        return None
    sender, receiver, kind, rest = (match["body"].split(" ", 3) + [""])[:4]
    if kind == "text":
        return ReceivedSms(sender, receiver, kind, b"", rest.encode("utf-8"))
    if kind == "udh":
        udh, _, rest = rest.partition(" ")
        rest = rest.removeprefix("data ")
        return ReceivedSms(sender, receiver, kind, _unquote(udh), _unquote(rest))
    return ReceivedSms(sender, receiver, kind, b"", _unquote(rest))


def reassemble(parts: list[ReceivedSms], *, ucs2: bool = False) -> str:
    """Join the parts of one concatenated message in the order their UDH numbers them.

    The UDH is 05 00 03 ref total seq (8-bit reference) or 06 08 04 ref ref total seq: the
    total and the sequence number are always its last two octets.
    """
    if len(parts) == 1 and not parts[0].udh:
        return parts[0].decode(ucs2=ucs2)
    references = {part.udh[:-1] for part in parts}
    if len(references) != 1 or parts[0].udh[-2] != len(parts):
        raise AssertionError(f"not the parts of one message: {[p.udh for p in parts]}")
    ordered = sorted(parts, key=lambda part: part.udh[-1])
    return "".join(part.decode(ucs2=ucs2) for part in ordered)


@dataclass
class Kannel:
    """A running Kannel; ``stop()`` (or leaving ``running()``) ends every process."""

    workdir: Path
    admin_port: int
    smsbox_port: int
    sendsms_port: int
    smsc_port: int
    mo_port: int
    max_messages: int
    # The sms-service's get-url, in Kannel's syntax (escapes such as %p filled in by smsbox).
    inbound_url: str | None = None
    # By name, in start order; stopped in the reverse order.
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _mo_sent: int = field(default=0, init=False)  # lines written to the handsets' fakesmsc

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    @property
    def fakesmsc_log(self) -> Path:
        return self.workdir / "fakesmsc.out"

    @property
    def handsets_log(self) -> Path:
        return self.workdir / "handsets.out"

    def send_mo(self, sender: str, receiver: str, text: str, *, ucs2: bool | None = None) -> None:
        """Have a handset send ``text`` from ``sender`` to ``receiver`` (our number).

        Text outside ASCII goes as UCS-2 (``ucs2`` forces either way), as a phone sends
        Cyrillic; fakesmsc reads it URL-encoded as UTF-16BE.
        """
        if ucs2 is None:
            ucs2 = not text.isascii()
        if ucs2:
            line = f"{sender} {receiver} ucs2 {quote_from_bytes(text.encode('utf-16-be'))}"
        else:
            line = f"{sender} {receiver} text {text}"
        if "\n" in line or len(line.encode()) > 250:  # fakesmsc reads lines of 255 bytes
            raise ValueError(f"fakesmsc cannot send {text!r} as one line")
        stdin = self.processes["handsets"].stdin
        assert stdin is not None
        # fakesmsc select()s on its stdin but reads it through stdio: two lines that arrive
        # together leave the second in stdio's buffer, unsent. So one line at a time, the
        # next only once fakesmsc has logged sending this one.
        self._mo_sent += 1
        stdin.write(line.encode() + b"\n")
        stdin.flush()
        done = f"fakesmsc: sent message {self._mo_sent}\n"
        self._wait(
            lambda: done in self.handsets_log.read_text(encoding="utf-8", errors="replace"),
            f"fakesmsc to send mobile-originated SMS {self._mo_sent}",
        )

    def replies_withheld(self) -> int:
        """How many replies smsbox decided not to send (one per mobile-originated SMS served)."""
        path = self.workdir / "smsbox.log"
        if not path.exists():
            return 0
        return path.read_text(encoding="utf-8", errors="replace").count("No reply sent, denied.")

    def replies_to_handsets(self) -> list[ReceivedSms]:
        """Every SMS Kannel sent back to the handsets' link (none, when it works)."""
        text = self.handsets_log.read_text(encoding="utf-8", errors="replace")
        return [sms for line in text.splitlines() if (sms := parse_received(line))]

    def received(self) -> list[ReceivedSms]:
        """Every SMS fakesmsc has received so far, in order."""
        text = self.fakesmsc_log.read_text(encoding="utf-8", errors="replace")
        return [sms for line in text.splitlines() if (sms := parse_received(line))]

    def status(self) -> str:
        """bearerbox's status page (text form), or "" while it does not answer."""
        url = f"http://127.0.0.1:{self.admin_port}/status.txt"
        try:
            response = httpx.get(url, params={"password": ADMIN_PASSWORD}, timeout=2)
        except httpx.TransportError:
            return ""
        return response.text if response.status_code == 200 else ""

    def logs(self) -> str:
        """The tail of each log, for failure messages."""
        out = []
        names = ("bearerbox.log", "smsbox.log", "fakesmsc.out", "handsets.out")
        for name in (*names, "bearerbox.err", "smsbox.err"):
            path = self.workdir / name
            if path.exists():
                tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
                out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)

    def start(self) -> None:
        """Write the configuration and start bearerbox, fakesmsc and smsbox, in that order."""
        config = self.workdir / "kannel.conf"
        config.write_text(self.config(), encoding="utf-8")
        # bearerbox first: fakesmsc and smsbox both connect to it and PANIC if it is not up.
        self._spawn("bearerbox", [str(BEARERBOX), "-v", "1", str(config)])
        self._wait(lambda: bool(self.status()), "bearerbox's admin port")
        # -m 0: send nothing, stay connected and print what arrives (without it fakesmsc reads
        # messages from stdin and quits at its end). No -v 1: "Got message" is a debug line.
        self._spawn(
            "fakesmsc",
            [
                str(FAKESMSC),
                "-H", "127.0.0.1", "-r", str(self.smsc_port), "-m", "0",
                "100 200 text unused",
            ],
            log=self.fakesmsc_log,
        )  # fmt: skip
        # The handsets: no message arguments, so fakesmsc sends each line of its stdin (-i 0:
        # at once, not one a second). Its stdin stays open; at EOF it would stop.
        self._spawn(
            "handsets",
            [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(self.mo_port), "-i", "0"],
            log=self.handsets_log,
            stdin=subprocess.PIPE,
        )
        self._spawn("smsbox", [str(SMSBOX), "-v", "1", str(config)])
        # Not a TCP probe of the fake-SMSC ports (bearerbox would take it for fakesmsc): the
        # status page shows both links online, and the sendsms port answers (403 without a user).
        self._wait(lambda: self.status().count("(online") == 2, "both fake SMSC links online")
        self._wait(self._sendsms_answers, "smsbox's sendsms port")

    def config(self) -> str:
        """kannel.conf from the template, with this instance's ports, paths and limits."""
        template = Template(CONFIG_TEMPLATE.read_text(encoding="utf-8"))
        config = template.substitute(
            admin_port=self.admin_port,
            admin_password=ADMIN_PASSWORD,
            smsbox_port=self.smsbox_port,
            sendsms_port=self.sendsms_port,
            smsc_port=self.smsc_port,
            mo_port=self.mo_port,
            username=USERNAME,
            password=PASSWORD,
            max_messages=self.max_messages,
            workdir=self.workdir,
        )
        if self.inbound_url is not None:
            if '"' in self.inbound_url:
                raise ValueError("the inbound URL goes between quotes in kannel.conf")
            service = Template(SERVICE_TEMPLATE.read_text(encoding="utf-8"))
            config += service.substitute(inbound_url=self.inbound_url)
        return config

    def stop(self) -> None:
        """Stop smsbox, the fakesmscs, then bearerbox: each by its process group, killed if slow."""
        while self.processes:
            _, process = self.processes.popitem()
            _stop_group(process)

    def _spawn(
        self, name: str, argv: list[str], *, log: Path | None = None, stdin: int | None = None
    ) -> None:
        log = log or self.workdir / f"{name}.err"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one at the end
            )
        self.processes[name] = process

    def _sendsms_answers(self) -> bool:
        try:
            return httpx.get(self.sendsms_url, timeout=2).status_code == 403
        except httpx.TransportError:
            return False

    def _wait(self, ready: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise KannelError(
                        f"{name} exited ({process.returncode}) while waiting for {what}:\n"
                        f"{self.logs()}"
                    )
            if time.monotonic() > deadline:
                raise KannelError(f"timed out waiting for {what}:\n{self.logs()}")
            time.sleep(0.05)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    # SIGKILL the group even after the leader exited: nothing it forked may stay behind.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    if process.stdin is not None:  # only now: at EOF the handsets' fakesmsc would crash
        process.stdin.close()


@contextmanager
def running(
    workdir: Path, *, max_messages: int = 10, inbound_url: str | None = None
) -> Iterator[Kannel]:
    """Install Kannel if needed, start it in ``workdir`` and stop it on the way out.

    With ``inbound_url`` smsbox GETs it for every mobile-originated SMS (see ``send_mo``).
    """
    ensure_installed()
    admin, smsbox, sendsms, smsc, mo = free_ports(5)
    kannel = Kannel(
        workdir=workdir,
        admin_port=admin,
        smsbox_port=smsbox,
        sendsms_port=sendsms,
        smsc_port=smsc,
        mo_port=mo,
        max_messages=max_messages,
        inbound_url=inbound_url,
    )
    try:
        kannel.start()
        yield kannel
    finally:
        kannel.stop()


@contextmanager
def serving(app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "auto") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port, in a thread; yield its base URL.

    What Kannel calls back (delivery reports, inbound SMS) must listen on a real port.
    """
    [port] = free_ports(1)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan=lifespan,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive(), "the server did not stop"
