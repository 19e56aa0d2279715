"""Webhooks: endpoints through the API, events written with their changes, signed deliveries,
retries and their log. Delivery is driven by hand with a pinned clock here (``deliver_next``);
``test_webhooks_e2e.py`` runs the workers themselves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from standardwebhooks import Webhook

from reminders.accounts import crud as accounts_crud
from reminders.accounts.scoping import scoped_session
from reminders.inbound import receive
from reminders.process import build
from reminders.schemas.accounts import AccountCreate
from reminders.settings import Settings, load_settings
from reminders.webhooks.delivery import DISABLE_AFTER, deliver_next, next_step
from reminders.webhooks.outbox import Event, enqueue
from reminders.webhooks.posting import Answer, Poster
from tests.conftest import make_key
from tests.webhook_receiver import Receiver

Headers = dict[str, str]
T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Webhooks may reach the receivers these tests run on 127.0.0.1."""
    return load_settings(
        database_url=database_url, quiet_hours="off", sender="outbox", allow_private_webhooks=True
    )


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The API without the workers: these tests deliver by hand, at pinned times."""
    process = build(settings, engine, run_scheduler=False)
    with TestClient(process.app, raise_server_exceptions=False) as test_client:
        yield test_client


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: Any, field: str, status: int = 422) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert field in json.dumps(body), body
    return json.dumps(body)


def register(api: TestClient, headers: Headers, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, **fields}
    created: dict[str, Any] = ok(api.post("/api/v1/webhooks", json=body, headers=headers), 201)
    return created


def other_account(engine: Engine) -> Headers:
    with Session(engine) as session:
        accounts_crud.create_account(session, AccountCreate(slug="other"))
        session.commit()
    return make_key(engine, "write", account="other")


def one_event(
    engine: Engine, account_id: int = 1, event_type: str = "notice.sent", at: datetime = T0
) -> int:
    with engine.begin() as conn:
        return enqueue(conn, [Event(account_id, event_type, {"notice_id": 7}, at)])


def deliver(engine: Engine, at: datetime, *, allow_private: bool = True) -> list[Any]:
    poster = Poster(allow_private=allow_private, timeout=5)
    try:
        return deliver_next(engine, poster, token="t1", count=10, timeout=5, clock=lambda: at)
    finally:
        poster.close()


# --- endpoints through the API ---------------------------------------------------------------


def test_an_endpoint_is_registered_listed_changed_rotated_and_removed(
    api: TestClient, writer: Headers, reader: Headers
) -> None:
    created = register(
        api, writer, "https://93.184.216.34/hooks", events=["notice.failed", "notice.sent"]
    )
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert created["events"] == ["notice.failed", "notice.sent"] and created["enabled"]
    hook = f"/api/v1/webhooks/{created['id']}"
    listed = ok(api.get("/api/v1/webhooks", headers=reader))
    assert [h["id"] for h in listed] == [created["id"]]
    assert "secret" not in listed[0] and "secret" not in ok(api.get(hook, headers=reader))

    changed = ok(
        api.patch(
            hook, json={"events": "*", "enabled": False, "description": "ERP"}, headers=writer
        )
    )
    assert changed["events"] == ["*"] and not changed["enabled"]
    assert changed["description"] == "ERP"
    rotated = ok(api.post(f"{hook}/rotate-secret", headers=writer))
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret

    assert (
        api.post("/api/v1/webhooks", json={"url": "https://x.example"}, headers=reader).status_code
        == 403
    )
    assert api.delete(hook, headers=writer).status_code == 204
    assert api.get(hook, headers=reader).status_code == 404


def test_another_accounts_endpoint_is_not_found(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    hook = register(api, writer, "https://93.184.216.34/hooks")
    theirs = other_account(engine)
    path = f"/api/v1/webhooks/{hook['id']}"
    assert api.get(path, headers=theirs).status_code == 404
    assert api.patch(path, json={"enabled": False}, headers=theirs).status_code == 404
    assert api.post(f"{path}/rotate-secret", headers=theirs).status_code == 404
    assert api.delete(path, headers=theirs).status_code == 404
    assert api.get(f"{path}/deliveries", headers=theirs).status_code == 404
    assert ok(api.get("/api/v1/webhooks", headers=theirs)) == []


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "ftp://example.com/x"}, "url", "must start with https://"),
        ({"url": "https://user:pw@example.com/x"}, "url", "user name or password"),
        ({"url": "https://example.com/" + "x" * 2000}, "url", "2000"),
        ({"url": "https://127.0.0.1:8080/x"}, "url", "REMINDERS_ALLOW_PRIVATE_WEBHOOKS"),
        ({"url": "http://[::1]/x"}, "url", "private or local"),
        ({"url": "https://10.1.2.3/x"}, "url", "private or local"),
        (
            {"url": "https://93.184.216.34/x", "events": ["notice.sent", "notice.lost"]},
            "events",
            "notice.lost",
        ),
        ({"url": "https://93.184.216.34/x", "events": []}, "events", "at least one"),
        ({"url": "https://93.184.216.34/x", "description": "x" * 501}, "description", "500"),
        ({"url": "https://93.184.216.34/x", "secret": "mine"}, "secret", "not a known field"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    database_url: str, engine: Engine, writer: Headers, body: dict[str, Any], field: str, words: str
) -> None:
    strict = load_settings(database_url=database_url)  # no private address
    with TestClient(build(strict, engine, run_scheduler=False).app) as api:
        said = refused(api.post("/api/v1/webhooks", json=body, headers=writer), field)
    assert words in said


# --- events written with their change ---------------------------------------------------------


def test_an_account_without_endpoints_gets_no_delivery(engine: Engine) -> None:
    assert one_event(engine) == 0


def test_an_opt_out_by_sms_writes_its_events_in_its_transaction(
    api: TestClient, engine: Engine, settings: Settings, writer: Headers
) -> None:
    register(api, writer, "https://93.184.216.34/hooks")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    body = {"to": {"phones": ["0888 500 001"]}, "text": "x", "send_at": tomorrow}
    notice = ok(api.post("/api/v1/messages", json=body, headers=writer), 201)["notices"][0]
    with scoped_session(engine, None) as session:
        receive(
            session,
            None,
            provider="test",
            from_phone="+359888500001",
            text="СТОП",
            settings=settings,
        )
        session.rollback()  # nothing happened, so no event either
    assert _types(engine) == []
    with scoped_session(engine, None) as session:
        receive(
            session,
            None,
            provider="test",
            from_phone="+359888500001",
            text="СТОП",
            settings=settings,
        )
        session.commit()
    assert _types(engine) == ["contact.opted_out", "inbound.received", "notice.suppressed"]
    suppressed = _data(engine, "notice.suppressed")
    assert suppressed["notice_id"] == notice["id"] and suppressed["status"] == "suppressed"
    assert suppressed["phone"] == "+359888500001" and suppressed["error"]
    assert _data(engine, "inbound.received")["text"] == "СТОП"


def test_an_endpoint_gets_only_the_types_it_chose(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    register(api, writer, "https://93.184.216.34/a", events=["notice.failed"])
    register(api, writer, "https://93.184.216.34/b")
    assert one_event(engine, event_type="notice.sent") == 1
    assert one_event(engine, event_type="notice.failed") == 2


def _types(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_type FROM webhook_deliveries ORDER BY event_type"))
        return [str(r[0]) for r in rows]


def _data(engine: Engine, event_type: str) -> dict[str, Any]:
    with engine.connect() as conn:
        body = conn.execute(
            text("SELECT body FROM webhook_deliveries WHERE event_type = :t"), {"t": event_type}
        ).scalar_one()
    document = json.loads(body)
    assert document["type"] == event_type and document["timestamp"].endswith("Z")
    data: dict[str, Any] = document["data"]
    return data


# --- delivery ---------------------------------------------------------------------------------


def test_failing_twice_with_503_then_accepting_is_delivered_once_after_three_attempts(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    # The clock starts now, not at T0: the library refuses a webhook-timestamp five minutes
    # away from its own clock, and the three attempts take about a minute of pinned time.
    start = datetime.now(UTC)
    with Receiver([503, 503, 200]) as receiver:
        hook = register(api, writer, receiver.url)
        one_event(engine, at=start)
        at = start
        for _ in range(3):
            (step,) = deliver(engine, at)
            at = step.retry_at or at
        assert deliver(engine, at + timedelta(days=1)) == []
        received = receiver.wait_for(3)
    assert len(receiver.received) == 3
    assert len({r.headers["webhook-id"] for r in received}) == 1
    for request in received:  # each attempt verifies with the Standard Webhooks library
        Webhook(hook["secret"]).verify(request.body, request.headers)
    (delivery,) = ok(api.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=writer))["items"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["log"]] == [503, 503, 200]
    assert [a["attempt"] for a in delivery["log"]] == [1, 2, 3]
    assert delivery["log"][0]["response"] == "not now, please"
    assert delivery["webhook_id"] == received[0].headers["webhook-id"]
    assert delivery["event_type"] == "notice.sent"


def test_a_400_is_not_retried(api: TestClient, engine: Engine, writer: Headers) -> None:
    with Receiver([400]) as receiver:
        hook = register(api, writer, receiver.url)
        one_event(engine)
        (step,) = deliver(engine, T0)
        assert step.status == "failed" and step.retry_at is None
        assert deliver(engine, T0 + timedelta(days=2)) == []
    assert len(receiver.received) == 1
    (delivery,) = ok(api.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=writer))["items"]
    assert delivery["status"] == "failed" and "400" in delivery["last_error"]
    assert "not retried" in delivery["last_error"]


def test_redeliver_sends_it_again_with_the_same_webhook_id(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    with Receiver([400, 200]) as receiver:
        hook = register(api, writer, receiver.url)
        one_event(engine)
        deliver(engine, T0)
        path = f"/api/v1/webhooks/{hook['id']}/deliveries"
        (failed,) = ok(api.get(path, headers=writer))["items"]
        again = ok(api.post(f"{path}/{failed['id']}/redeliver", headers=writer), 202)
        assert again["status"] == "pending"
        (step,) = deliver(engine, datetime.now(UTC) + timedelta(seconds=1))
        assert step.status == "delivered"
        first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert api.post(f"{path}/999999/redeliver", headers=writer).status_code == 404


def test_429_waits_as_long_as_retry_after_says(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    with Receiver([429], retry_after="120") as receiver:
        register(api, writer, receiver.url)
        one_event(engine)
        (step,) = deliver(engine, T0)
    assert step.status == "pending" and step.retry_at == T0 + timedelta(seconds=120)


def test_a_network_error_is_retried_and_gives_up_after_three_days(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    hook = register(api, writer, "http://127.0.0.1:9/closed")  # nothing listens on port 9
    one_event(engine)
    at, steps = T0, []
    while True:
        (step,) = deliver(engine, at)
        steps.append(step)
        if step.retry_at is None:
            break
        at = step.retry_at
    assert all(s.status == "pending" for s in steps[:-1]) and steps[-1].status == "failed"
    assert "gave up" in (steps[-1].reason or "") and at <= T0 + timedelta(days=3)
    assert 5 < len(steps) < 40
    endpoint = ok(api.get(f"/api/v1/webhooks/{hook['id']}", headers=writer))
    assert endpoint["enabled"] and endpoint["failing_since"] is not None


def test_an_endpoint_failing_for_five_days_is_disabled_with_the_reason(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    with Receiver([500]) as receiver:
        hook = register(api, writer, receiver.url)
        for day in range(7):
            at = T0 + timedelta(days=day)
            with engine.begin() as conn:
                enqueue(conn, [Event(1, "notice.sent", {"day": day}, at)])
            deliver(engine, at)
        path = f"/api/v1/webhooks/{hook['id']}"
        endpoint = ok(api.get(path, headers=writer))
        assert not endpoint["enabled"]
        assert "five days" in endpoint["disabled_reason"] and "500" in endpoint["disabled_reason"]
        calls = len(receiver.received)
        assert deliver(engine, T0 + timedelta(days=7)) == []  # a disabled endpoint gets nothing
        assert len(receiver.received) == calls
        # Enabled again by a person: its reason goes, and what waited is delivered.
        enabled = ok(api.patch(path, json={"enabled": True}, headers=writer))
        assert enabled["disabled_reason"] is None and enabled["failing_since"] is None
    assert DISABLE_AFTER == timedelta(days=5)


def test_a_killed_workers_claim_is_taken_by_another_after_its_lease(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    from reminders.webhooks.delivery import claim, lease_for

    with Receiver([200]) as receiver:
        register(api, writer, receiver.url)
        one_event(engine)
        lease = lease_for(10, 5)
        assert len(claim(engine, "dead", T0, 10, lease)) == 1  # and then it died
        assert deliver(engine, T0 + lease - timedelta(seconds=1)) == []
        (step,) = deliver(engine, T0 + lease + timedelta(seconds=1))
        assert step.status == "delivered"
        assert len(receiver.wait_for(1)) == 1


def test_next_step_is_decided_by_the_answer() -> None:
    give_up = T0 + timedelta(days=3)
    for code in (500, 502, 503, 429):
        step = next_step(Answer(code, "", None, 5), 1, give_up, T0)
        assert step.status == "pending" and step.retry_at is not None
        assert T0 + timedelta(seconds=8) <= step.retry_at <= T0 + timedelta(seconds=12)
    for code in (400, 401, 404, 410, 301):
        assert next_step(Answer(code, "", None, 5), 1, give_up, T0).status == "failed"
    assert next_step(Answer(204, "", None, 5), 1, give_up, T0).status == "delivered"
    timeout = Answer(None, None, "did not answer within the timeout", 10_000)
    assert next_step(timeout, 1, give_up, T0).status == "pending"
    private = Answer(None, None, "points to a private address", 1, refused=True)
    assert next_step(private, 1, give_up, T0).status == "failed"
    later = next_step(Answer(503, "", None, 5), 20, give_up, T0)
    assert later.retry_at is not None and later.retry_at - T0 <= timedelta(hours=7.2)


def test_the_guard_refuses_a_private_address_at_delivery_too(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    with Receiver([200]) as receiver:
        register(api, writer, receiver.url)
        one_event(engine)
        (step,) = deliver(engine, T0, allow_private=False)
    assert step.status == "failed" and "REMINDERS_ALLOW_PRIVATE_WEBHOOKS" in (step.reason or "")
    assert receiver.received == []


def test_old_finished_deliveries_are_forgotten_pending_ones_never(
    api: TestClient, engine: Engine, writer: Headers
) -> None:
    from reminders.webhooks.retention import prune

    register(api, writer, "https://93.184.216.34/hooks")
    names = ("old_done", "old_failed", "old_pending", "new")
    for _ in names:
        assert one_event(engine, at=T0) == 1
    with engine.connect() as conn:
        made = conn.execute(text("SELECT id FROM webhook_deliveries ORDER BY id")).scalars()
        ids = dict(zip(names, made, strict=True))
    with engine.begin() as conn:
        for name, status, age in (
            ("old_done", "delivered", 40),
            ("old_failed", "failed", 31),
            ("old_pending", "pending", 40),
            ("new", "delivered", 29),
        ):
            conn.execute(
                text("UPDATE webhook_deliveries SET status = :s, created_at = :at WHERE id = :id"),
                {
                    "s": status,
                    "at": (T0 - timedelta(days=age)).replace(tzinfo=None),
                    "id": ids[name],
                },
            )
            conn.execute(
                text(
                    "INSERT INTO webhook_attempts (account_id, delivery_id, attempt, status_code,"
                    " latency_ms, response, attempted_at) VALUES (1, :id, 1, 200, 5, 'ok', :at)"
                ),
                {"id": ids[name], "at": T0.replace(tzinfo=None)},
            )
    assert prune(engine, T0, timedelta(days=30), chunk=1) == 2  # a chunk at a time
    with engine.connect() as conn:
        left = set(conn.execute(text("SELECT id FROM webhook_deliveries")).scalars())
        logged = set(conn.execute(text("SELECT delivery_id FROM webhook_attempts")).scalars())
    assert left == logged == {ids["old_pending"], ids["new"]}
    assert prune(engine, T0, timedelta(days=30)) == 0
