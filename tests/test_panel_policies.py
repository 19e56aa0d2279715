"""The control panel's policies screen over HTTP, and its plain functions: the steps editor,
a template's live preview on a sample contact, and the dry run of the next seven days."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from reminders.models import Policy
from reminders.panel.policies import dry_run, preview, sample_for, steps_from_form
from reminders.settings import Settings
from tests.conftest import DEFAULT_ACCOUNT, account_session
from tests.test_panel import add_user, csrf, sign_in

Headers = dict[str, str]
SOFIA = ZoneInfo("Europe/Sofia")
# 68 letters of Cyrillic: with the rest of the reminder, two UCS-2 segments.
LONG_TITLE = "Профилактичен преглед при кардиолог с електрокардиограма и ехография"


def as_role(client: TestClient, engine: Engine, role: str) -> str:
    add_user(engine, f"{role}@clinic.bg", role=role)
    assert sign_in(client, f"{role}@clinic.bg").status_code == 303
    return csrf(client.get("/policies").text)


def event(client: TestClient, headers: Headers, start: datetime, **body: Any) -> dict[str, Any]:
    made = client.post(
        "/api/v1/events",
        json={
            "title": "Преглед",
            "start": start.isoformat(),
            "location": "кабинет 5",
            "recipients": {"phones": ["0888 700 001"]},
            **body,
        },
        headers=headers,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def stored_steps(engine: Engine, name: str = "appointment") -> list[dict[str, Any]]:
    with account_session(engine) as session:
        policy = session.exec(select(Policy).where(Policy.name == name)).one()
        return list(policy.steps)


def notices(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT step, status FROM notices ORDER BY step, id")).all()
    return [(step, status) for step, status in rows]


def form_of(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "offset": [s["offset"] for s in steps] + [""],
        "at": [s.get("at") or "" for s in steps] + [""],
        "kind": [s.get("kind") or "" for s in steps] + [""],
        "template": [s["template"] for s in steps] + [""],
        **extra,
    }


def test_the_list_shows_the_accounts_policies(client: TestClient, engine: Engine) -> None:
    as_role(client, engine, "viewer")
    page = client.get("/policies")
    assert page.status_code == 200
    assert 'href="/policies/appointment"' in page.text and 'href="/policies/bill"' in page.text


def test_an_operator_changes_removes_and_adds_steps_and_the_events_follow(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    start = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    event(client, writer, start)
    assert notices(engine) == [(0, "scheduled"), (1, "scheduled")]
    token = as_role(client, engine, "operator")
    steps = stored_steps(engine)
    page = client.get("/policies/appointment")
    assert page.status_code == 200 and 'value="-P1D"' in page.text
    form = form_of(steps, csrf=token, remove=["1"])
    form["offset"][0] = "-P2D"
    form["offset"][-1], form["template"][-1] = "-PT30M", "Скоро: {{ title }}"
    saved = client.post("/policies/appointment", data=form)
    assert saved.status_code == 200, saved.text
    assert "planned again" in saved.text
    now = stored_steps(engine)
    assert [(s["offset"], s.get("at")) for s in now] == [("-P2D", "18:00"), ("-PT30M", None)]
    assert now[1]["template"] == "Скоро: {{ title }}"
    # Step 0 moved, step 1 became the new one: the old step-1 notice now says the new text.
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT step, status, send_at FROM notices ORDER BY step"))
        by_step = {step: (status, send_at) for step, status, send_at in rows}
    assert by_step[0][0] == "scheduled" and by_step[1][0] == "scheduled"
    first = by_step[0][1]
    first = first if isinstance(first, datetime) else datetime.fromisoformat(str(first))
    two_days_before = (start.astimezone(SOFIA) - timedelta(days=2)).date()
    assert first.replace(tzinfo=UTC).astimezone(SOFIA).date() == two_days_before


def test_bad_steps_are_shown_beside_their_field_and_nothing_is_saved(
    client: TestClient, engine: Engine
) -> None:
    token = as_role(client, engine, "operator")
    steps = stored_steps(engine)
    cases: list[tuple[int, str, str, str]] = [
        (0, "offset", "tomorrow", "not an ISO 8601 duration"),
        (1, "at", "25:99", ""),
        (1, "template", "{{ oops", "line 1"),
        (0, "template", "Здравейте, {{ doctor }}", "Unknown names: doctor."),
    ]
    for index, field, value, words in cases:
        form = form_of(steps, csrf=token)
        form[field][index] = value
        refused = client.post("/policies/appointment", data=form)
        assert refused.status_code == 422, (field, refused.text)
        error = re.search(rf'id="steps-{index}-{field}-error"[^>]*>([^<]+)<', refused.text)
        assert error is not None and words in error.group(1), (field, refused.text)
        assert f'value="{value}"' in refused.text or value in refused.text  # kept as typed
    every = form_of(steps, csrf=token, remove=["0", "1"])
    none_left = client.post("/policies/appointment", data=every)
    assert none_left.status_code == 422 and "at least 1" in none_left.text
    assert stored_steps(engine) == steps


def test_the_preview_renders_a_template_on_a_sample_contact(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    made = client.post(
        "/api/v1/contacts",
        json={"name": "Мария Иванова", "phone": "0888 700 010", "attributes": {"doctor": "Колев"}},
        headers=writer,
    )
    contact_id = made.json()["id"]
    token = as_role(client, engine, "viewer")  # a preview changes nothing: a viewer may
    steps = stored_steps(engine)
    htmx = {"HX-Request": "true"}
    form = form_of(steps, csrf=token, step="0", sample=f"contact:{contact_id}")
    form["template"][0] = "Hi {{ first_name }}, Dr {{ contact.doctor }} at {{ time }} €"
    shown = client.post("/policies/appointment/preview", data=form, headers=htmx)
    assert shown.status_code == 200 and "<html" not in shown.text
    assert "Hi Мария, Dr Колев at 10:30 €" in shown.text
    assert "UCS-2" in shown.text and "1 SMS" in shown.text
    form["template"][0] = "Hi {{ first_name }} at {{ time }} €"
    form["sample"] = "en"
    latin = client.post("/policies/appointment/preview", data=form, headers=htmx)
    assert "Hi John at 10:30 €" in latin.text
    assert "19 characters, GSM-7, 1 SMS" in latin.text  # the euro sign costs two septets
    form["template"][0] = "{{ oops"
    broken = client.post("/policies/appointment/preview", data=form, headers=htmx)
    assert "line 1" in broken.text and 'role="alert"' in broken.text
    form["template"][0] = "{{ name.__class__.__mro__ }}"
    sandbox = client.post("/policies/appointment/preview", data=form, headers=htmx)
    assert "sandbox forbids" in sandbox.text
    # Without JavaScript the Preview button shows the whole page, every step previewed.
    form["template"][0] = "Напомняне: {{ title }} {{ when }}"
    del form["step"]
    form["sample"] = "bg"
    page = client.post("/policies/appointment/preview", data=form)
    assert page.status_code == 200 and "<html" in page.text
    assert "Напомняне: Преглед утре в 10:30" in page.text
    assert stored_steps(engine) == steps  # nothing saved


def test_roles_csrf_and_other_accounts(
    client: TestClient, engine: Engine, provider: Headers
) -> None:
    made = client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    assert made.status_code == 201
    theirs = client.post(
        "/api/v1/policies",
        json={"name": "only-b", "steps": [{"offset": "-P1D", "template": "Тайно"}]},
        headers={**provider, "Reminders-Account": "bank-b"},
    )
    assert theirs.status_code == 201, theirs.text
    their_contact = client.post(
        "/api/v1/contacts",
        json={"name": "Чужд", "phone": "0888 700 020"},
        headers={**provider, "Reminders-Account": "bank-b"},
    ).json()["id"]
    steps = stored_steps(engine)
    token = as_role(client, engine, "viewer")
    page = client.get("/policies/appointment")
    assert ">Save<" not in page.text and "Remove this step" not in page.text
    changed = form_of(steps, csrf=token)
    changed["template"][0] = "Променено"
    assert client.post("/policies/appointment", data=changed).status_code == 403
    client.cookies.clear()
    token = as_role(client, engine, "operator")
    assert client.post("/policies/appointment", data={**changed, "csrf": "x"}).status_code == 403
    no_token = {k: v for k, v in changed.items() if k != "csrf"}
    assert client.post("/policies/appointment", data=no_token).status_code == 403
    assert stored_steps(engine) == steps
    assert client.get("/policies/only-b").status_code == 404
    assert "only-b" not in client.get("/policies").text
    theirs_form = {**form_of(steps), "csrf": token}
    assert client.post("/policies/only-b", data=theirs_form).status_code == 404
    preview_form = {**theirs_form, "sample": f"contact:{their_contact}", "step": "0"}
    assert client.post("/policies/appointment/preview", data=preview_form).status_code == 404
    with account_session(engine, int(made.json()["id"])) as session:
        policy = session.exec(select(Policy).where(Policy.name == "only-b")).one()
        assert policy.steps[0]["template"] == "Тайно"


def test_the_dry_run_counts_the_next_seven_days(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    late = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    out = client.post(
        "/api/v1/contacts",
        json={"name": "Отказал се", "phone": "0888 700 031", "opted_out": True},
        headers=writer,
    ).json()["id"]
    phones = {"phones": ["0888 700 001", "0888 700 002"], "contacts": [out]}
    event(client, writer, soon, title=LONG_TITLE, recipients=phones)
    event(client, writer, late, recipients=phones)
    before = notices(engine)
    as_role(client, engine, "viewer")
    page = client.get("/policies/appointment")
    # Two steps to two numbers (the one who opted out is not counted): the day before's text
    # asks for an answer too, in three segments, the other in two.
    assert "would send 4 SMS (10 segments) for 1 events and bills" in page.text
    assert notices(engine) == before  # a dry run writes nothing


def test_the_policies_screen_speaks_bulgarian(client: TestClient, engine: Engine) -> None:
    as_role(client, engine, "viewer")
    page = client.get("/policies/appointment", headers={"Accept-Language": "bg"})
    assert "През следващите 7 дни" in page.text and "Dry run" not in page.text
    assert "Отместване" in page.text


# --- the plain functions -------------------------------------------------------------------


def test_the_editor_rows_become_steps() -> None:
    rows, steps = steps_from_form(
        ["-P1D", "-PT2H", "", "P3D"],
        ["18:00", "", "", ""],
        ["", "", "", "bill_overdue"],
        ["A", "B", "", "C"],
        ["1"],
    )
    assert steps == [
        {"offset": "-P1D", "at": "18:00", "template": "A"},
        {"offset": "P3D", "kind": "bill_overdue", "template": "C"},
    ]
    assert [r.template for r in rows] == ["A", "C"]


def test_a_preview_counts_what_the_sms_costs() -> None:
    cyrillic = preview("Здравейте, {{ name }}", sample_for(None, "bg"), transliterate=False)
    assert cyrillic.text == "Здравейте, Иван Петров" and cyrillic.encoding == "UCS-2"
    assert (cyrillic.characters, cyrillic.segments) == (22, 1)
    latin = preview("Здравейте, {{ name }}", sample_for(None, "bg"), transliterate=True)
    assert latin.encoding == "GSM-7" and latin.text == "Zdraveyte, Ivan Petrov"
    long = preview("{{ 'я' * 71 }}", sample_for(None, "bg"), transliterate=False)
    assert (long.characters, long.segments) == (71, 2)
    empty = preview("{{ '' }}", sample_for(None, "bg"), transliterate=False)
    assert empty.error == "the template rendered an empty message"
    blank = preview("  \n", sample_for(None, "bg"), transliterate=False)
    assert (blank.text, blank.error) == (None, None)  # the new step's empty row: nothing yet
    over = preview("{{ 'x' * 20000 }}", sample_for(None, "bg"), transliterate=False)
    assert over.error is not None and "bounds" in over.error


def test_the_dry_run_window_across_the_autumn_clock_change(
    client: TestClient, engine: Engine, writer: Headers, settings: Settings
) -> None:
    # Sofia's clocks go back on 31 October 2027: the window is seven days of real time.
    on_the_day = datetime(2027, 10, 31, 10, 30, tzinfo=SOFIA)
    after = datetime(2027, 11, 2, 10, 30, tzinfo=SOFIA)
    event(client, writer, on_the_day)
    event(client, writer, after)
    now = datetime(2027, 10, 25, 9, 0, tzinfo=UTC)
    with account_session(engine, DEFAULT_ACCOUNT) as session:
        policy = session.exec(select(Policy).where(Policy.name == "appointment")).one()
        week = dry_run(session, policy, settings=settings, now=now)
        # 30 Oct 18:00 and 31 Oct 08:30 are in; 1 Nov 18:00 (16:00 UTC) is past 1 Nov 09:00 UTC.
        # The day before's text asks for an answer too: two segments, the other's one.
        assert (week.sms, week.segments, week.anchors) == (2, 3, 1)
        longer = dry_run(session, policy, settings=settings, now=now, days=9)
        assert (longer.sms, longer.anchors) == (4, 2)
        later = dry_run(session, policy, settings=settings, now=now + timedelta(days=30))
        assert (later.sms, later.anchors) == (0, 0)
