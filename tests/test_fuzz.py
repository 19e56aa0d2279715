"""Fuzz the whole HTTP API from its own OpenAPI schema: no request may end in a 5xx.

Schemathesis makes the cases from ``app.openapi()``. For every operation: its deterministic
coverage cases (boundary values, missing and wrongly typed parameters), each query parameter
with a fixed list of edge values (NUL, LIKE wildcards, cursors past the integer limits), then
Hypothesis-generated cases, valid (positive) and schema-breaking (negative). They are sent
through the ``client`` fixture, so the app runs with its scheduler, on SQLite and on PostgreSQL.

Every request carries the admin key. ``DELETE /api/v1/keys/{key_id}`` is fuzzed too, but never
with the id of that admin key, so the fuzzer cannot lock itself out; the test checks at the end
that the key still works.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from schemathesis import APIOperation, Case, GenerationMode

pytestmark = pytest.mark.slow  # real processes and clocks: not in the fast tier

BASE_URL = "http://testserver"
# Generated cases per operation and mode. With the coverage cases, the 56 operations get about
# 6,500 requests, about half of them generated: 190 s per backend alone on the 2-core machine.
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 20}
# Each backend's operations are fuzzed in this many tests (every PARTS-th operation by label,
# each test on a fresh app and database with the same seed rows): the parts spread over the
# suite's processes instead of holding one of them for minutes.
PARTS = 4
REVOKE_KEY = ("DELETE", "/api/v1/keys/{key_id}")
STREAM = ("GET", "/api/v1/stats/stream")
# Valid Bulgarian mobiles (the default region is BG) for the seed data.
SEED_PHONES = ["0888123456", "0899123457", "0877123458"]

# Rules the OpenAPI schema cannot express (a phone must be a real mobile, a zone must exist, no
# control characters, send_at not in the past, ids that exist, a cursor is base64 of "id:<n>")
# stop almost every generated body at validation. So in positive mode about half of the cases
# get realistic values in those fields (the rest of the case stays as generated), which lets the
# fuzzer reach the code behind the validation too.
SOON = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
PHONES = st.sampled_from([*SEED_PHONES, "+359888765432", "00359899765432", "0878 111 222"])
HINTS: dict[str, st.SearchStrategy[Any]] = {
    "phone": PHONES,
    "email": st.sampled_from(["a@example.com", "Иван@пример.бг"]),
    "timezone": st.sampled_from(["Europe/Sofia", "UTC", "Pacific/Kiritimati"]),
    "sender_id": st.sampled_from(["Clinic", "+359888000111", "A 1"]),
    "send_at": st.one_of(
        st.none(),
        # Within the dates accepted (a year back to five ahead), words, and the far ends.
        st.datetimes(min_value=SOON, max_value=SOON + timedelta(days=3 * 365)).map(
            lambda d: d.replace(tzinfo=UTC).isoformat()
        ),
        st.sampled_from(["утре в 10", "в 10:30", "9999-12-31T23:00:00+00:00", "0001-01-01T01:00"]),
    ),
    "to": st.fixed_dictionaries(
        {"phones": st.lists(PHONES, max_size=3)},
        optional={
            "contacts": st.lists(st.integers(1, 4), max_size=3),
            "groups": st.lists(st.integers(1, 2), max_size=2),
        },
    ),
    "contact_ids": st.lists(st.integers(1, 5), min_size=1, max_size=4),
    "password": st.sampled_from(["long enough password", "  с интервали в края  "]),
}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Query values: cursors around the integer limits of both databases, and search text with LIKE
# wildcards and the NUL and control characters a database may refuse.
CURSOR_IDS = st.one_of(
    st.integers(0, 20),
    st.integers(2**31 - 2, 2**31 + 2),
    st.integers(2**63 - 2, 2**63 + 2),
    st.integers(min_value=0),
)
EDGE_TEXT = ["", " ", "%", "_", "\\", "'", "\x00", "a\x00b", "\x1f", "😀", "иван", "0888 123"]
SEARCH_TEXT = st.sampled_from(EDGE_TEXT)


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


EDGE_CURSORS = [_cursor(n) for n in (0, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 10**30)]


def _nudge(case: Case, data: st.DataObject) -> None:
    """Swap some generated values of a positive case for the values above; each swap is drawn."""
    if isinstance(case.body, dict) and data.draw(st.booleans()):
        for name, value in case.body.items():
            if name in HINTS:
                case.body[name] = data.draw(HINTS[name])
            elif isinstance(value, str):
                case.body[name] = CONTROL.sub("", value) or "x"
    for name, value in (case.query or {}).items():
        if name == "cursor" and data.draw(st.booleans()):
            case.query[name] = _cursor(data.draw(CURSOR_IDS))
        elif isinstance(value, str) and data.draw(st.booleans()):
            case.query[name] = data.draw(SEARCH_TEXT)


@dataclass
class Failure:
    method: str
    path: str
    body: str
    status: int
    response: str


class Fuzzer:
    """Sends cases with the admin key and keeps every 5xx."""

    def __init__(self, client: TestClient, bearer: str, own_key: int) -> None:
        self.client = client
        self.bearer = bearer
        self.own_key = own_key
        self.sent = 0
        self.failures: list[Failure] = []

    def revokes_own_key(self, case: Case) -> bool:
        """Would the app read this case as revoking the key the fuzzer uses?"""
        if (case.method.upper(), case.operation.path) != REVOKE_KEY:
            return False
        raw = (case.path_parameters or {}).get("key_id")
        try:
            return TypeAdapter(int).validate_python(str(raw)) == self.own_key
        except ValidationError:
            return False

    def check(self, case: Case) -> None:
        """Serialize ``case`` as schemathesis does for `requests` and send it in-process."""
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        kwargs.pop("auth", None)
        kwargs["headers"] = {**kwargs["headers"], "Authorization": self.bearer}
        if "json" in kwargs:
            # allow_nan=False: a body that is not JSON would be a bug in this test, not the app.
            kwargs["data"] = json.dumps(kwargs.pop("json"), allow_nan=False).encode()
        prepared = requests.Request(**kwargs).prepare()
        headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        response = self.client.request(
            str(prepared.method), str(prepared.url), headers=headers, content=prepared.body
        )
        self.sent += 1
        if response.status_code >= 500:
            body = prepared.body or b""
            if isinstance(body, bytes):
                body = body.decode("utf-8", "backslashreplace")
            self.failures.append(
                Failure(
                    method=str(prepared.method),
                    path=str(prepared.path_url),
                    body=body,
                    status=response.status_code,
                    response=response.text,
                )
            )

    def coverage(self, operation: APIOperation) -> None:
        schema = operation.schema
        cases = schema.iter_coverage_cases(
            operation,
            generation_modes=list(GenerationMode),
            generation_config=schema.config.generation_for(operation=operation),
        )
        for case in cases:
            if not self.revokes_own_key(case):
                self.check(case)
        # Each query parameter alone with each edge value, on the seed rows (id 1).
        path = {parameter.name: 1 for parameter in operation.path_parameters}
        for parameter in operation.query:
            values = EDGE_CURSORS if parameter.name == "cursor" else EDGE_TEXT
            for value in values:
                self.check(operation.Case(path_parameters=path, query={parameter.name: value}))

    def fuzz(self, operation: APIOperation, mode: GenerationMode) -> None:
        @hypothesis_settings(
            max_examples=EXAMPLES[mode],
            derandomize=True,
            database=None,
            deadline=None,
            # No shrinking: the app keeps state between requests, so each failure is reported
            # as it was sent, and the test collects them all rather than stopping at the first.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def run(case: Case, data: st.DataObject) -> None:
            assume(not self.revokes_own_key(case))
            if mode == GenerationMode.POSITIVE:
                _nudge(case, data)
            self.check(case)

        run()


def _seed(client: TestClient, admin: dict[str, str]) -> None:
    """A few contacts, a group with members, a scheduled message, spare keys and users, so that the
    small ids the fuzzer picks hit real rows and reach the handlers' deeper paths."""
    contact_ids = []
    for index, phone in enumerate(SEED_PHONES):
        body = {"name": f"Seed {index}", "phone": phone, "external_id": f"seed-{index}"}
        response = client.post("/api/v1/contacts", json=body, headers=admin)
        assert response.status_code == 201, response.text
        contact_ids.append(response.json()["id"])
    response = client.post("/api/v1/groups", json={"name": "seed group"}, headers=admin)
    assert response.status_code == 201, response.text
    group_id = response.json()["id"]
    response = client.post(
        f"/api/v1/groups/{group_id}/members", json={"contact_ids": contact_ids[:2]}, headers=admin
    )
    assert response.status_code == 200, response.text
    body = {
        "to": {"groups": [group_id], "phones": ["0877123499"]},
        "text": "seed",
        "send_at": (datetime.now(UTC) + timedelta(days=365)).isoformat(),
    }
    response = client.post("/api/v1/messages", json=body, headers=admin)
    assert response.status_code == 201, response.text
    for scope in ("read", "write", "admin"):
        response = client.post("/api/v1/keys", json={"name": scope, "scope": scope}, headers=admin)
        assert response.status_code == 201, response.text
    for role in ("admin", "operator", "viewer"):
        body = {"email": f"{role}@example.bg", "role": role, "password": "long enough password"}
        response = client.post("/api/v1/users", json=body, headers=admin)
        assert response.status_code == 201, response.text


def _key_id(client: TestClient, admin: dict[str, str]) -> int:
    secret = admin["Authorization"].removeprefix("Bearer ")
    response = client.get("/api/v1/keys", headers=admin)
    assert response.status_code == 200, response.text
    (key_id,) = [k["id"] for k in response.json() if secret.startswith(k["prefix"])]
    return int(key_id)


@pytest.mark.parametrize("part", range(PARTS))
def test_no_server_errors(client: TestClient, admin: dict[str, str], part: int) -> None:
    _seed(client, admin)
    fuzzer = Fuzzer(client, admin["Authorization"], _key_id(client, admin))
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    # The server-sent-events stream never ends by design (a client reading it whole would wait
    # forever); tests/test_stats.py reads it with a limit instead.
    every = sorted(
        (
            op
            for op in (result.ok() for result in schema.get_all_operations())
            if (op.method.upper(), op.path) != STREAM
        ),
        key=lambda op: op.label,
    )
    assert len(every) >= 20, [op.label for op in every]
    operations = every[part::PARTS]
    # Deletions last, so the earlier operations still find the seed rows; revoking keys very last.
    operations.sort(
        key=lambda op: ((op.method.upper(), op.path) == REVOKE_KEY, op.method.upper() == "DELETE")
    )

    started = time.monotonic()
    for operation in operations:
        fuzzer.coverage(operation)
        fuzzer.fuzz(operation, GenerationMode.POSITIVE)
        # Negative mode needs something to break: an operation without parameters has nothing.
        if list(operation.iter_parameters()) or len(operation.body):
            fuzzer.fuzz(operation, GenerationMode.NEGATIVE)
    elapsed = time.monotonic() - started
    print(f"{len(operations)} operations, {fuzzer.sent} requests in {elapsed:.1f}s")

    assert client.get("/api/v1/keys", headers=admin).status_code == 200, "the admin key was revoked"
    assert fuzzer.sent >= len(operations) * 50, f"only {fuzzer.sent} requests were sent"
    if fuzzer.failures:
        report = "\n\n".join(
            f"{f.method} {f.path}\nrequest body: {f.body[:2000]}\n"
            f"-> {f.status}: {f.response[:2000]}"
            for f in fuzzer.failures
        )
        count = len(fuzzer.failures)
        pytest.fail(f"{count} requests got a 5xx response:\n\n{report}", pytrace=False)
