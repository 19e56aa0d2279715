"""Webhooks delivered by the workers themselves: in a running process, and across a kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook

from reminders.db import make_engine
from reminders.migrate import upgrade
from reminders.settings import Settings, load_settings
from tests.conftest import make_key, wait_for
from tests.served import REMINDERS, cli_env, free_port
from tests.webhook_receiver import HOLD, Receiver

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        quiet_hours="off",
        allow_private_webhooks=True,
        webhook_poll=0.05,
    )


def test_a_sent_notice_reaches_the_endpoint_signed(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    with Receiver([200]) as receiver:
        hook = client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url, "events": ["notice.sent"]},
            headers=writer,
        ).json()
        body = {"to": {"phones": ["0888 500 001"]}, "text": "Hello"}
        message = client.post("/api/v1/messages", json=body, headers=writer).json()
        (request,) = receiver.wait_for(1)
    Webhook(hook["secret"]).verify(request.body, request.headers)
    assert request.headers["webhook-signature"].startswith("v1,")
    event = json.loads(request.body)
    assert event["type"] == "notice.sent"
    data = event["data"]
    assert data["notice_id"] == message["notices"][0]["id"]
    assert data["message_id"] == message["id"]
    assert data["phone"] == "+359888500001" and data["status"] == "sent"
    assert data["error"] is None
    path = f"/api/v1/webhooks/{hook['id']}/deliveries"

    def delivered() -> bool:
        items = client.get(path, headers=writer).json()["items"]
        return bool(items) and items[0]["status"] == "delivered"

    wait_for(delivered, what="the delivery to be recorded")


def serve(database_url: str, port: int, workdir: Path, name: str) -> subprocess.Popen[bytes]:
    env = cli_env(database_url) | {
        "REMINDERS_ALLOW_PRIVATE_WEBHOOKS": "true",
        # One delivery a claim, five seconds each: a claim's lease is 10 s.
        "REMINDERS_WEBHOOK_TIMEOUT": "5",
        "REMINDERS_WEBHOOK_BATCH": "1",
        "REMINDERS_WEBHOOK_POLL": "0.1",
    }
    with (workdir / f"{name}.log").open("wb") as out:
        return subprocess.Popen(
            [str(REMINDERS), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=out,
        )


@pytest.mark.slow
def test_a_kill_9_mid_delivery_still_delivers_with_the_same_webhook_id(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    key = make_key(engine, "write")
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    # The first request is held (the delivery is in flight) until the worker is killed.
    with Receiver([HOLD, 200]) as receiver:
        first = serve(database_url, port, tmp_path, "first")
        second = None
        try:
            wait_for(up, timeout=30, what="serve to answer")
            hook = httpx.post(
                f"{base}/api/v1/webhooks",
                json={"url": receiver.url, "events": ["notice.sent"]},
                headers=key,
            ).json()
            body = {"to": {"phones": ["0888 500 001"]}, "text": "Hello"}
            assert httpx.post(f"{base}/api/v1/messages", json=body, headers=key).status_code == 201
            (held,) = receiver.wait_for(1)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            receiver.release()  # the killed worker never hears the answer

            second = serve(database_url, port, tmp_path, "second")
            wait_for(up, timeout=30, what="the restarted serve to answer")
            _, again = receiver.wait_for(2, timeout=60)
            assert again.headers["webhook-id"] == held.headers["webhook-id"]
            Webhook(hook["secret"]).verify(again.body, again.headers)
            assert again.body == held.body

            def delivered() -> bool:
                with engine.connect() as conn:
                    status = conn.execute(text("SELECT status FROM webhook_deliveries")).scalar()
                return status == "delivered"

            wait_for(delivered, what="the delivery to be recorded")
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
            engine.dispose()
