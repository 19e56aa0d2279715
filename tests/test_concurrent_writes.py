"""The same write sent 20 times at once: one row, one 201, and no 409 or 500.

A billing system retrying on a timeout, or two of its workers, send the same bill at the same
moment. Each test starts a real uvicorn (``live_server``) and fires 20 identical requests from
20 threads released together, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.process import Process
from reminders.webhook_keys import inbound_token

pytestmark = pytest.mark.slow  # a real server and twenty threads at once: not in the fast tier

CALLERS = 20
Headers = dict[str, str]


def all_at_once(
    base_url: str, request: Callable[[httpx.Client, int], httpx.Response]
) -> list[httpx.Response]:
    """``request`` made by ``CALLERS`` threads released together (each given its index); their
    answers.

    A 503 with Retry-After (the API at its concurrency bound) is tried again, as a client
    should: what is checked is what each write ends as.
    """
    barrier = threading.Barrier(CALLERS)

    def one(index: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            barrier.wait()
            while True:
                response = request(client, index)
                if response.status_code != 503 or "retry-after" not in response.headers:
                    return response
                time.sleep(float(response.headers["retry-after"]))

    with ThreadPoolExecutor(CALLERS) as pool:
        return list(pool.map(one, range(CALLERS)))


def post_all_at_once(
    base_url: str, path: str, body: dict[str, Any], headers: Headers
) -> list[httpx.Response]:
    return all_at_once(base_url, lambda client, _: client.post(path, json=body, headers=headers))


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


NEW_CUSTOMER = {
    "by external_id": {"external_id": "CUST-1", "name": "Иван Петров", "phone": "0888123456"},
    "by phone": {"name": "Иван Петров", "phone": "0888123456"},
}


@pytest.mark.parametrize("customer", NEW_CUSTOMER.values(), ids=NEW_CUSTOMER.keys())
def test_the_same_bill_at_once_is_one_bill_one_customer_one_201(
    live_server: str, writer: Headers, engine: Engine, customer: dict[str, str]
) -> None:
    bill = {"external_id": "INV-1", "contact": customer, "amount": "84.20", "due": "2030-01-15"}
    responses = post_all_at_once(live_server, "/api/v1/bills", bill, writer)
    assert statuses(responses) == {201: 1, 200: CALLERS - 1}, [r.text for r in responses]
    assert count(engine, "anchors") == 1
    assert count(engine, "contacts") == 1
    assert count(engine, "anchor_recipients") == 1
    ids = {response.json()["id"] for response in responses}
    notices = {tuple(n["id"] for n in response.json()["notices"]) for response in responses}
    assert len(ids) == 1 and len(notices) == 1, notices
    # The bill policy's four steps, planned once.
    assert count(engine, "notices") == 4 == len(notices.pop())


def test_the_same_contact_at_once_is_one_contact_one_201(
    live_server: str, writer: Headers, engine: Engine
) -> None:
    contact = {"external_id": "CUST-1", "name": "Иван Петров", "phone": "0888123456"}
    responses = post_all_at_once(live_server, "/api/v1/contacts", contact, writer)
    # Creating is not updating: the others are told the external_id is taken.
    assert statuses(responses) == {201: 1, 409: CALLERS - 1}, [r.text for r in responses]
    assert all("external_id" in r.json()["detail"] for r in responses if r.status_code == 409)
    assert count(engine, "contacts") == 1


def test_the_same_event_at_once_is_one_event_one_201(
    live_server: str, writer: Headers, engine: Engine
) -> None:
    event = {
        "title": "Преглед",
        "start": "2030-01-15T10:30:00+02:00",
        "recipients": {"phones": ["0888123456"]},
        "external_id": "APPT-1",
    }
    responses = post_all_at_once(live_server, "/api/v1/events", event, writer)
    assert statuses(responses) == {201: 1, 409: CALLERS - 1}, [r.text for r in responses]
    assert all("PATCH it" in r.json()["detail"] for r in responses if r.status_code == 409)
    assert count(engine, "anchors") == 1
    assert count(engine, "notices") == 2  # the appointment policy's two steps


def test_the_same_unknown_number_texting_stop_at_once_is_one_contact(
    live_server: str, process: Process, engine: Engine
) -> None:
    settings = process.runtime.settings
    process.runtime.settings = settings.model_copy(update={"webhook_secret": SecretStr("s")})
    token = inbound_token("s")
    query = f"token={token}&from=%2B359888123456&to=1234&text=STOP&coding=0&charset=UTF-8"
    # Twenty messages (each its own Kannel id), as a customer's phone retrying would send.
    responses = all_at_once(
        live_server, lambda client, i: client.get(f"/webhooks/kannel/inbound?{query}&id=k{i}")
    )
    assert statuses(responses) == {200: CALLERS}, [r.text for r in responses]
    assert count(engine, "inbound_messages") == CALLERS
    assert count(engine, "contacts") == 1


def test_the_same_inbound_sms_delivered_again_at_once_is_kept_once(
    live_server: str, process: Process, engine: Engine
) -> None:
    """A gateway retrying while we still answer: the retries wait on the number's lock, then
    find the first (README, "Who commits": the lock is held until the route commits)."""
    settings = process.runtime.settings
    process.runtime.settings = settings.model_copy(update={"webhook_secret": SecretStr("s")})
    query = f"token={inbound_token('s')}&from=%2B359888123457&to=1234&text=STOP&coding=0&id=k1"
    responses = all_at_once(
        live_server, lambda client, _: client.get(f"/webhooks/kannel/inbound?{query}")
    )
    assert statuses(responses) == {200: CALLERS}, [r.text for r in responses]
    assert count(engine, "inbound_messages") == 1
    assert count(engine, "contacts") == 1


def test_overlapping_bill_batches_at_once_each_write_every_row(
    live_server: str, writer: Headers, engine: Engine
) -> None:
    """Each batch locks its customers and bills, then plans (locking the bills' anchors) in
    the same transaction; batches naming the same ones in other orders never wait in a circle."""
    rows = [
        {
            "external_id": f"INV-{i}",
            "contact": {
                "external_id": f"CUST-{i % 5}",
                "name": "Иван",
                "phone": f"088812345{i % 5}",
            },
            "amount": "10.00",
            "due": "2030-01-15",
        }
        for i in range(20)
    ]

    def post(client: httpx.Client, index: int) -> httpx.Response:
        mine = rows[index % 7 :] + rows[: index % 7]  # each caller its own order
        body = {"bills": mine[::-1] if index % 2 else mine}
        return client.post("/api/v1/bills/batch", json=body, headers=writer)

    responses = all_at_once(live_server, post)
    assert statuses(responses) == {200: CALLERS}, [r.text for r in responses]
    assert all(r.json()["refused"] == [] for r in responses), [r.text for r in responses]
    assert sum(r.json()["created"] for r in responses) == len(rows)
    assert (count(engine, "anchors"), count(engine, "contacts")) == (len(rows), 5)
    assert count(engine, "notices") == 4 * len(rows)  # the bill policy's four steps, once
