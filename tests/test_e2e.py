"""End to end: the real ``reminders`` command, a real HTTP server, a real database.

The service runs as a subprocess exactly as an operator starts it; the test talks to it over
HTTP and reads the database only to check what the outbox sender wrote.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from reminders.db import make_engine
from reminders.models import Attempt, Notice, OutboxMessage
from tests.conftest import make_key, wait_for
from tests.served import REMINDERS, Server, cli_env, free_port
from tests.test_panel import add_user, sign_in

pytestmark = pytest.mark.slow  # real processes and clocks: not in the fast tier

KEY = re.compile(r"rmd_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts, killed at teardown whatever happened."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def start(
    servers: list[Server],
    database_url: str,
    port: int,
    workdir: Path,
    env: dict[str, str] | None = None,
) -> Server:
    server = Server(database_url, port, workdir, name=f"serve{len(servers) + 1}", env=env)
    servers.append(server)
    server.wait_healthy()
    return server


def outbox_rows(engine: Engine, notice_id: int) -> int:
    with engine.connect() as conn:
        query = (
            select(func.count())
            .select_from(OutboxMessage)
            .where(col(OutboxMessage.notice_id) == notice_id)
        )
        return int(conn.execute(query).scalar_one())


def attempt_rows(engine: Engine, notice_id: int) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(Attempt).where(col(Attempt.notice_id) == notice_id)
        return int(conn.execute(query).scalar_one())


def notice_status(engine: Engine, notice_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(col(Notice.status)).where(col(Notice.id) == notice_id)).scalar_one()
        )


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).astimezone().isoformat()


def check(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_serve_sends_scheduled_messages_and_survives_a_restart(
    database_url: str, db: Engine, servers: list[Server], tmp_path: Path
) -> None:
    port = free_port()
    created = subprocess.run(
        [str(REMINDERS), "apikey", "create", "e2e", "--scope", "admin"],
        cwd=tmp_path,
        env=cli_env(database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.endswith("\n") and created.stdout.count("\n") == 1, created.stdout
    key = created.stdout.strip()
    assert key.startswith("rmd_") and KEY.fullmatch(key)

    first = start(servers, database_url, port, tmp_path)
    # A key already existed, so no first-admin-key banner.
    assert "rmd_" not in first.stdout

    api = httpx.Client(
        base_url=first.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    with api:
        phones = ["0888 123 456", "+359 88 812 3457", "00359888123458"]
        contact_ids = [
            check(api.post("/api/v1/contacts", json={"name": f"E2E {i}", "phone": p}), 201)["id"]
            for i, p in enumerate(phones)
        ]
        group_id = check(api.post("/api/v1/groups", json={"name": "e2e group"}), 201)["id"]
        added = check(
            api.post(f"/api/v1/groups/{group_id}/members", json={"contact_ids": contact_ids}), 200
        )
        assert added == {"added": 3, "already_members": 0, "member_count": 3}

        message = check(
            api.post(
                "/api/v1/messages",
                json={
                    "to": {"groups": [group_id]},
                    "text": "Hello from e2e",
                    "send_at": in_seconds(3),
                },
            ),
            201,
        )
        assert message["recipients"] == 3
        assert sorted(n["phone"] for n in message["notices"]) == [
            "+359888123456",
            "+359888123457",
            "+359888123458",
        ]
        assert {n["status"] for n in message["notices"]} == {"scheduled"}

        def all_sent() -> list[dict[str, Any]] | None:
            page = check(api.get("/api/v1/notices", params={"message_id": message["id"]}), 200)
            items: list[dict[str, Any]] = page["items"]
            done = len(items) == 3 and all(n["status"] in ("sent", "delivered") for n in items)
            return items if done else None

        notices = wait_for(all_sent, timeout=20, what="the 3 notices to be sent")
        for notice in notices:
            detail = check(api.get(f"/api/v1/notices/{notice['id']}"), 200)
            assert len(detail["attempts"]) == 1, detail
            attempt = detail["attempts"][0]
            assert attempt["provider"] == "outbox"
            assert attempt["provider_message_id"]
            assert outbox_rows(db, notice["id"]) == 1
        with db.connect() as conn:
            outbox = conn.execute(
                select(col(OutboxMessage.to), col(OutboxMessage.text)).where(
                    col(OutboxMessage.notice_id).in_([n["id"] for n in notices])
                )
            ).all()
        assert sorted(outbox) == sorted((n["phone"], "Hello from e2e") for n in notices)

        # A message due after the service stops must go out once when it comes back.
        later = check(
            api.post(
                "/api/v1/messages",
                json={
                    "to": {"contacts": [contact_ids[0]]},
                    "text": "After restart",
                    "send_at": in_seconds(8),
                },
            ),
            201,
        )
    (pending,) = later["notices"]
    assert first.terminate() == 0, first.stderr
    assert notice_status(db, pending["id"]) == "scheduled"
    assert outbox_rows(db, pending["id"]) == 0

    second = start(servers, database_url, port, tmp_path)
    with httpx.Client(
        base_url=second.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as api:

        def pending_sent() -> bool:
            detail = check(api.get(f"/api/v1/notices/{pending['id']}"), 200)
            assert detail["status"] in ("scheduled", "due", "sending", "sent"), detail
            return bool(detail["status"] == "sent")

        wait_for(pending_sent, timeout=25, what="the notice due after the restart to be sent")
    assert outbox_rows(db, pending["id"]) == 1
    assert attempt_rows(db, pending["id"]) == 1
    with db.connect() as conn:
        send_at, sent_at = conn.execute(
            select(col(Notice.send_at), col(Notice.sent_at)).where(col(Notice.id) == pending["id"])
        ).one()
    assert sent_at is not None and sent_at >= send_at  # fired when due, not early
    assert second.terminate() == 0, second.stderr
    # Still once after the second stop: nothing fired it again on the way down.
    assert outbox_rows(db, pending["id"]) == 1
    for server in servers:
        assert "Traceback" not in server.stderr, server.stderr


def test_first_start_prints_an_admin_key_once(servers: list[Server], tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    port = free_port()
    first = start(servers, database_url, port, tmp_path)
    # The banner is printed and flushed before the server listens, so it is there by now.
    keys = KEY.findall(first.stdout)
    assert len(keys) == 1, first.stdout
    assert "admin key was created" in first.stdout
    response = httpx.get(
        f"{first.base_url}/api/v1/contacts",
        headers={"Authorization": f"Bearer {keys[0]}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}
    assert first.terminate() == 0, first.stderr

    second = start(servers, database_url, port, tmp_path)
    assert second.terminate() == 0, second.stderr
    assert "rmd_" not in second.stdout
    assert "admin key was created" not in second.stdout
    for server in servers:
        assert "Traceback" not in server.stderr, server.stderr


def test_a_runaway_template_preview_answers_at_once_and_sigterm_still_stops_serve(
    servers: list[Server], tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'preview.db'}"
    server = start(servers, database_url, free_port(), tmp_path)
    engine = make_engine(database_url)
    try:
        key = make_key(engine, "read")
    finally:
        engine.dispose()
    stall = "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}"
    # Before templates were bounded this took minutes and gigabytes, and SIGTERM waited on it.
    response = httpx.post(
        f"{server.base_url}/api/v1/sms/preview",
        json={"template": stall},
        headers=key,
        timeout=10,
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "template"
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
    assert server.terminate() == 0, server.stderr
    assert "Traceback" not in server.stderr, server.stderr


def test_sigterm_ends_open_live_streams_and_stops_serve(
    servers: list[Server], tmp_path: Path
) -> None:
    """An open dashboard used to hold a stop until the process manager's SIGKILL: uvicorn
    waits for every response, and a live stream never ends by itself."""
    database_url = f"sqlite:///{tmp_path / 'streams.db'}"
    server = start(servers, database_url, free_port(), tmp_path)
    engine = make_engine(database_url)
    try:
        key = make_key(engine, "read")
        add_user(engine, "ana@clinic.bg")
    finally:
        engine.dispose()
    panel = httpx.Client(base_url=server.base_url, timeout=10)
    assert sign_in(panel, "ana@clinic.bg").status_code == 303  # type: ignore[arg-type]
    streams = {
        # The API's stream with a minute between events, and the control panel's (2 s): without
        # the stop reaching them, SIGTERM would wait on them for ever (terminate() gives up
        # after 15 s).
        "api": (f"{server.base_url}/api/v1/stats/stream?every=60", key),
        "panel": (f"{server.base_url}/live", {"Cookie": "; ".join(
            f"{name}={value}" for name, value in panel.cookies.items())}),
    }  # fmt: skip
    panel.close()
    events: dict[str, list[str]] = {name: [] for name in streams}
    ended = {name: threading.Event() for name in streams}

    def listen(name: str) -> None:
        url, headers = streams[name]
        with httpx.stream("GET", url, headers=headers, timeout=90) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith(("event:", "data:")):
                    events[name].append(line)
        ended[name].set()  # the server ended the response itself: a whole stream, not a reset

    listeners = [threading.Thread(target=listen, args=(n,), daemon=True) for n in streams]
    for listener in listeners:
        listener.start()
    wait_for(lambda: all(events.values()), timeout=10, what="each stream's first event")
    assert server.terminate() == 0, server.stderr
    for listener in listeners:
        listener.join(timeout=10)
    assert all(e.is_set() for e in ended.values()), (ended, server.stderr)
    assert events["api"][0] == "event: stats", events
    assert events["api"][1].startswith("data: {"), events
    assert events["panel"][0].startswith("data: {"), events
    assert "Traceback" not in server.stderr, server.stderr
