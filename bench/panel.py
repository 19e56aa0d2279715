"""The control panel's pages with a million notices in the account: each page's p95.

An account with ``--notices`` notices (a year of them: 300 days past, 65 to come, most sent with
an attempt each, some failed, some still scheduled) and a second account with one notice; a
user of each signs in, and every page is asked ``--requests`` times through the app in this
process (server time: no network, no browser). Baseline, in the same run: the same page for the
nearly empty account. The goal is a p95 under 150 ms for every page with the full account.

    .venv/bin/python -m bench.panel [--db postgresql|sqlite] [--notices 1000000] [--requests 40]

Prints one JSON line per page: p95 ms with the full account, with the empty one, their ratio.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bench.common import database, report
from reminders.accounts import users
from reminders.accounts.crud import create_account
from reminders.process import build
from reminders.schemas.accounts import AccountCreate
from reminders.settings import load_settings

PASSWORD = "bench password 2026"
PAGES = (
    "/",
    "/notices",
    "/notices?status=failed",
    "/notices?status=no_report",
    "/notices?day=today",
    "/notices?{second}",
    "/notices/{notice}",
    "/compose",
    "/contacts",
    "/groups",
    "/policies",
    "/upcoming",
    "/upcoming?view=month",
    "/sources",
    "/inbox",
    "/reports",
    "/admin",
)


def fill(engine: Engine, account_id: int, count: int) -> None:
    """``count`` notices of ``account_id`` over a year, and an attempt for each one sent, made
    by the database itself (a million rows in seconds, not through the ORM)."""
    pg = engine.dialect.name == "postgresql"
    series = (
        f"SELECT g AS n FROM generate_series(1, {count}) AS g"
        if pg
        else f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count})"
        " SELECT n FROM s"
    )
    # Spread evenly from 300 days ago to 65 days ahead; 2 % failed, the future scheduled.
    at = (
        "now() - interval '300 days' + ((n - 1) * interval '365 days' / {c})"
        if pg
        else "datetime('now', '-300 days', '+' || ((n - 1) * 365.0 * 86400 / {c}) || ' seconds')"
    ).format(c=count)
    status = (
        f"CASE WHEN {at} > {'now()' if pg else 'datetime(' + repr('now') + ')'} THEN 'scheduled'"
        " WHEN n % 50 = 0 THEN 'failed' WHEN n % 7 = 0 THEN 'sent' ELSE 'delivered' END"
    )
    now = "now()" if pg else "datetime('now')"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notices (account_id, key, kind, status, phone, text, is_template,"
                " priority, transliterate, send_at, sent_at, created_at, updated_at)"
                f" SELECT {account_id}, 'bench:' || n, 'message', {status},"
                " '+359888' || lpad(CAST(n % 1000000 AS TEXT), 6, '0'),"
                f" 'Здравейте, напомняме за часа ви.', false, 'bulk', false, {at},"
                f" CASE WHEN {at} > {now} THEN NULL ELSE {at} END, {at}, {at}"
                f" FROM ({series}) AS s"
                if pg
                else "INSERT INTO notices (account_id, key, kind, status, phone, text, is_template,"
                " priority, transliterate, send_at, sent_at, created_at, updated_at)"
                f" SELECT {account_id}, 'bench:' || n, 'message', {status},"
                " '+359888' || substr('000000' || (n % 1000000), -6, 6),"
                f" 'Здравейте, напомняме за часа ви.', 0, 'bulk', 0, {at},"
                f" CASE WHEN {at} > {now} THEN NULL ELSE {at} END, {at}, {at}"
                f" FROM ({series})"
            )
        )
        conn.execute(
            text(
                "INSERT INTO attempts (account_id, notice_id, provider, status, segments,"
                " encoding, submitted_at)"
                " SELECT account_id, id, 'kannel', status, 1, 'ucs2', send_at FROM notices"
                f" WHERE account_id = {account_id} AND status <> 'scheduled'"
            )
        )
        if pg:
            conn.execute(text("ANALYZE notices"))
            conn.execute(text("ANALYZE attempts"))


def signed_in(app: object, email: str) -> TestClient:
    client = TestClient(app)  # type: ignore[arg-type]
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf": token.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return client


def p95(client: TestClient, path: str, requests: int) -> float:
    for _ in range(3):
        assert client.get(path).status_code == 200, path
    seconds = []
    for _ in range(requests):
        start = time.perf_counter()
        answer = client.get(path)
        seconds.append(time.perf_counter() - start)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.quantiles(seconds, n=20)[-1] * 1000


def second_page(client: TestClient) -> str:
    found = re.search(
        r'href="/notices\?([^"]*after=[^"]+)" rel="next"', client.get("/notices").text
    )
    assert found is not None
    return found.group(1).replace("&amp;", "&")


def run(kind: str, notices: int, requests: int) -> None:
    with database(kind) as engine:
        with Session(engine) as session:
            full = create_account(session, AccountCreate(slug="utility", name="Utility"))
            empty = create_account(session, AccountCreate(slug="empty", name="Empty"))
            session.flush()
            for email, account in (("full@bench.bg", full), ("empty@bench.bg", empty)):
                users.create_user(
                    session, email=email, password=PASSWORD, role="admin", account_id=account.id
                )
            session.commit()
            full_id, empty_id = int(full.id or 0), int(empty.id or 0)
        started = time.perf_counter()
        fill(engine, full_id, notices)
        fill(engine, empty_id, 1)
        print(f"{notices:,} notices made in {time.perf_counter() - started:.1f} s")
        url = str(engine.url.render_as_string(hide_password=False))
        settings = load_settings(database_url=url, quiet_hours="off")
        process = build(settings, engine, run_scheduler=False)
        with TestClient(process.app):
            clients = {
                "full": signed_in(process.app, "full@bench.bg"),
                "empty": signed_in(process.app, "empty@bench.bg"),
            }
            ids = {}
            with engine.connect() as conn:
                for name, account_id in (("full", full_id), ("empty", empty_id)):
                    ids[name] = conn.execute(
                        text("SELECT max(notice_id) FROM attempts WHERE account_id = :a"),
                        {"a": account_id},
                    ).scalar_one()
            for page in PAGES:
                figures = {}
                for name, client in clients.items():
                    if "{second}" in page:
                        # One notice has no second page: the empty account's first stands in.
                        path = "/notices?" + second_page(client) if name == "full" else "/notices"
                    else:
                        path = page.format(notice=ids[name])
                    figures[name] = p95(client, path, requests)
                label = page.split("?")[0].replace("{notice}", "id") + (
                    "?" + page.split("?")[1].replace("{second}", "page2") if "?" in page else ""
                )
                report(
                    f"panel_p95 {label} ({kind})",
                    figures["full"],
                    "ms",
                    figures["empty"],
                    figures["full"] / figures["empty"],
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="postgresql", choices=["sqlite", "postgresql"])
    parser.add_argument("--notices", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    run(args.db, args.notices, args.requests)


if __name__ == "__main__":
    main()
