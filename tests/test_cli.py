"""The ``reminders`` command line, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pwdlib import PasswordHash
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders import apikeys
from reminders.accounts.users import create_user
from reminders.db import make_engine
from reminders.migrate import head_revision, upgrade
from reminders.models import Contact, Group, GroupMember, User
from reminders.webhook_keys import inbound_token
from tests.conftest import create_pg_database

pytestmark = pytest.mark.slow  # a real process per command: not in the fast tier

ROOT = Path(__file__).resolve().parents[1]
REMINDERS = ROOT / ".venv" / "bin" / "reminders"
KEY = re.compile(r"rmd_[A-Za-z0-9_-]{20,}")


def reminders(
    *args: str,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command with ``stdin`` as its input (none: an empty input, never the test's)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    if database_url is not None:
        full_env["REMINDERS_DATABASE_URL"] = database_url
    full_env.update(env or {})
    return subprocess.run(
        [str(REMINDERS), *args],
        env=full_env,
        cwd=Path.cwd(),  # the tmp_path the autouse fixture moved into
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin or "",
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """A non-zero exit with exactly one line on stderr, no traceback; return that line."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].strip(), result.stderr
    return lines[0]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


# --- API keys --------------------------------------------------------------------------------


def test_apikey_create_list_revoke(sqlite_url: str, db: Engine) -> None:
    created = reminders(
        "apikey", "create", "billing sync", "--scope", "write", database_url=sqlite_url
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("\n") == 1, created.stdout
    secret = created.stdout.strip()
    assert KEY.fullmatch(secret), created.stdout
    assert created.stderr == ""

    listed = reminders("apikey", "list", database_url=sqlite_url)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    (line,) = listed.stdout.splitlines()
    key_id, prefix, owner, scope, state, name = line.split("\t")
    assert secret.startswith(prefix.removesuffix("…"))
    assert (owner, scope, state, name) == ("default", "write", "live", "billing sync")
    with Session(db) as session:
        key = apikeys.authenticate(session, secret)
        assert key is not None and key.scope == "write" and str(key.id) == key_id

    revoked = reminders("apikey", "revoke", key_id, database_url=sqlite_url)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked key {key_id}"
    listed = reminders("apikey", "list", database_url=sqlite_url)
    assert listed.stdout.split("\t")[4] == "revoked"
    with Session(db) as session:
        assert apikeys.authenticate(session, secret) is None

    missing = reminders("apikey", "revoke", "999", database_url=sqlite_url)
    assert "999" in assert_one_line_error(missing)


def test_apikey_bad_scope_is_one_line(sqlite_url: str, db: Engine) -> None:
    result = reminders("apikey", "create", "x", "--scope", "bogus", database_url=sqlite_url)
    line = assert_one_line_error(result)
    assert "scope" in line and "bogus" in line
    assert result.stdout == ""
    with Session(db) as session:
        assert apikeys.list_keys(session) == []


def test_apikey_revoke_refuses_the_last_admin_key(sqlite_url: str, db: Engine) -> None:
    created = reminders("apikey", "create", "root", "--scope", "admin", database_url=sqlite_url)
    assert created.returncode == 0, created.stderr
    key_id = reminders("apikey", "list", database_url=sqlite_url).stdout.split("\t")[0]

    refused = reminders("apikey", "revoke", key_id, database_url=sqlite_url)
    assert refused.returncode == 1
    line = assert_one_line_error(refused)
    assert "last admin key" in line and key_id in line, line
    assert refused.stdout == ""
    with Session(db) as session:
        assert [k.revoked_at for k in apikeys.list_keys(session)] == [None]


# --- Accounts --------------------------------------------------------------------------------


def test_accounts_and_their_keys(sqlite_url: str, db: Engine) -> None:
    created = reminders(
        "accounts", "create", "clinic-a", "--name", "Клиника А", database_url=sqlite_url
    )
    assert (created.returncode, created.stdout, created.stderr) == (0, "clinic-a\n", "")
    listed = reminders("accounts", "list", database_url=sqlite_url)
    assert listed.stdout.splitlines() == [
        "default\tactive\tDefault",
        "clinic-a\tactive\tКлиника А",
    ]
    again = reminders("accounts", "create", "clinic-a", database_url=sqlite_url)
    assert "already exists" in assert_one_line_error(again)
    bad = reminders("accounts", "create", "Clinic A", database_url=sqlite_url)
    assert "slug" in assert_one_line_error(bad)

    key = reminders(
        "apikey",
        "create",
        "sync",
        "--account",
        "clinic-a",
        "--scope",
        "write",
        database_url=sqlite_url,
    )
    assert key.returncode == 0 and KEY.fullmatch(key.stdout.strip()), key
    provider = reminders("apikey", "create", "ops", "--scope", "provider", database_url=sqlite_url)
    assert provider.returncode == 0 and KEY.fullmatch(provider.stdout.strip()), provider
    with Session(db) as session:
        mine = apikeys.authenticate(session, key.stdout.strip())
        theirs = apikeys.authenticate(session, provider.stdout.strip())
        assert mine is not None and mine.account_id == 2 and mine.scope == "write"
        assert theirs is not None and theirs.account_id is None and theirs.scope == "provider"

    nobody = reminders("apikey", "create", "x", "--account", "nobody", database_url=sqlite_url)
    assert "nobody" in assert_one_line_error(nobody)
    both = reminders(
        "apikey",
        "create",
        "x",
        "--scope",
        "provider",
        "--account",
        "clinic-a",
        database_url=sqlite_url,
    )
    assert "--account" in assert_one_line_error(both)


# --- Users -----------------------------------------------------------------------------------


def test_users_create_and_list(sqlite_url: str, db: Engine) -> None:
    assert reminders("accounts", "create", "clinic-a", database_url=sqlite_url).returncode == 0
    made = reminders(
        "users",
        "create",
        "Ivan@Example.BG",
        "--account",
        "clinic-a",
        "--role",
        "admin",
        database_url=sqlite_url,
        stdin=" correct horse battery \n",
    )
    assert (made.returncode, made.stdout, made.stderr) == (0, "ivan@example.bg\n", "")
    generated = reminders(
        "users",
        "create",
        "viewer@example.bg",
        "--role",
        "viewer",
        "--generate",
        database_url=sqlite_url,
    )
    assert generated.returncode == 0 and generated.stderr == "", generated
    assert generated.stdout.count("\n") == 1
    password = generated.stdout.strip()
    assert len(password) >= 20 and password != "viewer@example.bg"
    above = reminders(
        "users", "create", "ops@provider.bg", "--provider", "--generate", database_url=sqlite_url
    )
    assert above.returncode == 0, above

    hasher = PasswordHash.recommended()
    with Session(db) as session:
        found = {u.email: u for u in session.exec(select(User))}
    # The password is the line as typed, spaces kept; only the line break is not part of it.
    assert hasher.verify(" correct horse battery ", found["ivan@example.bg"].password_hash)
    assert (found["ivan@example.bg"].account_id, found["ivan@example.bg"].role) == (2, "admin")
    assert hasher.verify(password, found["viewer@example.bg"].password_hash)
    assert found["viewer@example.bg"].account_id == 1  # the account `default`
    assert hasher.verify(above.stdout.strip(), found["ops@provider.bg"].password_hash)
    assert (found["ops@provider.bg"].account_id, found["ops@provider.bg"].role) == (None, "admin")

    listed = reminders("users", "list", database_url=sqlite_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "1\tivan@example.bg\tclinic-a\tadmin\tenabled",
        "2\tviewer@example.bg\tdefault\tviewer\tenabled",
        "3\tops@provider.bg\t(provider)\tadmin\tenabled",
    ]
    assert password not in listed.stdout
    one = reminders("users", "list", "--account", "clinic-a", database_url=sqlite_url)
    assert one.stdout.splitlines() == ["1\tivan@example.bg\tclinic-a\tadmin\tenabled"]
    nobody = reminders("users", "list", "--account", "nobody", database_url=sqlite_url)
    assert "nobody" in assert_one_line_error(nobody)


@pytest.mark.parametrize(
    ("args", "stdin", "names"),
    [
        (["--role", "viewer"], "", "password"),  # nothing on stdin
        (["--role", "viewer"], "\n", "password"),  # an empty line
        (["--role", "viewer"], "too-short\n", "password"),
        (["--role", "viewer"], "long enough\x00but NUL\n", "password"),
        (["--role", "owner"], "long enough password\n", "role"),
        ([], "long enough password\n", "role"),
        (["--provider", "--role", "viewer"], "long enough password\n", "role"),
        (["--provider", "--account", "default"], "long enough password\n", "--account"),
        (["--account", "nobody", "--role", "viewer"], "long enough password\n", "nobody"),
        (["--role", "viewer"], "long enough password\n", "already exists"),
    ],
)
def test_users_create_refuses_with_one_line(
    sqlite_url: str, db: Engine, args: list[str], stdin: str, names: str
) -> None:
    upgrade(db)
    with Session(db) as session:
        create_user(
            session, email="taken@example.bg", password="x" * 10, role="viewer", account_id=1
        )
        session.commit()
    email = "TAKEN@example.bg" if names == "already exists" else "new@example.bg"
    result = reminders("users", "create", email, *args, database_url=sqlite_url, stdin=stdin)
    line = assert_one_line_error(result)
    assert names in line, line
    assert result.stdout == ""
    if stdin.strip():
        assert stdin.split("\x00")[0].strip() not in line  # the password is never repeated
    with Session(db) as session:
        assert [u.email for u in session.exec(select(User))] == ["taken@example.bg"]


# --- Schema ----------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_on_an_empty_postgresql() -> None:
    url, drop = create_pg_database()
    engine = make_engine(url)
    try:
        assert inspect(engine).get_table_names() == []
        expected = f"database at revision {head_revision()} (newest: {head_revision()})"
        for _ in range(2):  # a second run finds nothing to do and says the same
            result = reminders("db", "upgrade", database_url=url)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == expected
            assert "Traceback" not in result.stderr
        tables = set(inspect(engine).get_table_names())
        assert {"contacts", "groups", "notices", "outbox", "api_keys", "apscheduler_jobs"} <= tables
        assert "alembic_version" in tables
    finally:
        engine.dispose()
        drop()


# --- Start-up errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REMINDERS_TIMEZONE", "Mars/Base"),
        ("REMINDERS_DEFAULT_REGION", "XX"),
        ("REMINDERS_SENDER", "nope"),
        ("REMINDERS_DATABASE_URL", "mysql://x"),
        ("REMINDERS_SENDER_ID", "this is far too long"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_sentence(
    variable: str, value: str, sqlite_url: str, tmp_path: Path
) -> None:
    result = reminders("serve", "--port", "1", database_url=sqlite_url, env={variable: value})
    line = assert_one_line_error(result)
    assert variable in line, line
    assert result.stdout == ""
    # Nothing was started, so nothing was created either.
    assert not (tmp_path / "cli.db").exists()


def test_the_settings_import_no_sender_and_no_scheduler() -> None:
    """Settings come first: importing them pulls in neither a sender (sender.base imports the
    settings) nor the scheduler, so neither can ever import them back in a cycle."""
    program = (
        "import sys, reminders.settings\n"
        "print(sorted(m for m in sys.modules if m.startswith(('reminders.sender.', "
        "'reminders.scheduler'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_postgresql_database_not_in_utf8_is_refused_in_one_line() -> None:
    """SQL_ASCII would keep Bulgarian text as bytes it can neither compare nor search; before
    the check, psycopg handed SQLAlchemy bytes and every command ended in a traceback."""
    from psycopg import sql

    from tests.databases import PG, new_name

    name = new_name()
    PG.admin(
        sql.SQL(
            "CREATE DATABASE {} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        ).format(sql.Identifier(name))
    )
    try:
        for command in (["serve", "--port", "1"], ["db", "upgrade"], ["apikey", "list"]):
            result = reminders(*command, database_url=PG.url(name))
            line = assert_one_line_error(result)
            assert "encoding SQL_ASCII" in line and "needs UTF8" in line, line
    finally:
        PG.drop(name)


def test_an_unreachable_postgresql_is_one_line_without_the_password() -> None:
    url = "postgresql+psycopg://reminders:s3cret-Pa55@127.0.0.1:1/reminders"
    for command in (["serve", "--port", "1"], ["db", "upgrade"], ["apikey", "list"]):
        result = reminders(*command, database_url=url)
        line = assert_one_line_error(result)
        assert "Cannot open the database" in line and "127.0.0.1:1" in line, line
        assert "s3cret-Pa55" not in result.stdout + result.stderr


# --- Contacts import -------------------------------------------------------------------------

HEADER = "name,phone,email,timezone,language,external_id,groups,doctor\n"
GOOD_AND_BAD = (
    HEADER
    + "Иван Петров,0888 123 456,ivan@example.com,Europe/Sofia,bg,ext-1,"
    + "Кардиология;VIP,Д-р Иванова\n"
    + "Anna Smith,+359 88 812 3457,,Europe/London,en,ext-2,VIP,Dr Brown\n"
    + "Bad Phone,12345,,,,ext-3,,\n"
    + "Bad Zone,0888 123 459,,Mars/Base,,ext-4,,\n"
    + "Too Many,0888 123 460,,,,ext-5,,,surplus\n"
    + "Plain,00359888123461,,,,ext-6,,\n"
)


def contacts_by_external_id(engine: Engine) -> dict[str, Contact]:
    with Session(engine) as session:
        rows = session.exec(select(Contact)).all()
    assert all(c.external_id for c in rows), rows
    return {str(c.external_id): c for c in rows}


def group_members(engine: Engine) -> dict[str, set[str]]:
    with Session(engine) as session:
        groups = {g.id: g.name for g in session.exec(select(Group)).all()}
        members: dict[str, set[str]] = {name: set() for name in groups.values()}
        query = select(GroupMember.group_id, Contact.external_id).join(
            Contact, col(Contact.id) == col(GroupMember.contact_id)
        )
        for group_id, external_id in session.exec(query).all():
            members[groups[group_id]].add(str(external_id))
    return members


def test_import_keeps_good_rows_reports_bad_ones_and_updates_on_reimport(
    sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "patients.csv"
    source.write_text(GOOD_AND_BAD, encoding="utf-8")
    refused = tmp_path / "refused.csv"

    result = reminders(
        "contacts", "import", str(source), "--refused", str(refused), database_url=sqlite_url
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == "3 created, 0 updated, 3 refused\n"
    errors = result.stderr.splitlines()
    assert len(errors) == 3, result.stderr
    assert re.fullmatch(r"line 4: phone: '12345' is not a valid phone number", errors[0])
    assert re.fullmatch(r"line 5: timezone: 'Mars/Base' is not an IANA time zone.*", errors[1])
    assert re.fullmatch(r"line 6: row: .*more cells.*", errors[2])

    contacts = contacts_by_external_id(db)
    assert set(contacts) == {"ext-1", "ext-2", "ext-6"}
    ivan, anna, plain = contacts["ext-1"], contacts["ext-2"], contacts["ext-6"]
    assert (ivan.name, ivan.phone, ivan.email) == (
        "Иван Петров",
        "+359888123456",
        "ivan@example.com",
    )
    assert (ivan.timezone, ivan.language) == ("Europe/Sofia", "bg")
    assert ivan.attributes == {"doctor": "Д-р Иванова"}
    assert (anna.phone, anna.timezone, anna.language) == ("+359888123457", "Europe/London", "en")
    assert anna.attributes == {"doctor": "Dr Brown"}
    assert (plain.phone, plain.attributes, plain.timezone) == ("+359888123461", {}, None)
    assert group_members(db) == {"Кардиология": {"ext-1"}, "VIP": {"ext-1", "ext-2"}}

    with refused.open(newline="", encoding="utf-8") as handle:
        refused_rows = list(csv.DictReader(handle))
    assert [r["name"] for r in refused_rows] == ["Bad Phone", "Bad Zone", "Too Many"]
    assert refused_rows[0]["phone"] == "12345"
    assert list(refused_rows[0]) == [*HEADER.strip().split(","), "reason"]
    assert [r["reason"] for r in refused_rows] == [e.split(": ", 1)[1] for e in errors]

    # The same file again, with Anna renamed: her contact is updated, nobody is duplicated.
    source.write_text(GOOD_AND_BAD.replace("Anna Smith,", "Anna Smith-Jones,"), encoding="utf-8")
    again = reminders("contacts", "import", str(source), database_url=sqlite_url)
    assert again.returncode == 1, again.stderr
    assert again.stdout == "0 created, 3 updated, 3 refused\n"
    contacts = contacts_by_external_id(db)
    assert set(contacts) == {"ext-1", "ext-2", "ext-6"}
    assert contacts["ext-2"].id == anna.id
    assert contacts["ext-2"].name == "Anna Smith-Jones"
    assert contacts["ext-1"].name == "Иван Петров"
    assert group_members(db) == {"Кардиология": {"ext-1"}, "VIP": {"ext-1", "ext-2"}}


def test_import_semicolon_delimited_cyrillic_csv(
    sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "excel.csv"
    # What Excel writes for "CSV UTF-8" in a Bulgarian locale: a BOM and semicolons.
    source.write_text(
        "\ufeffБележка;name;phone;groups;external_id\n"
        'x;Мария Георгиева;0888 123 470;"Група А;Група Б";bg-1\n'
        "y;Петър Стоянов;+359888123471;Група Б;bg-2\n",
        encoding="utf-8",
    )
    result = reminders("contacts", "import", str(source), database_url=sqlite_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 created, 0 updated, 0 refused\n"
    assert result.stderr == ""
    contacts = contacts_by_external_id(db)
    assert contacts["bg-1"].name == "Мария Георгиева"
    assert contacts["bg-1"].phone == "+359888123470"
    assert contacts["bg-2"].name == "Петър Стоянов"
    assert contacts["bg-1"].attributes == {"бележка": "x"}
    assert group_members(db) == {"Група А": {"bg-1"}, "Група Б": {"bg-1", "bg-2"}}


def test_import_reports_the_file_line_past_blank_lines_and_quoted_line_breaks(
    sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "gaps.csv"
    source.write_text(
        "name,phone,note\n"  # line 1
        'A,0888123480,"two\nlines"\n'  # lines 2-3
        "\n"  # line 4
        "B,12,\n",  # line 5
        encoding="utf-8",
    )
    result = reminders("contacts", "import", str(source), database_url=sqlite_url)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["line 5: phone: '12' is not a valid phone number"]
    with Session(db) as session:
        (a,) = session.exec(select(Contact)).all()
    assert a.attributes == {"note": "two\nlines"}


def contacts_by_name(engine: Engine) -> dict[str, list[Contact]]:
    with Session(engine) as session:
        rows = session.exec(select(Contact).order_by(col(Contact.id))).all()
    found: dict[str, list[Contact]] = {}
    for contact in rows:
        found.setdefault(contact.name, []).append(contact)
    return found


def test_rows_without_external_id_are_matched_by_phone_and_repeats_refused(
    sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "patients.csv"
    source.write_text(
        "name,phone,doctor\n"
        "Ясен Петков,0888 123 490,Д-р Иванова\n"
        "Мария Колева,0888 123 491,\n"
        "Ясен Петков,+359888123490,Д-р Иванова\n",
        encoding="utf-8",
    )
    first = reminders("contacts", "import", str(source), database_url=sqlite_url)
    assert first.returncode == 1
    assert first.stdout == "2 created, 0 updated, 1 refused\n"
    assert first.stderr.splitlines() == [
        "line 4: phone: the same number as line 2; one row per contact, "
        "or an external_id column to tell people who share a phone apart"
    ]

    # The second run, with a new doctor for Ясен, updates the two contacts it made.
    source.write_text(source.read_text(encoding="utf-8").replace("Иванова", "Петрова", 1))
    again = reminders("contacts", "import", str(source), database_url=sqlite_url)
    assert again.stdout == "0 created, 2 updated, 1 refused\n"
    found = contacts_by_name(db)
    assert sorted(found) == ["Мария Колева", "Ясен Петков"]
    [yasen] = found["Ясен Петков"]
    assert (yasen.phone, yasen.attributes) == ("+359888123490", {"doctor": "Д-р Петрова"})


def test_a_repeated_external_id_is_refused_and_a_shared_phone_is_not_guessed(
    sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "family.csv"
    source.write_text(
        "name,phone,external_id\n"
        "Иван Колев,0888 123 492,k-1\n"
        "Мария Колева,0888 123 492,k-2\n"  # the same phone, another person: both kept
        "Иван Колев,0888 123 493,k-1\n",
        encoding="utf-8",
    )
    result = reminders("contacts", "import", str(source), database_url=sqlite_url)
    assert result.stdout == "2 created, 0 updated, 1 refused\n"
    assert result.stderr.splitlines() == [
        "line 4: external_id: 'k-1' is on line 2 already; one row per contact"
    ]
    assert set(contacts_by_external_id(db)) == {"k-1", "k-2"}

    # Without an external_id, a number two contacts share cannot say which one to update.
    source.write_text("name,phone\nИван Колев,0888 123 492\n", encoding="utf-8")
    shared = reminders("contacts", "import", str(source), database_url=sqlite_url)
    assert shared.returncode == 1
    assert shared.stderr.splitlines() == [
        "line 2: phone: 2 contacts have this number; add an external_id column to say which"
    ]
    assert len(contacts_by_external_id(db)) == 2


def test_bulgarian_headers_and_refused_rows_written_as_the_file_was(
    sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "пациенти.csv"
    header = "Име;Телефон;Имейл;Часова зона;Език;Групи;Външен номер;Отказ;Лекар"
    source.write_text(
        f"\ufeff{header}\n"
        'Иван Петров;0888 123 494;ivan@example.com;Europe/Sofia;en;"Кардиология;VIP";p-1;не;'
        "Д-р Иванова\n"
        "Лош Номер;12345;;;;;p-2;;\n"
        "Бележка Без Кавички;0888 123 495;;;;;p-3;да;обади се; после\n",
        encoding="utf-8",
    )
    refused = tmp_path / "refused.csv"
    result = reminders(
        "contacts", "import", str(source), "--refused", str(refused), database_url=sqlite_url
    )
    assert result.stdout == "1 created, 0 updated, 2 refused\n"
    assert result.stderr.splitlines() == [
        "line 3: phone: '12345' is not a valid phone number",
        "line 4: row: more cells (10) than header columns (9); "
        "put a value that holds a ';' in double quotes",
    ]
    [ivan] = contacts_by_external_id(db).values()
    assert (ivan.name, ivan.phone, ivan.email, ivan.timezone, ivan.language) == (
        "Иван Петров",
        "+359888123494",
        "ivan@example.com",
        "Europe/Sofia",
        "en",
    )
    assert (ivan.external_id, ivan.opted_out, ivan.attributes) == (
        "p-1",
        False,
        {"лекар": "Д-р Иванова"},
    )
    assert group_members(db) == {"Кардиология": {"p-1"}, "VIP": {"p-1"}}

    # The file's own separator and header (and its BOM, which Excel needs to read UTF-8).
    written = refused.read_text(encoding="utf-8").splitlines()
    assert written == [
        f"\ufeff{header};reason",
        "Лош Номер;12345;;;;;p-2;;;phone: '12345' is not a valid phone number",
        'Бележка Без Кавички;0888 123 495;;;;;p-3;да;"обади се; после";'
        '"row: more cells (10) than header columns (9); '
        "put a value that holds a ';' in double quotes\"",
    ]


def test_an_unquoted_separator_in_a_value_refuses_that_row_only(
    sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "notes.csv"
    source.write_text(
        "name;phone;note\nИван;0888123497;обади се; после\nМария;0888123498;утре\n",
        encoding="utf-8",
    )
    result = reminders("contacts", "import", str(source), database_url=sqlite_url)
    assert result.stdout == "1 created, 0 updated, 1 refused\n"
    assert result.stderr.splitlines() == [
        "line 2: row: more cells (4) than header columns (3); "
        "put a value that holds a ';' in double quotes"
    ]
    assert list(contacts_by_name(db)) == ["Мария"]


def test_a_header_naming_a_column_twice_is_one_line(
    sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "twice.csv"
    source.write_text("Име,name,phone\nx,Иван,0888123496\n", encoding="utf-8")
    line = assert_one_line_error(
        reminders("contacts", "import", str(source), database_url=sqlite_url)
    )
    assert "the header names the name column 2 times ('Име', 'name')" in line, line
    with Session(db) as session:
        assert session.exec(select(Contact)).all() == []


@pytest.mark.parametrize(
    ("content", "encoding", "expected"),
    [
        ("name,email\nA,a@example.com\n", "utf-8", "no phone column"),
        ("name,phone\nИван,0888123480\n", "cp1251", "UTF-8"),
    ],
    ids=["no-phone-column", "not-utf8"],
)
def test_an_unusable_file_fails_with_one_line(
    content: str, encoding: str, expected: str, sqlite_url: str, db: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(content.encode(encoding))
    result = reminders("contacts", "import", str(source), database_url=sqlite_url)
    line = assert_one_line_error(result)
    assert expected in line and "bad.csv" in line, line
    with Session(db) as session:
        assert session.exec(select(Contact)).all() == []


def test_import_of_a_missing_file_is_one_line(sqlite_url: str, tmp_path: Path) -> None:
    result = reminders("contacts", "import", str(tmp_path / "nope.csv"), database_url=sqlite_url)
    assert "nope.csv" in assert_one_line_error(result)


# --- Kannel ----------------------------------------------------------------------------------


def test_kannel_get_url_prints_the_line_for_kannel_conf_without_the_secret() -> None:
    secret = "cli-secret-%A&ü"
    env = {"REMINDERS_WEBHOOK_SECRET": secret, "REMINDERS_PUBLIC_URL": "https://sms.example.bg/"}
    result = reminders("kannel", "get-url", env=env)
    assert result.returncode == 0 and result.stderr == "", result
    assert result.stdout == (
        'get-url = "https://sms.example.bg/webhooks/kannel/inbound'
        f"?token={inbound_token(secret)}"
        '&from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I"\n'
    )
    missing = reminders("kannel", "get-url", env={"REMINDERS_PUBLIC_URL": "https://x.example"})
    assert "REMINDERS_WEBHOOK_SECRET" in assert_one_line_error(missing)
    missing = reminders("kannel", "get-url", env={"REMINDERS_WEBHOOK_SECRET": secret})
    line = assert_one_line_error(missing)
    assert "REMINDERS_PUBLIC_URL" in line and secret not in line
