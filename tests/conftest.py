"""Shared fixtures: every database-backed test runs on SQLite and on a throw-away PostgreSQL."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The service, its app and the databases are imported by the fixtures that use them: pytest's
# controlling process loads this file too, before it starts the workers, and has no use for them
# (they took it seconds, during which no test ran).
if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from playwright.sync_api import Browser, Page
    from sqlalchemy.engine import Engine

    from reminders.process import Process
    from reminders.settings import Settings
    from tests.browser import Panel, Screens
    from tests.databases import PgDatabases, SqliteTemplate
    from tests.http_gateway import Gateway

REDIS_URL = "redis://127.0.0.1:6379/0"
# The fast tier (`-m "not slow"`) runs on SQLite alone; the whole suite runs PostgreSQL too.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]

# The quiet hours a test gets when it does not choose its own: all day but one minute. With the
# real default (21:00-08:00) a test that forgot to pin them passed by day and failed by night;
# with this one it fails at any hour, the first time it runs. Pin ``quiet_hours="off"`` (or
# REMINDERS_QUIET_HOURS=off for a subprocess) unless the test is about quiet hours.
ALWAYS_QUIET = "00:00-23:59"


SLOW_MODULE = re.compile(r"^pytestmark = pytest\.mark\.slow\b", re.MULTILINE)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the fast tier, a module whose tests are all slow is not even imported: it would only
    be deselected, after its imports (Schemathesis, Hypothesis, servers) cost every worker a
    second or more."""
    if config.option.markexpr.strip() != "not slow" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return bool(SLOW_MODULE.search(collection_path.read_text(encoding="utf-8"))) or None


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own REMINDERS_* variables or .env file, nor the hour."""
    for name in list(os.environ):
        if name.startswith("REMINDERS_") and name != "REMINDERS_TEST_PG":
            monkeypatch.delenv(name)
    monkeypatch.setenv("REMINDERS_QUIET_HOURS", ALWAYS_QUIET)
    monkeypatch.chdir(tmp_path)


def create_pg_database() -> tuple[str, Callable[[], None]]:
    """An empty PostgreSQL database of the caller's own: its URL, and how to drop it."""
    from tests.databases import PG

    return PG.create_empty()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    from tests.databases import PG, PgDatabases

    databases = PgDatabases(PG)
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    from tests.databases import SqliteTemplate

    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """This test's own database: at the schema's head when the test uses ``engine`` (which
    needs it there), else empty (for tests of migrating, or of a server that migrates)."""
    migrated = "engine" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "reminders.db"
        if migrated:
            request.getfixturevalue("sqlite_template").copy_to(path)
        yield f"sqlite:///{path}"
        return
    if not migrated:
        url, drop = create_pg_database()
        try:
            yield url
        finally:
            drop()
        return
    from tests.databases import PG

    databases: PgDatabases = request.getfixturevalue("pg_databases")
    name = databases.lend()
    try:
        yield PG.url(name)
    finally:
        databases.give_back(name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    from reminders.settings import load_settings

    return load_settings(database_url=database_url, quiet_hours="off")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    from reminders.db import make_engine

    engine = make_engine(settings.database_url)  # at head already: see ``database_url``
    yield engine
    engine.dispose()


@pytest.fixture
def process(settings: Settings, engine: Engine) -> Iterator[Process]:
    from reminders.process import build

    proc = build(settings, engine)
    yield proc
    proc.scheduler.shutdown(wait=True)


@pytest.fixture
def client(process: Process) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    with TestClient(process.app, raise_server_exceptions=False) as test_client:
        yield test_client


def make_key(engine: Engine, scope: str, account: str = "default") -> dict[str, str]:
    """A key of ``account`` (a provider key when ``scope`` is provider) as request headers."""
    from sqlmodel import Session

    from reminders import apikeys
    from reminders.accounts.crud import account_id_of

    with Session(engine) as session:
        account_id = None if scope == "provider" else account_id_of(session, account)
        new = apikeys.create_key(session, name=f"test {scope}", scope=scope, account_id=account_id)
        session.commit()
    return {"Authorization": f"Bearer {new.secret}"}


@pytest.fixture
def admin(engine: Engine) -> dict[str, str]:
    return make_key(engine, "admin")


@pytest.fixture
def writer(engine: Engine) -> dict[str, str]:
    return make_key(engine, "write")


@pytest.fixture
def reader(engine: Engine) -> dict[str, str]:
    return make_key(engine, "read")


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Poll until ``predicate`` returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        # Soon after the condition holds (0.05 s was up to a tenth of a short test), yet rarely
        # enough to leave the processor to the threads being waited for.
        time.sleep(0.02)


def fall_due(engine: Engine, notice_id: int) -> None:
    """Move a notice's send time just past, as if its time had come (a claim takes only what
    is due)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update
    from sqlmodel import col

    from reminders.models import Notice

    with engine.begin() as conn:
        conn.execute(
            update(Notice)
            .where(col(Notice.id) == notice_id)
            .values(send_at=datetime.now(UTC) - timedelta(seconds=1))
        )


@pytest.fixture
def redis_key() -> Iterator[str]:
    """A Redis key of this test's own, deleted afterwards."""
    import redis

    key = f"reminders-test:{uuid.uuid4().hex[:12]}"
    yield key
    redis.Redis.from_url(REDIS_URL).delete(key)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    """An in-house SMS gateway on a free 127.0.0.1 port (see tests/http_gateway.py)."""
    from tests.http_gateway import Gateway

    server = Gateway()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def pg_cluster() -> Iterator[Any]:
    """A PostgreSQL cluster of this test's own, which it may stop and restart (throwaway.py)."""
    from tests.throwaway import PgCluster

    cluster = PgCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def own_redis() -> Iterator[Any]:
    """A redis-server of this test's own, which it may stop and start again."""
    from tests.throwaway import RedisServer

    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def small_disk() -> Iterator[Any]:
    """A 4 MB tmpfs this test may fill up (for a SQLite database that runs out of space)."""
    from tests.throwaway import SmallDisk

    disk = SmallDisk()
    yield disk
    disk.destroy()


@pytest.fixture
def live_server(process: Process) -> Iterator[str]:
    """The process's app on a real uvicorn (in a thread, on a free 127.0.0.1 port): real
    sockets, and real concurrency in uvicorn's thread pool. Yields the base URL."""
    from tests.kannel import serving

    with serving(process.app) as base_url:
        yield base_url


DEFAULT_ACCOUNT = 1  # the account ``default`` the migrations make first


def account_session(engine: Engine, account_id: int = DEFAULT_ACCOUNT, **options: Any) -> Any:
    """A session acting for one account (the default one), as a request's does."""
    from reminders.accounts.scoping import scoped_session

    return scoped_session(engine, account_id, **options)


@pytest.fixture
def provider(engine: Engine) -> dict[str, str]:
    """A provider key, above every account."""
    return make_key(engine, "provider")


@pytest.fixture
def two(
    client: TestClient, provider: dict[str, str], engine: Engine
) -> tuple[dict[str, str], dict[str, str]]:
    """Admin keys of two new accounts, clinic-a and bank-b."""
    for slug in ("clinic-a", "bank-b"):
        made = client.post("/api/v1/accounts", json={"slug": slug}, headers=provider)
        assert made.status_code == 201, made.text
    return make_key(engine, "admin", "clinic-a"), make_key(engine, "admin", "bank-b")


# The control panel in a real browser (tests/browser.py): one server per test process, one
# Chromium per test module, a fresh browser context per test.


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one module's tests, not the whole session's: while Playwright's sync API is
    started, its event loop counts as running in this thread, and a later test's
    ``asyncio.run`` fails (test_busy.py, test_admission.py). Starting it takes a second."""
    from playwright.sync_api import sync_playwright

    from tests.browser import launch

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    """A ``reminders serve`` for the browser tests, shared by this process's tests: each signs
    in with a user of its own when it changes what a user has (the sign-in throttle)."""
    from tests.browser import start_panel

    served = start_panel(tmp_path_factory.mktemp("panel"))
    yield served
    served.stop()


@pytest.fixture(scope="session")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Screens:
    from tests.browser import Screens

    return Screens.under(tmp_path_factory.getbasetemp())


@pytest.fixture
def page(
    browser: Browser,
    panel: Panel,
    screens: Screens,
    record_property: Callable[[str, object], None],
) -> Iterator[Page]:
    """A page in a browser context of this test's own, in English, on the panel's server; an
    uncaught script error on it, or a 5xx answer to it, fails the test."""
    from tests.browser import TIMEOUT_MS, page_errors

    context = browser.new_context(base_url=panel.base_url, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors = page_errors(tab)
    record_property("screenshots", str(screens.folder))
    print(f"\nbrowser screenshots: {screens.folder}")
    try:
        yield tab
    finally:
        context.close()
    assert not errors, "\n".join(errors)


@pytest.fixture
def signed_in(page: Page, panel: Panel) -> Page:
    """``page``, signed in as the panel's operator, in English (the operator's choice of
    language is kept with them, and another test may have chosen Bulgarian)."""
    from tests.browser import choose_language, sign_in

    sign_in(page, panel.email)
    if page.locator("html").get_attribute("lang") != "en":
        choose_language(page, "en")
    return page


_SCREENSHOTS: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Reports reach the controlling process from every worker, with their properties.
    _SCREENSHOTS.update(str(v) for k, v in report.user_properties if k == "screenshots")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for folder in sorted(_SCREENSHOTS):
        terminalreporter.write_line(f"browser screenshots: {folder}")
