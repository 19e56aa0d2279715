"""The control panel in a real browser: Debian's Chromium driven by Playwright, against a real
``reminders serve`` subprocess (tests/served.py).

One server per test process, one browser per test module (the fixtures in conftest.py say why
not per session); each test gets a fresh browser context, so no cookie or session leaks from one
test to the next.
The server sends through the ``http`` sender to an in-house gateway of the test's own
(tests/http_gateway.py), so a test can make a message go out and report on it with the
gateway's signed callback, as a real gateway would.

Chromium is Debian's (``scripts/services`` installs it): Playwright's own browser download is
never used, and a machine without /usr/bin/chromium fails these tests saying so in one line.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, Response, expect

from reminders.sender.http import sign
from tests.conftest import wait_for
from tests.http_gateway import SECRET, Gateway
from tests.served import Server, free_port, run_cli

CHROMIUM: Final = Path("/usr/bin/chromium")
# The flags the machine's own check starts Chromium with: without the background-networking
# ones it keeps trying hosts this closed network refuses (Google's update and sync services).
CHROMIUM_ARGS: Final = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD: Final = "Пролет в София 2026"
OPERATOR: Final = "operator@clinic.bg"
ADMIN: Final = "admin@clinic.bg"
GUESSER: Final = "guesser@clinic.bg"
LANGUAGES: Final = ("en", "bg")
KEY: Final = re.compile(r"rmd_[A-Za-z0-9_-]{20,}")
TIMEOUT_MS: Final = 15_000  # for an action or a condition; the machine is shared and slow

# Every expectation waits this long for its condition (Playwright's default is 5 s).
expect.set_options(timeout=TIMEOUT_MS)


def launch(playwright: Playwright, chromium: Path = CHROMIUM) -> Browser:
    if not chromium.exists():
        pytest.fail(
            f"Debian's Chromium is missing ({chromium}): run scripts/services, which installs "
            "it with apt-get install chromium",
            pytrace=False,
        )
    return playwright.chromium.launch(
        executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
    )


@dataclass
class Panel:
    """A ``reminders serve`` on SQLite with the ``http`` sender, its gateway, an API key, and
    users of the account ``default``: an operator every test may sign in as (``email``), an
    admin who sees every screen (``admin``), and one the sign-in throttle's test may lock out
    (``guesser``)."""

    server: Server
    gateway: Gateway
    database_url: str
    workdir: Path
    api_key: str
    email: str = OPERATOR
    admin: str = ADMIN
    guesser: str = GUESSER

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def add_user(self, email: str | None = None, role: str = "operator") -> str:
        """A new user of the account ``default``, with ``PASSWORD``; their email. Made through
        the API: the CLI (as for ``OPERATOR``) takes seconds to start on a busy machine."""
        email = email or f"{uuid.uuid4().hex[:10]}@clinic.bg"
        with self.api() as api:
            made = api.post(
                "/api/v1/users", json={"email": email, "password": PASSWORD, "role": role}
            )
        assert made.status_code == 201, made.text
        return str(made.json()["email"])

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)

    def send(self, phone: str, text: str = "Hello from the browser tests") -> int:
        """A message to ``phone``, now, through the HTTP API; its notice's id."""
        with self.api() as api:
            made = api.post("/api/v1/messages", json={"to": {"phones": [phone]}, "text": text})
        assert made.status_code == 201, made.text
        return int(made.json()["notices"][0]["id"])

    def report(self, notice_id: int, status: str) -> str:
        """The gateway's signed delivery report on a notice; what the service made of it."""
        body = json.dumps({"id": f"notice-{notice_id}", "status": status}).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Reminders-Timestamp": stamp,
            "X-Reminders-Signature": sign(SECRET, stamp, body),
        }
        answer = httpx.post(
            f"{self.base_url}/webhooks/http/status", content=body, headers=headers, timeout=10
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["result"])

    def notice_elsewhere(self, phone: str) -> int:
        """A notice of another account, made for the purpose, written straight into the
        server's database; its id."""
        from sqlmodel import Session

        from reminders.accounts.crud import create_account
        from reminders.db import make_engine, utcnow
        from reminders.models import Notice
        from reminders.schemas.accounts import AccountCreate

        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                slug = f"other-{uuid.uuid4().hex[:8]}"
                account = create_account(session, AccountCreate(slug=slug))
                session.flush()
                notice = Notice(
                    account_id=account.id,
                    key=f"elsewhere:{phone}",
                    kind="message",
                    phone=phone,
                    text="Not yours",
                    send_at=utcnow(),
                    status="delivered",
                )
                session.add(notice)
                session.commit()
                assert notice.id is not None
                return notice.id
        finally:
            engine.dispose()

    def stop(self) -> None:
        try:
            self.server.terminate()
        finally:
            self.server.kill()
            self.gateway.httpd.shutdown()
            self.gateway.httpd.server_close()
        # A page that failed on the server shows the test a 500; its traceback is here.
        assert "Traceback" not in self.server.stderr, self.server.stderr


def start_panel(workdir: Path) -> Panel:
    gateway = Gateway()
    database_url = f"sqlite:///{workdir / 'panel.db'}"
    env = {
        "REMINDERS_SENDER": "http",
        "REMINDERS_HTTP_SENDER_URL": gateway.url,
        "REMINDERS_HTTP_SENDER_SECRET": SECRET,
    }
    server = Server(database_url, free_port(), workdir, "panel", env=env)
    try:
        # Up to a minute: it took 12 s to start, and once more than 20, with the other worker
        # starting its own server and browser on a busy 2-core machine.
        server.wait_healthy(timeout=60)
        # A new database: serve made an admin key and printed it before it listened.
        found = KEY.search(server.stdout)
        assert found, server.stdout
        # The operator as an administrator makes one, with the CLI.
        args = ("users", "create", OPERATOR, "--account", "default", "--role", "operator")
        run_cli(database_url, *args, cwd=workdir, stdin=PASSWORD + "\n")
        panel = Panel(server, gateway, database_url, workdir, api_key=found.group(0))
        panel.add_user(ADMIN, role="admin")
        panel.add_user(GUESSER)
    except BaseException:
        server.kill()
        gateway.httpd.shutdown()
        gateway.httpd.server_close()
        raise
    return panel


@dataclass
class Screens:
    """Where the screenshots go: one folder for the whole run, workers included."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    @classmethod
    def under(cls, basetemp: Path) -> Screens:
        # Each xdist worker's basetemp is popen-gwN inside the run's own: share the run's.
        base = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
        folder = base / "screens"
        folder.mkdir(exist_ok=True)
        return cls(folder)

    def shot(self, page: Page, name: str) -> Path:
        path = self.folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-')}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append(path)
        return path


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("form[action='/logout']")).to_be_attached()


def sign_out(page: Page) -> None:
    page.locator("form[action='/logout'] button").click()
    expect(page.locator("#password")).to_be_visible()


def choose_language(page: Page, lang: str) -> None:
    """The language form at the top of every page."""
    page.locator("#lang").select_option(lang)
    page.locator("form[action='/language'] button").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)


def page_errors(page: Page) -> list[str]:
    """Uncaught script errors of ``page``, and the server's 5xx answers to it, from now on (the
    list fills as they happen)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"script error: {error}"))

    def answered(response: Response) -> None:
        if response.status >= 500:
            errors.append(f"{response.status} from {response.request.method} {response.url}")

    page.on("response", answered)
    return errors


def clear_of_midnight(zone: str = "Europe/Sofia") -> None:
    """Wait, if need be, until today's last minute on the service's clock is over: the
    dashboard counts today, and a notice sent at 23:59:59 is counted tomorrow."""

    def clear() -> bool:
        now = datetime.now(ZoneInfo(zone))
        return not (now.hour == 23 and now.minute == 59)

    wait_for(clear, timeout=75, what="the service's day to turn")


def serious_violations(results: Any, where: str) -> list[str]:
    """axe-core's violations of impact serious or critical, one line each."""
    lines = []
    for violation in results.response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
            lines.append(
                f"{where}: {violation['id']} ({violation['impact']}): {violation['help']}"
                f" at {targets}"
            )
    return lines
