"""Isolation between accounts, tested as a security property, over the API's own document.

Two accounts, clinic-a and bank-b, each get one of every resource through the API: a contact, a
group with a member, a policy of their own name, a message sent now and one for later, an event,
a bill, a feed source with its event, an API key and an inbound SMS. Then, with bank-b's key
(and again with a provider key acting in bank-b):

- every operation of ``/openapi.json`` with a path parameter, given clinic-a's object, is
  answered 404: never 403 (which would tell it exists), 200 or 500;
- every list (a GET without a path parameter) shows nothing of clinic-a's: no id of its rows,
  none of the words it wrote, none of its phones, not its slug; a query naming one of its rows
  (``?contact_id=``) finds nothing;
- every body field that names another row (a contact id, a group id, a policy's name), given
  clinic-a's, is a 422 naming the field.

The operations and the body fields are read from the document, so a new route or field is
tested the day it appears; the tables below say only how to fill a path parameter, which body
makes an operation valid, and how to name clinic-a's row in a field. One the tables do not know
fails the test, asking to be added.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.api.gate import ACCOUNT_HEADER, is_public
from reminders.paging import MAX_LIMIT
from reminders.settings import Settings, load_settings
from reminders.webhook_keys import inbound_token
from tests.conftest import make_key, wait_for

# Every operation twice over, for two callers: about 45 s, so the whole suite runs it, not the
# fast tier.
pytestmark = pytest.mark.slow

Headers = dict[str, str]
SECRET = "isolation-webhook-secret"
DAY = timedelta(days=1)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Feeds on 127.0.0.1 (the test's own server) and Kannel's inbound callback."""
    return load_settings(
        database_url=database_url,
        quiet_hours="off",
        allow_private_feeds=True,
        allow_private_webhooks=True,
        webhook_secret=SECRET,
    )


class Feeds:
    """An iCalendar server on 127.0.0.1: each account's feed at a path of its own."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        feeds = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = feeds.bodies.get(self.path, b"")
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, name: str, summary: str, phone: str) -> str:
        start = (datetime.now(UTC) + 4 * DAY).strftime("%Y%m%dT100000Z")
        lines = [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//test//isolation//EN",
            "BEGIN:VEVENT",
            f"UID:{name}@feed",
            "DTSTAMP:20261101T000000Z",
            f"DTSTART:{start}",
            f"SUMMARY:{summary}",
            f"DESCRIPTION:tel. {phone}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
        self.bodies[f"/{name}.ics"] = "\r\n".join(lines).encode()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}.ics"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feeds() -> Iterator[Feeds]:
    server = Feeds()
    yield server
    server.stop()


@dataclass
class Tenant:
    """An account and what it made: ``ids`` by kind, the words it wrote (``marker``)."""

    slug: str
    headers: Headers
    marker: str
    phones: list[str]  # national numbers; +359... as stored
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def policy(self) -> str:
        return f"{self.marker}-policy"

    @property
    def stored_phones(self) -> list[str]:
        return ["+359" + p.replace(" ", "")[1:] for p in self.phones]

    def traces(self) -> list[str]:
        """What may not appear in another account's answers: its words, phones and slug."""
        national = [p.replace(" ", "") for p in self.phones]
        return [self.marker, f'"{self.slug}"', *self.stored_phones, *national]


def call(
    client: TestClient, method: str, path: str, headers: Headers, body: Any = None, **params: Any
) -> Any:
    query = f"?{urlencode(params, doseq=True)}" if params else ""
    return client.request(method, path + query, headers=headers, json=body)


def ok(response: Any, *codes: int) -> Any:
    assert response.status_code in (codes or (200, 201)), (
        response.request.method,
        str(response.request.url),
        response.status_code,
        response.text,
    )
    return (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else response.text
    )


def soon(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def kannel_inbound(client: TestClient, sender: str, text: str, *, to: str = "") -> None:
    params = {"token": inbound_token(SECRET), "from": sender, "text": text, "coding": 0}
    params |= {"charset": "UTF-8", "to": to, "id": f"k-{time.monotonic_ns()}"}
    response = client.get(f"/webhooks/kannel/inbound?{urlencode(params)}")
    assert response.status_code == 200, response.text


def populate(client: TestClient, engine: Engine, tenant: Tenant, feeds: Feeds) -> None:
    """One of every resource in ``tenant``'s account, each naming its marker."""
    m, ids, phones = tenant.marker, tenant.ids, tenant.phones

    def post(path: str, body: Any = None) -> Any:
        return ok(call(client, "POST", path, tenant.headers, body))

    contact = {"name": f"{m} patient", "phone": phones[0], "external_id": f"{m}-c1"}
    ids["contact"] = post("/api/v1/contacts", contact)["id"]
    ids["group"] = post("/api/v1/groups", {"name": f"{m} group"})["id"]
    post(f"/api/v1/groups/{ids['group']}/members", {"contact_ids": [ids["contact"]]})
    step = {"offset": "-P1D", "at": "10:00", "template": f"{m} reminder: {{{{ title }}}}"}
    post("/api/v1/policies", {"name": tenant.policy, "steps": [step]})
    # Its endpoint (the feed server refuses a POST: each delivery fails, and is logged).
    hook = {"url": f"http://127.0.0.1:{feeds.httpd.server_address[1]}/{m}-hooks"}
    hook["events"] = ["notice.sent"]
    ids["webhook"] = ok(call(client, "POST", "/api/v1/webhooks", tenant.headers, hook))["id"]
    to = {"contacts": [ids["contact"]], "phones": [phones[1]]}
    now = post("/api/v1/messages", {"to": to, "text": f"{m} now"})
    ids["message"], ids["sent_notice"] = now["id"], now["notices"][0]["id"]
    later = {"to": {"phones": [phones[1]]}, "text": f"{m} later", "send_at": soon(2)}
    ids["notice"] = post("/api/v1/messages", later)["notices"][0]["id"]
    event = {"title": f"{m} visit", "start": soon(3), "recipients": {"groups": [ids["group"]]}}
    event |= {"policy": tenant.policy, "external_id": f"{m}-e1"}
    ids["event"] = post("/api/v1/events", event)["id"]
    bill = {"external_id": f"{m}-b1", "contact": ids["contact"], "amount": "12.50"}
    bill |= {"due": day(6), "title": f"{m} bill"}
    ids["bill"] = post("/api/v1/bills", bill)["id"]
    url = feeds.serve(m, f"{m} feed visit", phones[2])
    ids["source"] = post("/api/v1/sources", {"name": f"{m} feed", "url": url})["id"]
    synced = post(f"/api/v1/sources/{ids['source']}/sync")
    assert synced["source"]["last_error"] is None, synced
    events = ok(call(client, "GET", "/api/v1/events", tenant.headers, limit=MAX_LIMIT))
    ids["feed_event"] = next(e["id"] for e in events["items"] if e["source_id"] == ids["source"])
    ids["key"] = post("/api/v1/keys", {"name": f"{m} key", "scope": "read"})["id"]
    user = {"email": f"{m}@example.bg", "role": "viewer", "password": f"{m} password"}
    ids["user"] = post("/api/v1/users", user)["id"]

    # Its answer from the phone it texted, once the text went: an SMS belongs to the account
    # that last sent to its phone.
    def went() -> bool:
        sent = call(client, "GET", "/api/v1/notices", tenant.headers, message_id=ids["message"])
        return all(n["status"] == "sent" for n in ok(sent)["items"])

    wait_for(went, what=f"{tenant.slug}'s message to go")
    deliveries = f"/api/v1/webhooks/{ids['webhook']}/deliveries"
    logged = wait_for(
        lambda: ok(call(client, "GET", deliveries, tenant.headers))["items"],
        what=f"{tenant.slug}'s webhook delivery",
    )
    ids["delivery"] = logged[0]["id"]
    kannel_inbound(client, tenant.stored_phones[1], f"{m} reply")
    inbound = ok(call(client, "GET", "/api/v1/inbound", tenant.headers))["items"]
    assert [i["text"] for i in inbound] == [f"{m} reply"], inbound
    ids["inbound"] = inbound[0]["id"]

    # An answer to its event's reminder, once that went: the policy asks for one.
    replies = {"replies": {"confirm": ["1"], "cancel": ["2"]}}
    ok(call(client, "PATCH", f"/api/v1/policies/{tenant.policy}", tenant.headers, replies))
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE notices SET status = 'sent', sent_at = :now WHERE anchor_id = :event"),
            {"now": datetime.now(UTC).replace(tzinfo=None), "event": ids["event"]},
        )
    answer = {"from": phones[0], "text": f"{m} maybe"}
    handed = post("/api/v1/inbound", answer)
    assert handed["reply"] == "unclear", handed
    listed = ok(call(client, "GET", "/api/v1/replies", tenant.headers))["items"]
    assert [r["text"] for r in listed] == [f"{m} maybe"], listed
    ids["reply"] = listed[0]["id"]


def day(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


@pytest.fixture
def world(client: TestClient, engine: Engine, feeds: Feeds) -> tuple[Tenant, Tenant, Headers]:
    """clinic-a and bank-b, each with one of every resource; and a provider key."""
    provider = make_key(engine, "provider")
    for slug in ("clinic-a", "bank-b"):
        ok(call(client, "POST", "/api/v1/accounts", provider, {"slug": slug}))
    a_phones = ["0888 111 001", "0888 111 002", "0888 111 003"]
    b_phones = ["0888 222 001", "0888 222 002", "0888 222 003"]
    a = Tenant("clinic-a", make_key(engine, "admin", "clinic-a"), "alphaclinic", a_phones)
    b = Tenant("bank-b", make_key(engine, "admin", "bank-b"), "bravobank", b_phones)
    populate(client, engine, a, feeds)
    populate(client, engine, b, feeds)
    return a, b, provider


# How to fill each path parameter: the kind of row it names (``Tenant.ids``), or "policy".
PATH_PARAMS: dict[str, str] = {
    "contact_id": "contact",
    "group_id": "group",
    "message_id": "message",
    "event_id": "event",
    "bill_id": "bill",
    "source_id": "source",
    "notice_id": "notice",
    "key_id": "key",
    "user_id": "user",
    "reply_id": "reply",
    "webhook_id": "webhook",
    "delivery_id": "delivery",
    "name": "policy",
}
# A second object of the same kind, for operations that take it too (a feed's event).
ALSO: dict[str, str] = {"event": "feed_event", "notice": "sent_notice"}
# Operations above accounts: an account's key is refused them (403) whatever the object; a
# provider key may use them on any account, by design, so the provider's pass skips them.
ABOVE_ACCOUNTS = "/api/v1/accounts"


def valid_body(method: str, path: str, b: Tenant) -> Any:
    """A body the operation would take from bank-b on its own object: so that nothing but the
    path can make the answer a 404."""
    bodies: dict[tuple[str, str], Any] = {
        ("PATCH", "/api/v1/accounts/{slug}"): {"name": "x"},
        ("PATCH", "/api/v1/contacts/{contact_id}"): {"name": f"{b.marker} renamed"},
        ("PATCH", "/api/v1/groups/{group_id}"): {"name": f"{b.marker} renamed"},
        ("POST", "/api/v1/groups/{group_id}/members"): {"contact_ids": [b.ids["contact"]]},
        ("PATCH", "/api/v1/events/{event_id}"): {"title": f"{b.marker} renamed"},
        ("PATCH", "/api/v1/sources/{source_id}"): {"name": f"{b.marker} renamed"},
        ("PATCH", "/api/v1/policies/{name}"): {"description": f"{b.marker} renamed"},
        ("POST", "/api/v1/bills/{bill_id}/payment-failed"): {"reason": "x"},
        ("PATCH", "/api/v1/users/{user_id}"): {"role": "operator"},
        ("PATCH", "/api/v1/replies/{reply_id}"): {"handled": True},
        ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"description": f"{b.marker} renamed"},
    }
    return bodies.get((method, path))


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def path_params(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "path"]

    @property
    def query_params(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "query"]

    @property
    def body_required(self) -> bool:
        return bool(self.spec.get("requestBody", {}).get("required"))

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(client: TestClient) -> list[Operation]:
    """Every operation of the document that needs a key (the public ones are the gateways'
    callbacks, see tests/test_account_inbound.py, and the health checks)."""
    document = client.get("/openapi.json").json()
    found = [
        Operation(method.upper(), path, spec)
        for path, methods in document["paths"].items()
        for method, spec in methods.items()
        if not is_public(path)
    ]
    assert len(found) >= 50, [str(o) for o in found]
    return found


def fill(path: str, tenant: Tenant, *, also: bool = False) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[1]
        assert name in PATH_PARAMS, f"tell the test how to fill the path parameter {{{name}}}"
        kind = PATH_PARAMS[name]
        if kind == "policy":
            return tenant.policy
        return str(tenant.ids[ALSO.get(kind, kind) if also else kind])

    return re.sub(r"\{(\w+)\}", one, path)


def as_b(b: Tenant, provider: Headers) -> dict[str, Headers]:
    return {
        "bank-b's key": b.headers,
        "a provider key in bank-b": {**provider, ACCOUNT_HEADER: b.slug},
    }


def test_another_accounts_object_in_a_path_is_not_found(
    client: TestClient, world: tuple[Tenant, Tenant, Headers]
) -> None:
    a, b, provider = world
    before = a_view(client, a)
    with_ids = [op for op in operations(client) if op.path_params]
    # Deletions last: were one to succeed, the others would meet a missing row, not a scoped one.
    with_ids.sort(key=lambda op: op.method == "DELETE")
    wrong: list[str] = []
    tried = 0
    for who, headers in as_b(b, provider).items():
        for op in with_ids:
            above = op.path.startswith(ABOVE_ACCOUNTS)
            if above and who != "bank-b's key":
                continue
            for also in (False, True):
                path = (
                    fill(op.path, a, also=also) if not above else op.path.replace("{slug}", a.slug)
                )
                body = valid_body(op.method, op.path, b)
                if op.body_required and body is None:
                    wrong.append(f"{op}: give the test a valid body for it (valid_body)")
                    continue
                response = call(client, op.method, path, headers, body)
                tried += 1
                expected = 403 if above else 404
                if response.status_code != expected:
                    wrong.append(
                        f"{who}: {op.method} {path} -> {response.status_code} {response.text[:300]}"
                    )
    assert not wrong, "\n".join(wrong)
    assert tried >= 2 * len(with_ids)
    # And nothing of clinic-a's changed.
    assert a_view(client, a) == before


def a_view(client: TestClient, a: Tenant) -> dict[str, Any]:
    """What clinic-a's key sees of its own rows, the fields another account might have moved."""
    h, ids = a.headers, a.ids
    contact = ok(call(client, "GET", f"/api/v1/contacts/{ids['contact']}", h))
    group = ok(call(client, "GET", f"/api/v1/groups/{ids['group']}", h))
    members = ok(call(client, "GET", f"/api/v1/groups/{ids['group']}/members", h))["items"]
    events = [
        ok(call(client, "GET", f"/api/v1/events/{ids[k]}", h)) for k in ("event", "feed_event")
    ]
    bill = ok(call(client, "GET", f"/api/v1/bills/{ids['bill']}", h))
    source = ok(call(client, "GET", f"/api/v1/sources/{ids['source']}", h))
    notices = [
        ok(call(client, "GET", f"/api/v1/notices/{ids[k]}", h)) for k in ("notice", "sent_notice")
    ]
    policy = ok(call(client, "GET", f"/api/v1/policies/{a.policy}", h))
    keys = ok(call(client, "GET", "/api/v1/keys", h))
    return {
        "contact": (contact["name"], contact["phone"], contact["opted_out"]),
        "group": (group["name"], group["member_count"], [m["id"] for m in members]),
        "events": [(e["title"], e["cancelled"], e["policy"]) for e in events],
        "bill": (bill["paid"], bill["contact_id"], [n["status"] for n in bill["notices"]]),
        "source": (source["name"], source["url"], source["policy"]),
        "notices": [(n["status"], len(n["attempts"])) for n in notices],
        "policy": (policy["description"], policy["steps"]),
        "keys": sorted((k["id"], k["revoked_at"]) for k in keys),
    }


# Lists whose items are rows of one kind: their ids are compared, beyond the words.
LIST_KINDS: dict[str, str] = {
    "/api/v1/contacts": "contact",
    "/api/v1/groups": "group",
    "/api/v1/events": "event",
    "/api/v1/bills": "bill",
    "/api/v1/sources": "source",
    "/api/v1/notices": "notice",
    "/api/v1/inbound": "inbound",
    "/api/v1/keys": "key",
    "/api/v1/replies": "reply",
    "/api/v1/webhooks": "webhook",
}
# Query parameters that name a row: filled with clinic-a's, they must find nothing.
QUERY_REFS: dict[str, Callable[[Tenant], Any]] = {
    "contact_id": lambda t: t.ids["contact"],
    "message_id": lambda t: t.ids["message"],
    "external_id": lambda t: f"{t.marker}-b1",  # a bill's
}
# Query values a list needs (the stream would never end), and those that widen it to all.
LIST_QUERY: dict[str, dict[str, Any]] = {
    "/api/v1/stats/stream": {"limit": 1, "every": 0.5},
    "/api/v1/events": {"include_cancelled": "true"},
}


def own_ids(client: TestClient, tenant: Tenant, kind: str) -> set[int]:
    path = next(p for p, k in LIST_KINDS.items() if k == kind)
    found = ok(call(client, "GET", path, tenant.headers, **list_params(path)))
    items = found["items"] if isinstance(found, dict) else found
    return {item["id"] for item in items}


def list_params(path: str) -> dict[str, Any]:
    params = dict(LIST_QUERY.get(path, {}))
    if path in LIST_KINDS and path not in ("/api/v1/sources", "/api/v1/keys", "/api/v1/webhooks"):
        params["limit"] = MAX_LIMIT
    return params


def test_no_list_shows_another_accounts_rows(
    client: TestClient, world: tuple[Tenant, Tenant, Headers]
) -> None:
    a, b, provider = world
    lists = [op for op in operations(client) if op.method == "GET" and not op.path_params]
    assert {op.path for op in lists} >= set(LIST_KINDS) | {"/metrics", "/api/v1/stats"}
    theirs = {kind: own_ids(client, a, kind) for kind in set(LIST_KINDS.values())}
    mine = {kind: own_ids(client, b, kind) for kind in set(LIST_KINDS.values())}
    assert all(theirs.values()) and all(mine.values())
    wrong: list[str] = []
    for who, headers in as_b(b, provider).items():
        for op in lists:
            if op.path.startswith(ABOVE_ACCOUNTS):
                continue  # the provider's own list of accounts
            variants = [list_params(op.path)]
            for name in op.query_params:
                assert not name.endswith("_id") or name in QUERY_REFS, (
                    f"{op}: tell the test whose row the query parameter {name} names"
                )
                if name in QUERY_REFS:
                    variants.append({**list_params(op.path), name: QUERY_REFS[name](a)})
            for params in variants:
                response = call(client, "GET", op.path, headers, **params)
                shown = f"{who}: GET {op.path}?{urlencode(params)}"
                if response.status_code != 200:
                    wrong.append(f"{shown} -> {response.status_code} {response.text[:300]}")
                    continue
                text = response.text
                wrong += [f"{shown} shows {t!r}" for t in a.traces() if t in text]
                kind = LIST_KINDS.get(op.path)
                if kind is None:
                    continue
                body = response.json()
                items = body["items"] if isinstance(body, dict) else body
                ids = {item["id"] for item in items}
                if ids & theirs[kind]:
                    wrong.append(f"{shown} shows clinic-a's {kind} {sorted(ids & theirs[kind])}")
                narrowed = len(params) > len(list_params(op.path))
                if narrowed and items:
                    wrong.append(f"{shown} finds {len(items)} row(s) by clinic-a's id")
                if not narrowed and not ids >= mine[kind]:
                    wrong.append(f"{shown} misses bank-b's own {kind}s")  # not a vacuous pass
    assert not wrong, "\n".join(wrong)


# Body fields named like a reference to a row, but which are not one.
NOT_REFERENCES = {"external_id", "sender_id", "sender_ids", "default_sender_id"}
REFERENCE = re.compile(r"(^|\.)(\w+_ids?|contacts?|groups?|policy)$")


def body_fields(
    document: dict[str, Any], schema: dict[str, Any], prefix: str = ""
) -> Iterator[str]:
    """Every property path of a request body schema (``to.contacts``), refs and unions followed."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        yield from body_fields(document, document["components"]["schemas"][name], prefix)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from body_fields(document, option, prefix)
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        yield path
        yield from body_fields(document, sub, f"{path}.")
    if "items" in schema:
        yield from body_fields(document, schema["items"], prefix)


def reference_cases(a: Tenant, b: Tenant) -> dict[tuple[str, str, str], Any]:
    """(method, path, field) -> a body from bank-b naming clinic-a's row in that field alone."""
    contacts, groups, policy = [a.ids["contact"]], [a.ids["group"]], a.policy
    message = {"text": "x"}
    event = {"title": "x", "start": soon(3), "recipients": {"phones": [b.phones[0]]}}
    bill = {"external_id": f"{b.marker}-b9", "contact": b.ids["contact"], "amount": "1.00"}
    bill["due"] = day(8)
    source = {"name": "x", "url": "http://127.0.0.1:9/x.ics"}
    events, sources = "/api/v1/events", "/api/v1/sources"
    return {
        ("POST", "/api/v1/messages", "to.contacts"): {**message, "to": {"contacts": contacts}},
        ("POST", "/api/v1/messages", "to.groups"): {**message, "to": {"groups": groups}},
        ("POST", events, "recipients.contacts"): {**event, "recipients": {"contacts": contacts}},
        ("POST", events, "recipients.groups"): {**event, "recipients": {"groups": groups}},
        ("POST", events, "policy"): {**event, "policy": policy},
        ("PATCH", events + "/{event_id}", "recipients.contacts"): {
            "recipients": {"contacts": contacts}
        },
        ("PATCH", events + "/{event_id}", "recipients.groups"): {"recipients": {"groups": groups}},
        ("PATCH", events + "/{event_id}", "policy"): {"policy": policy},
        ("POST", "/api/v1/bills", "contact"): {**bill, "contact": contacts[0]},
        ("POST", "/api/v1/bills", "policy"): {**bill, "policy": policy},
        ("POST", sources, "policy"): {**source, "policy": policy},
        ("POST", sources, "groups"): {**source, "groups": groups},
        ("POST", sources, "contacts"): {**source, "contacts": contacts},
        ("PATCH", sources + "/{source_id}", "policy"): {"policy": policy},
        ("PATCH", sources + "/{source_id}", "groups"): {"groups": groups},
        ("PATCH", sources + "/{source_id}", "contacts"): {"contacts": contacts},
        ("POST", "/api/v1/groups/{group_id}/members", "contact_ids"): {"contact_ids": contacts},
    }


def test_another_accounts_row_named_in_a_body_is_refused_naming_the_field(
    client: TestClient, world: tuple[Tenant, Tenant, Headers]
) -> None:
    a, b, provider = world
    document = client.get("/openapi.json").json()
    cases = reference_cases(a, b)
    found: set[tuple[str, str, str]] = set()
    for op in operations(client):
        content = op.spec.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        for name in body_fields(document, content["schema"]):
            if REFERENCE.search(name) and name.rsplit(".", 1)[-1] not in NOT_REFERENCES:
                found.add((op.method, op.path, name))
    unknown = sorted(found - set(cases))
    assert not unknown, f"tell the test how to name clinic-a's row in these fields: {unknown}"
    assert set(cases) <= found, sorted(set(cases) - found)  # the table names real fields
    wrong: list[str] = []
    for who, headers in as_b(b, provider).items():
        for (method, path, name), body in sorted(cases.items()):
            response = call(client, method, fill(path, b), headers, body)
            errors = response.json().get("errors", []) if response.status_code == 422 else []
            if not any(e["field"] == name or e["field"].startswith(f"{name}.") for e in errors):
                wrong.append(
                    f"{who}: {method} {path} with clinic-a's {name} -> "
                    f"{response.status_code} {response.text[:300]}"
                )
    assert not wrong, "\n".join(wrong)
    # A batch of bills refuses the row, naming the field, and writes the others.
    bill = reference_cases(a, b)[("POST", "/api/v1/bills", "contact")]
    good = {**bill, "external_id": f"{b.marker}-b10", "contact": b.ids["contact"]}
    answer = ok(call(client, "POST", "/api/v1/bills/batch", b.headers, {"bills": [bill, good]}))
    assert [(e["index"], [f["field"] for f in e["errors"]]) for e in answer["refused"]] == [
        (0, ["contact"])
    ], answer


def notice_count(client: TestClient, tenant: Tenant, since: datetime, until: datetime) -> int:
    params = {"since": since.isoformat(), "until": until.isoformat(), "limit": MAX_LIMIT}
    return len(ok(call(client, "GET", "/api/v1/notices", tenant.headers, **params))["items"])


def test_statistics_the_stream_and_the_report_count_the_callers_account_alone(
    client: TestClient, world: tuple[Tenant, Tenant, Headers]
) -> None:
    a, b, provider = world
    # clinic-a has more: a second message now, to two more numbers, and a second answer.
    more = {"to": {"phones": ["0888 111 004", "0888 111 005"]}, "text": f"{a.marker} more"}
    ok(call(client, "POST", "/api/v1/messages", a.headers, more))
    kannel_inbound(client, a.stored_phones[1], f"{a.marker} again")
    for tenant in (a, b):
        h = tenant.headers
        stats = ok(call(client, "GET", "/api/v1/stats", h))
        start, end = (datetime.fromisoformat(stats[k]) for k in ("start", "end"))
        counted = sum(stats["totals"]["statuses"].values())
        assert counted == notice_count(client, tenant, start, end) > 0, (tenant.slug, stats)
        inbound = ok(call(client, "GET", "/api/v1/inbound", h))["items"]
        assert stats["totals"]["received"] == len(inbound), (tenant.slug, stats)

        stream = client.get("/api/v1/stats/stream?limit=1", headers=h)
        [event] = [
            json.loads(line[5:]) for line in stream.text.splitlines() if line.startswith("data:")
        ]
        at = datetime.fromisoformat(event["at"])
        assert sum(event["statuses"].values()) == notice_count(client, tenant, at - DAY, at)
        assert event["received"] == len(inbound)

        report = client.get("/api/v1/reports/notices.csv", headers=h)
        rows = list(csv.DictReader(io.StringIO(report.text)))
        ids = {int(r["id"]) for r in rows}
        listed = {
            n["id"] for n in ok(call(client, "GET", "/api/v1/notices", h, limit=MAX_LIMIT))["items"]
        }
        assert ids and ids <= listed, (tenant.slug, ids - listed)

        carried = ok(call(client, "GET", "/api/v1/stats/links", h))["links"]
        attempts = sum(
            len(ok(call(client, "GET", f"/api/v1/notices/{n}", h))["attempts"]) for n in listed
        )
        assert sum(x["attempts"] for x in carried) == attempts > 0, (tenant.slug, carried)
    assert notice_count(client, a, *_week()) > notice_count(client, b, *_week())


def _week() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=7), now


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_metrics_count_the_callers_account_or_every_account_for_a_provider(
    client: TestClient, world: tuple[Tenant, Tenant, Headers]
) -> None:
    a, b, provider = world
    totals = {
        t.slug: len(ok(call(client, "GET", "/api/v1/notices", t.headers, limit=MAX_LIMIT))["items"])
        for t in (a, b)
    }
    for tenant in (a, b):
        text = ok(call(client, "GET", "/metrics", tenant.headers))
        notices = samples(text, "reminders_notices")
        assert {dict(labels)["account"] for labels in notices} == {tenant.slug}, notices
        assert sum(notices.values()) == totals[tenant.slug]
        depth = samples(text, "reminders_queue_depth")
        assert {dict(labels)["account"] for labels in depth} == {tenant.slug}, depth
    everyone = ok(call(client, "GET", "/metrics", provider))
    notices = samples(everyone, "reminders_notices")
    by_account: dict[str, float] = {}
    for labels, value in notices.items():
        slug = dict(labels)["account"]
        by_account[slug] = by_account.get(slug, 0) + value
    assert by_account == totals, by_account
    # A provider key acting in one account sees that account's numbers, as its keys do.
    inside = ok(call(client, "GET", "/metrics", {**provider, ACCOUNT_HEADER: b.slug}))
    assert {dict(labels)["account"] for labels in samples(inside, "reminders_notices")} == {b.slug}
