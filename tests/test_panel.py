"""The control panel over HTTP: signing in and out, the session cookie, CSRF, the sign-in
throttle, languages, a provider administrator's account switch, and the dashboard's numbers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders.accounts import users
from reminders.db import utcnow
from reminders.models import Account, InboundMessage, Notice, User
from reminders.panel.dashboard import today_span
from reminders.panel.throttle import LoginThrottle, delay_after
from reminders.process import build
from reminders.settings import Settings, load_settings
from tests.conftest import DEFAULT_ACCOUNT

PASSWORD = "Пролет в София 2026"
SOFIA = ZoneInfo("Europe/Sofia")


def add_user(
    engine: Engine, email: str, role: str | None = "operator", account: str | None = "default"
) -> User:
    with Session(engine, expire_on_commit=False) as session:
        account_id = None
        if account is not None:
            found = session.exec(select(Account).where(Account.slug == account)).one()
            account_id = found.id
        user = users.create_user(
            session, email=email, password=PASSWORD, role=role, account_id=account_id
        )
        session.commit()
        return user


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    form = client.get("/login")
    assert form.status_code == 200
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf(form.text), "next": "/"},
        follow_redirects=False,
    )


def test_a_page_sends_a_stranger_to_sign_in_and_back(client: TestClient, engine: Engine) -> None:
    page = client.get("/?lang=bg", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2F%3Flang%3Dbg"
    htmx = client.get("/", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login"

    add_user(engine, "ana@clinic.bg")
    form = client.get("/login?next=/%3Flang%3Dbg")
    assert 'name="next" value="/?lang=bg"' in form.text
    signed = client.post(
        "/login",
        data={"email": "ANA@clinic.bg", "password": PASSWORD, "csrf": csrf(form.text),
              "next": "/?lang=bg"},
        follow_redirects=False,
    )  # fmt: skip
    assert signed.status_code == 303 and signed.headers["location"] == "/?lang=bg"
    # Never to another site, however the link was made.
    for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        client.cookies.clear()
        form = client.get("/login")
        add = {"email": "ana@clinic.bg", "password": PASSWORD, "csrf": csrf(form.text)}
        went = client.post("/login", data={**add, "next": elsewhere}, follow_redirects=False)
        assert went.headers["location"] == "/", elsewhere


def test_the_session_cookie_is_signed_http_only_and_lax(client: TestClient, engine: Engine) -> None:
    add_user(engine, "ana@clinic.bg")
    signed = sign_in(client, "ana@clinic.bg")
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert PASSWORD not in cookie and "ana@clinic.bg" not in cookie
    home = client.get("/")
    assert home.status_code == 200 and "ana@clinic.bg" not in home.text
    # An edited cookie is a stranger's.
    value = client.cookies["reminders_session"]
    client.cookies.set(
        "reminders_session", value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    )
    assert client.get("/", follow_redirects=False).status_code == 303


def test_over_https_the_cookie_is_secure(database_url: str, engine: Engine) -> None:
    settings = load_settings(database_url=database_url, public_url="https://sms.example.bg")
    process = build(settings, engine, run_scheduler=False)
    with TestClient(process.app) as client:
        form = client.get("/login")
        assert "Secure" in form.headers["set-cookie"]


def test_a_form_without_its_csrf_token_is_refused(client: TestClient, engine: Engine) -> None:
    add_user(engine, "ana@clinic.bg")
    client.get("/login")
    refused = client.post(
        "/login", data={"email": "ana@clinic.bg", "password": PASSWORD}, follow_redirects=False
    )
    assert refused.status_code == 403
    forged = client.post(
        "/login",
        data={"email": "ana@clinic.bg", "password": PASSWORD, "csrf": "guess"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert sign_in(client, "ana@clinic.bg").status_code == 303
    # Signed in, the token is a new one: the one from before signing in is worth nothing.
    home = client.get("/")
    token = csrf(home.text)
    assert client.post("/logout", data={"csrf": "x"}, follow_redirects=False).status_code == 403
    out = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_wrong_passwords_slow_down_further_tries(client: TestClient, engine: Engine) -> None:
    add_user(engine, "ana@clinic.bg")
    for _ in range(4):
        wrong = sign_in(client, "ana@clinic.bg", "not it")
        assert wrong.status_code == 401 and "Wrong email or password." in wrong.text
    fifth = sign_in(client, "ana@clinic.bg", "not it either")
    assert fifth.status_code == 429 and "Try again in 1 second." in fifth.text
    # While the delay holds, even the right password waits, and nothing says it was right.
    held = sign_in(client, "ana@clinic.bg")
    assert held.status_code == 429 and "reminders_session" not in held.headers.get("set-cookie", "")
    # Another email is not slowed down by these.
    add_user(engine, "boris@clinic.bg")
    assert sign_in(client, "boris@clinic.bg").status_code == 303


def test_the_delay_grows_with_each_failure_and_a_success_clears_it() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    assert [delay_after(n) for n in range(1, 9)] == [0, 0, 0, 0, 1, 2, 4, 8]
    assert delay_after(40) == 15 * 60  # it stops growing
    waits = [throttle.failed("Ana@Clinic.bg") for _ in range(6)]
    assert waits == [0, 0, 0, 0, 1, 2]
    assert throttle.wait_left("ana@clinic.bg") == 2  # the same person, however typed
    now[0] += 2
    assert throttle.wait_left("ana@clinic.bg") == 0
    throttle.succeeded("ana@clinic.bg")
    assert throttle.failed("ana@clinic.bg") == 0
    # An hour without failures forgets them.
    for _ in range(5):
        throttle.failed("boris@clinic.bg")
    now[0] += 3601
    assert throttle.failed("boris@clinic.bg") == 0


def test_a_disabled_user_or_a_changed_password_ends_the_session(
    client: TestClient, engine: Engine
) -> None:
    user = add_user(engine, "ana@clinic.bg")
    assert sign_in(client, "ana@clinic.bg").status_code == 303
    with Session(engine) as session:
        stored = session.get(User, user.id)
        assert stored is not None
        stored.password_hash = users.hash_password("Друга парола 2027")
        session.add(stored)
        session.commit()
    assert client.get("/", follow_redirects=False).status_code == 303
    assert sign_in(client, "ana@clinic.bg", "Друга парола 2027").status_code == 303
    with Session(engine) as session:
        stored = session.get(User, user.id)
        assert stored is not None
        stored.disabled = True
        session.add(stored)
        session.commit()
    assert client.get("/", follow_redirects=False).status_code == 303
    assert sign_in(client, "ana@clinic.bg", "Друга парола 2027").status_code == 401


def test_the_language_follows_the_browser_then_the_choice(
    client: TestClient, engine: Engine
) -> None:
    bg = client.get("/login", headers={"Accept-Language": "bg-BG,bg;q=0.9,en;q=0.8"})
    assert '<html lang="bg">' in bg.text and "Вход" in bg.text and "Sign in" not in bg.text
    en = client.get("/login", headers={"Accept-Language": "de-DE,en;q=0.5"})
    assert '<html lang="en">' in en.text and "Sign in" in en.text
    add_user(engine, "ana@clinic.bg")
    sign_in(client, "ana@clinic.bg")
    home = client.get("/", headers={"Accept-Language": "en"})
    chosen = client.post("/language", data={"lang": "bg", "next": "/", "csrf": csrf(home.text)})
    assert chosen.status_code == 200 and "Табло" in chosen.text and "Изпратени" in chosen.text
    # The choice holds whatever the browser asks for, and on another browser after signing in.
    again = client.get("/", headers={"Accept-Language": "en"})
    assert '<html lang="bg">' in again.text
    client.cookies.clear()
    sign_in(client, "ana@clinic.bg")
    elsewhere = client.get("/", headers={"Accept-Language": "en"})
    assert '<html lang="bg">' in elsewhere.text


def test_api_paths_still_need_a_key_and_panel_paths_do_not(client: TestClient) -> None:
    assert client.get("/api/v1/notices").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/login").status_code == 200
    assert client.get("/static/vendor/htmx-2.0.11.min.js").status_code == 200
    assert client.get("/static/panel.css").status_code == 200
    assert client.get("/no-such-page").status_code == 404
    assert client.get("/login?next=a%00b").status_code == 422


def notice(account_id: int, status: str, at: datetime, n: int) -> Notice:
    return Notice(
        account_id=account_id,
        key=f"test:{status}:{n}:{at.isoformat()}",
        kind="message",
        status=status,
        phone=f"+3598886{n:05d}",
        text="Здравейте",
        send_at=at,
        sent_at=at if status != "failed" else None,
    )


def add_notices(engine: Engine, account_id: int, statuses: dict[str, int], at: datetime) -> None:
    with Session(engine) as session:
        n = 0
        for status, count in statuses.items():
            for _ in range(count):
                n += 1
                session.add(notice(account_id, status, at, n))
        session.commit()


def counters(html: str) -> dict[str, str]:
    return dict(re.findall(r'id="counter-([a-z_]+)">([^<]*)<', html))


def test_the_dashboard_counts_today_for_the_account_alone(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    made = client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    assert made.status_code == 201
    now = utcnow()
    add_notices(
        engine,
        DEFAULT_ACCOUNT,
        {"sent": 2, "delivered": 3, "undelivered": 1, "failed": 4, "scheduled": 5},
        now - timedelta(minutes=1),
    )
    add_notices(engine, int(made.json()["id"]), {"delivered": 7}, now - timedelta(minutes=1))
    with Session(engine) as session:
        session.add(InboundMessage(account_id=DEFAULT_ACCOUNT, from_phone="+359888000001",
                                   text="ДА", provider="console", received_at=now))  # fmt: skip
        session.commit()
    add_user(engine, "ana@clinic.bg")
    sign_in(client, "ana@clinic.bg")
    page = client.get("/", headers={"Accept-Language": "en"})
    assert counters(page.text) == {
        "sent": "6",  # handed over: sent, delivered, undelivered
        "delivered": "3",
        "undelivered": "1",
        "failed": "4",
        "no_report": "0",
        "received": "1",
    }
    assert 'href="/notices?status=failed&amp;day=today"' in page.text
    assert 'aria-live="polite"' in page.text
    # The chart's hour holds them: 6 sent and 4 failed, in a title a screen reader reads.
    assert "6 sent, 4 failed" in page.text


def test_a_provider_administrator_switches_accounts(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    made = client.post(
        "/api/v1/accounts", json={"slug": "bank-b", "name": "Bank B"}, headers=provider
    )
    add_notices(engine, int(made.json()["id"]), {"failed": 7}, utcnow() - timedelta(minutes=1))
    add_user(engine, "root@provider.bg", role=None, account=None)
    add_user(engine, "ana@clinic.bg")
    sign_in(client, "root@provider.bg")
    home = client.get("/")
    assert counters(home.text)["failed"] == "0"  # the first account: default
    switched = client.post("/account", data={"slug": "bank-b", "csrf": csrf(home.text)})
    assert switched.status_code == 200 and counters(switched.text)["failed"] == "7"
    assert "Bank B" in switched.text
    # An account's own user cannot switch, whatever they post.
    client.cookies.clear()
    sign_in(client, "ana@clinic.bg")
    home = client.get("/")
    refused = client.post("/account", data={"slug": "bank-b", "csrf": csrf(home.text)})
    assert refused.status_code == 403
    assert "Not allowed" in refused.text and "Sign out" in refused.text  # still signed in
    assert counters(client.get("/").text)["failed"] == "0"


def test_a_suspended_accounts_people_cannot_sign_in(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    add_user(engine, "ana@bank.bg", account="bank-b")
    assert sign_in(client, "ana@bank.bg").status_code == 303
    suspended = client.patch(
        "/api/v1/accounts/bank-b", json={"status": "suspended", "status_reason": "unpaid"},
        headers=provider,
    )  # fmt: skip
    assert suspended.status_code == 200
    assert client.get("/", follow_redirects=False).status_code == 303
    assert sign_in(client, "ana@bank.bg").status_code == 401


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2027-03-28", 23), ("2027-10-31", 25), ("2027-06-15", 24)],
)
def test_today_is_the_accounts_day_however_long(day: str, hours: int) -> None:
    noon = datetime.fromisoformat(f"{day}T12:00").replace(tzinfo=SOFIA)
    start, end = today_span(noon.astimezone(UTC), SOFIA)
    assert start.astimezone(SOFIA).isoformat().startswith(f"{day}T00:00")
    assert (end - start) == timedelta(hours=hours)
    # Just after midnight in Sofia is still the previous day in UTC: it belongs to the new day.
    early = datetime.fromisoformat(f"{day}T00:30").replace(tzinfo=SOFIA).astimezone(UTC)
    assert today_span(early, SOFIA)[0] == start


def test_the_live_stream_takes_the_session_cookie(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    add_notices(engine, DEFAULT_ACCOUNT, {"delivered": 3}, utcnow() - timedelta(minutes=1))
    assert client.get("/live", follow_redirects=False).status_code == 303
    add_user(engine, "ana@clinic.bg")
    sign_in(client, "ana@clinic.bg")
    with client.stream("GET", "/live") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                first = json.loads(line[len("data: ") :])
                break
    assert first["delivered"] == "3" and first["sent"] == "3"


def test_the_frameworks_own_refusals_are_pages_on_panel_paths_and_json_on_the_api(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    add_user(engine, "ana@clinic.bg")
    sign_in(client, "ana@clinic.bg")
    missing = client.get("/no-such-page", headers={"Accept-Language": "bg"})
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "Не е намерено" in missing.text and "Изход" in missing.text  # still signed in
    unreadable = client.get("/inbox?before=abc")
    assert unreadable.status_code == 422
    assert "This request cannot be used" in unreadable.text and "before" in unreadable.text
    api = client.get("/api/v1/notices?limit=abc", headers=admin)
    assert api.status_code == 422 and api.json()["errors"][0]["field"] == "limit"
    assert client.get("/api/v1/nothing", headers=admin).json()["detail"] == "Not Found"
