"""Reminder policies over the API: defaults seeded, steps and templates checked when saved."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from reminders.process import Process

Headers = dict[str, str]


def test_defaults_are_seeded(client: TestClient, reader: Headers) -> None:
    listed = {p["name"]: p for p in client.get("/api/v1/policies", headers=reader).json()}
    assert set(listed) == {"appointment", "bill"}
    assert [(s["offset"], s["at"]) for s in listed["appointment"]["steps"]] == [
        ("-P1D", "18:00"),
        ("-PT2H", None),
    ]
    assert [(s["offset"], s["at"], s["kind"]) for s in listed["bill"]["steps"]] == [
        ("-P3D", "10:00", "bill_due"),
        ("P0D", "10:00", "bill_due"),
        ("P3D", "10:00", "bill_overdue"),
        ("P10D", "10:00", "bill_overdue"),
    ]


def test_policy_lifecycle(client: TestClient, writer: Headers) -> None:
    body = {
        "name": "dentist",
        "description": "A week and a day before",
        "steps": [
            {"offset": "-P7D", "at": "9:30", "template": "Dentist on {{ date }}"},
            {"offset": "-p1d", "template": "Tomorrow {{ time }}"},
        ],
    }
    created = client.post("/api/v1/policies", json=body, headers=writer)
    assert created.status_code == 201, created.text
    assert [(s["offset"], s["at"]) for s in created.json()["steps"]] == [
        ("-P7D", "09:30"),
        ("-P1D", None),
    ]
    assert client.post("/api/v1/policies", json=body, headers=writer).status_code == 409

    patched = client.patch(
        "/api/v1/policies/dentist",
        json={"steps": [{"offset": "-PT3H", "template": "Soon"}]},
        headers=writer,
    )
    assert patched.status_code == 200
    assert patched.json()["description"] == "A week and a day before"
    assert [s["offset"] for s in patched.json()["steps"]] == ["-PT3H"]

    assert client.delete("/api/v1/policies/dentist", headers=writer).status_code == 204
    assert client.get("/api/v1/policies/dentist", headers=writer).status_code == 404


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        ({"offset": "-P1M", "template": "x"}, "steps.0.offset", "months"),
        ({"offset": "yesterday", "template": "x"}, "steps.0.offset", "ISO 8601"),
        ({"offset": "-P1D", "at": "25:00", "template": "x"}, "steps.0.at", "time of day"),
        ({"offset": "-P1D", "template": "Hi {{ name "}, "steps.0.template", "line 1"),
        (
            {"offset": "-P1D", "template": "Hi\n{{ name }}\n{{ 1 + }}"},
            "steps.0.template",
            "line 3: unexpected",
        ),
        ({"offset": "-P1D", "template": "{% if x %}never closed"}, "steps.0.template", "endif"),
        (
            {"offset": "-P1D", "template": "{{ " + "(" * 200 + "1" + ")" * 200 + " }}"},
            "steps.0.template",
            "nested too deeply",
        ),
        ({"offset": "-P1D", "template": "x", "kind": "message"}, "steps.0.kind", "event_reminder"),
        ({"offset": "-P1D", "template": "x", "extra": 1}, "steps.0.extra", "not a known field"),
    ],
)
def test_bad_steps_name_the_field(
    client: TestClient, writer: Headers, step: dict[str, Any], field: str, message: str
) -> None:
    response = client.post(
        "/api/v1/policies", json={"name": "bad", "steps": [step]}, headers=writer
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors
    assert client.get("/api/v1/policies/bad", headers=writer).status_code == 404


def test_bad_names_and_empty_steps(client: TestClient, writer: Headers) -> None:
    for name in ["Has Space", "", "-dash-first", "x" * 65]:
        response = client.post(
            "/api/v1/policies",
            json={"name": name, "steps": [{"offset": "-P1D", "template": "x"}]},
            headers=writer,
        )
        assert response.status_code == 422, name
        assert response.json()["errors"][0]["field"] == "name"
    empty = client.post("/api/v1/policies", json={"name": "empty", "steps": []}, headers=writer)
    assert empty.status_code == 422


def test_policy_priority_and_sender_id_reach_its_notices(
    client: TestClient, writer: Headers, process: Process
) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from reminders.wall_clock import QuietHours

    rt = process.runtime
    rt.settings = rt.settings.model_copy(update={"quiet_hours": QuietHours.parse("21:00-08:00")})

    sofia = ZoneInfo("Europe/Sofia")
    body = {
        "name": "card-alert",
        "steps": [{"offset": "-PT5H", "template": "Card {{ title }}"}],
        "priority": "transactional",
        "sender_id": "MyBank",
    }
    created = client.post("/api/v1/policies", json=body, headers=writer)
    assert created.status_code == 201, created.text
    assert (created.json()["priority"], created.json()["sender_id"]) == ("transactional", "MyBank")

    # Five hours before 03:00 is 22:00, inside the quiet hours (21:00-08:00): a bulk
    # reminder would be moved to the evening before; a transactional one keeps its time.
    day = (datetime.now(sofia) + timedelta(days=5)).date()
    start = datetime(day.year, day.month, day.day, 3, 0, tzinfo=sofia)
    event = client.post(
        "/api/v1/events",
        json={
            "title": "x",
            "start": start.isoformat(),
            "policy": "card-alert",
            "recipients": {"phones": ["0888 700 101"]},
        },
        headers=writer,
    )
    assert event.status_code == 201, event.text
    [notice] = event.json()["notices"]
    assert (notice["priority"], notice["sender_id"]) == ("transactional", "MyBank")
    assert datetime.fromisoformat(notice["send_at"]) == start - timedelta(hours=5)

    # An edit applies at once to the anchors that have reminders to come.
    patched = client.patch(
        "/api/v1/policies/card-alert",
        json={"priority": "bulk", "sender_id": None},
        headers=writer,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["planned"]["moved"] == 1
    shown = client.get(f"/api/v1/events/{event.json()['id']}", headers=writer)
    [notice] = shown.json()["notices"]
    assert (notice["priority"], notice["sender_id"]) == ("bulk", None)
    assert datetime.fromisoformat(notice["send_at"]) != start - timedelta(hours=5)


def test_editing_steps_replans_events_to_come(client: TestClient, writer: Headers) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    sofia = ZoneInfo("Europe/Sofia")
    day = (datetime.now(sofia) + timedelta(days=10)).date()
    start = datetime(day.year, day.month, day.day, 11, 0, tzinfo=sofia)
    event = client.post(
        "/api/v1/events",
        json={"title": "x", "start": start.isoformat(), "recipients": {"phones": ["0888700201"]}},
        headers=writer,
    ).json()
    assert [n["step"] for n in event["notices"]] == [0, 1]
    patched = client.patch(
        "/api/v1/policies/appointment",
        json={"steps": [{"offset": "-P3D", "at": "10:00", "template": "В {{ time }}"}]},
        headers=writer,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["planned"] == {
        "created": 0,
        "moved": 1,
        "updated": 0,
        "restored": 0,
        "expired": 0,
        "cancelled": 1,
        "unchanged": 0,
    }
    notices = client.get(f"/api/v1/events/{event['id']}", headers=writer).json()["notices"]
    by_step = {n["step"]: n for n in notices}
    assert by_step[0]["status"] == "scheduled"
    assert datetime.fromisoformat(by_step[0]["send_at"]) == (start - timedelta(days=3)).replace(
        hour=10
    )
    assert by_step[0]["template"] == "В {{ time }}"
    assert by_step[1]["status"] == "cancelled"


def test_a_template_only_edit_moves_nothing(client: TestClient, writer: Headers) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    sofia = ZoneInfo("Europe/Sofia")
    day = (datetime.now(sofia) + timedelta(days=10)).date()
    start = datetime(day.year, day.month, day.day, 11, 0, tzinfo=sofia)
    event = client.post(
        "/api/v1/events",
        json={
            "title": "x",
            "start": start.isoformat(),
            "recipients": {"phones": ["0888700301", "0888700302", "0888700303"]},
        },
        headers=writer,
    ).json()
    before = {n["id"]: n["send_at"] for n in event["notices"]}
    assert len(before) == 6
    steps = client.get("/api/v1/policies/appointment", headers=writer).json()["steps"]
    for step in steps:
        step["template"] = "Нов текст: " + step["template"]
    patched = client.patch("/api/v1/policies/appointment", json={"steps": steps}, headers=writer)
    assert patched.status_code == 200, patched.text
    assert patched.json()["planned"] == {
        "created": 0,
        "moved": 0,
        "updated": 6,
        "restored": 0,
        "expired": 0,
        "cancelled": 0,
        "unchanged": 0,
    }
    shown = client.get(f"/api/v1/events/{event['id']}", headers=writer).json()["notices"]
    assert {n["id"]: n["send_at"] for n in shown} == before
    assert all(n["status"] == "scheduled" for n in shown)


@pytest.mark.parametrize(
    ("field", "value"),
    [("priority", "urgent"), ("sender_id", "Way too long ID"), ("sender_id", "Bad_ID!")],
)
def test_bad_lane_or_sender_id_is_a_422(
    client: TestClient, writer: Headers, field: str, value: str
) -> None:
    body = {"name": "p1", "steps": [{"offset": "-P1D", "template": "x"}], field: value}
    response = client.post("/api/v1/policies", json=body, headers=writer)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    patched = client.patch("/api/v1/policies/appointment", json={field: value}, headers=writer)
    assert patched.status_code == 422
    assert (
        client.patch(
            "/api/v1/policies/appointment", json={"priority": None}, headers=writer
        ).status_code
        == 422
    )


STALL = "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("template", "message"),
    [
        (STALL, "bounds"),
        ("{% for i in range(999) %}{% for j in range(999) %}{% endfor %}{% endfor %}x", "steps"),
        ("{{ 'x' * 999999999 }}", "characters"),
        ("{{ title * 400 }}", "at most 1600"),
    ],
)
def test_a_template_that_runs_away_is_refused_when_saved(
    client: TestClient, writer: Headers, template: str, message: str
) -> None:
    steps = [
        {"offset": "-P1D", "template": "Fine {{ title }}"},
        {"offset": "-PT2H", "template": template},
    ]
    created = client.post("/api/v1/policies", json={"name": "p2", "steps": steps}, headers=writer)
    assert created.status_code == 422, created.text
    [error] = created.json()["errors"]
    assert error["field"] == "steps.1.template" and message in error["message"], error
    patched = client.patch("/api/v1/policies/appointment", json={"steps": steps}, headers=writer)
    assert patched.status_code == 422, patched.text
    assert patched.json()["errors"][0]["field"] == "steps.1.template"
    assert client.get("/api/v1/policies/p2", headers=writer).status_code == 404


def test_a_template_with_names_a_notice_does_not_have_is_refused(
    client: TestClient, writer: Headers
) -> None:
    steps = [{"offset": "-P1D", "template": "{{ event.title }} at {{ time }}, {{ place }}"}]
    created = client.post("/api/v1/policies", json={"name": "p3", "steps": steps}, headers=writer)
    assert created.status_code == 422, created.text
    [error] = created.json()["errors"]
    assert error["field"] == "steps.0.template"
    # The unknown names, then every name a template can use.
    assert error["message"].startswith("unknown names event, place; a template can use amount,")
    for name in ("first_name", "location", "title", "when"):
        assert name in error["message"]
    patched = client.patch("/api/v1/policies/appointment", json={"steps": steps}, headers=writer)
    assert patched.status_code == 422, patched.text
    # Names a template sets itself, loop variables and Jinja's own globals are fine.
    fine = (
        "{% set who = first_name or name %}{% for k in contact %}{{ k }}{% endfor %}"
        "{% set ns = namespace(n=1) %}{{ who }} {{ range(2)|join }} {{ ns.n }} {{ when }}"
    )
    created = client.post(
        "/api/v1/policies",
        json={"name": "p3", "steps": [{"offset": "-P1D", "template": fine}]},
        headers=writer,
    )
    assert created.status_code == 201, created.text


def test_the_seeded_and_built_in_texts_pass_the_checks_a_saved_template_gets(
    client: TestClient, writer: Headers
) -> None:
    from reminders.bills import PAYMENT_FAILED
    from reminders.scheduler.anchors import ALARM_TEMPLATE
    from reminders.scheduler.context import SAMPLE_CONTEXTS, TEMPLATE_VARIABLES
    from reminders.templates import check_template

    for policy in client.get("/api/v1/policies", headers=writer).json():
        steps = [{k: v for k, v in s.items() if v is not None} for s in policy["steps"]]
        saved = client.patch(
            f"/api/v1/policies/{policy['name']}", json={"steps": steps}, headers=writer
        )
        assert saved.status_code == 200, saved.text
    check_template(ALARM_TEMPLATE, field="t", variables=TEMPLATE_VARIABLES, samples=SAMPLE_CONTEXTS)
    # The payment-failed text is rendered when the failure is reported, with its reason too.
    check_template(
        PAYMENT_FAILED,
        field="t",
        variables=TEMPLATE_VARIABLES | {"reason"},
        samples=[{**sample, "reason": "x" * 500} for sample in SAMPLE_CONTEXTS],
    )


@pytest.mark.parametrize(
    "template", ["{{ title|nosuchfilter }}", "{% if title is nosuchtest %}x{% endif %}"]
)
def test_a_template_with_an_unknown_filter_or_test_is_a_422_not_a_500(
    client: TestClient, writer: Headers, template: str
) -> None:
    steps = [{"offset": "-P1D", "template": template}]
    created = client.post("/api/v1/policies", json={"name": "p4", "steps": steps}, headers=writer)
    assert created.status_code == 422, created.text
    [error] = created.json()["errors"]
    assert error["field"] == "steps.0.template" and "nosuch" in error["message"], error
    preview = client.post("/api/v1/sms/preview", json={"template": template}, headers=writer)
    assert preview.status_code == 422, preview.text
