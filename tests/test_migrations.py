"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from reminders.db import make_engine
from reminders.migrate import (
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade,
)
from reminders.models import JOBS_TABLE


def test_migrated_schema_equals_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}


def test_job_table_matches_apschedulers_own(engine: Engine) -> None:
    """The mirrored job table must be the one APScheduler would create, or its store breaks."""
    theirs = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE, metadata=MetaData()).jobs_t
    ours = SQLModel.metadata.tables[JOBS_TABLE]
    assert [(c.name, type(c.type), c.primary_key, c.nullable) for c in theirs.columns] == [
        (c.name, type(c.type), c.primary_key, c.nullable) for c in ours.columns
    ]
    assert {tuple(i.columns.keys()) for i in theirs.indexes} == {
        tuple(i.columns.keys()) for i in ours.indexes
    }


def test_ensure_schema_is_idempotent(engine: Engine) -> None:
    assert ensure_schema(engine) == "current"


APPOINTMENT_WHEN = "0013"


def _appointment_steps(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        steps = conn.execute(text("SELECT steps FROM policies WHERE name = 'appointment'"))
        value = steps.scalar_one()
    return json.loads(value) if isinstance(value, str) else list(value)


def _set_appointment_steps(engine: Engine, steps: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE policies SET steps = :steps WHERE name = 'appointment'"),
            {"steps": json.dumps(steps)},
        )


def _before_appointment_when(engine: Engine) -> str:
    script = ScriptDirectory.from_config(alembic_config(engine)).get_revision(APPOINTMENT_WHEN)
    assert script is not None and isinstance(script.down_revision, str)
    return script.down_revision


def _migrated_to_before_appointment_when(database_url: str) -> Engine:
    engine = make_engine(database_url)
    command.upgrade(alembic_config(engine), _before_appointment_when(engine))
    return engine


def _add_notices(engine: Engine, steps: list[dict[str, Any]], *, owned: bool = False) -> None:
    """Scheduled and sent notices with the old texts, of an appointment and of another policy
    (``owned``: in the account 1, once rows belong to accounts)."""
    now = datetime(2026, 11, 25)
    column, value = ("account_id, ", "1, ") if owned else ("", "")
    with engine.begin() as conn:
        for key, policy in (("a", "appointment"), ("b", "mine")):
            conn.execute(
                text(
                    f"INSERT INTO anchors ({column}key, kind, title, at, all_day, policy, data,"
                    f" cancelled, created_at, updated_at) VALUES ({value}:key, 'event', 'x', :now,"
                    " :no, :policy, '{}', :no, :now, :now)"
                ),
                {"key": key, "policy": policy, "now": now, "no": False},
            )
        anchors = dict(conn.execute(text("SELECT key, id FROM anchors")).all())
        rows = [
            ("a", 0, "scheduled"),
            ("a", 1, "scheduled"),
            ("a", 1, "sent"),
            ("b", 1, "scheduled"),
        ]
        conn.execute(
            text(
                f"INSERT INTO notices ({column}key, kind, status, anchor_id, step, phone, text,"
                f" is_template, priority, transliterate, send_at, created_at, updated_at) VALUES"
                f" ({value}:key, 'event_reminder', :status, :anchor, :step, '+359888100001', :text,"
                " :yes, 'bulk', :no, :now, :now, :now)"
            ),
            [
                {
                    "key": f"{anchor}:{step}:{status}",
                    "status": status,
                    "anchor": anchors[anchor],
                    "step": step,
                    "text": steps[step]["template"],
                    "yes": True,
                    "no": False,
                    "now": now,
                }
                for anchor, step, status in rows
            ],
        )


def _notice_texts(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT key, text FROM notices")).all())


def test_the_seeded_appointment_texts_are_replaced_when_untouched(database_url: str) -> None:
    engine = _migrated_to_before_appointment_when(database_url)
    try:
        old = _appointment_steps(engine)
        assert "днес в {{ time }} ч." in old[1]["template"]
        _add_notices(engine, old)
        upgrade(engine)
        new = _appointment_steps(engine)
        assert [(s["offset"], s["at"]) for s in new] == [("-P1D", "18:00"), ("-PT2H", None)]
        assert all("{{ when }}" in s["template"] and "днес" not in s["template"] for s in new)
        # The appointment's notices still to go get the new text; one that went out, and
        # another policy's with the same words, keep theirs.
        assert _notice_texts(engine) == {
            "a:0:scheduled": new[0]["template"],
            "a:1:scheduled": new[1]["template"],
            "a:1:sent": old[1]["template"],
            "b:1:scheduled": old[1]["template"],
        }
        command.downgrade(alembic_config(engine), _before_appointment_when(engine))
        assert _appointment_steps(engine) == old
        assert set(_notice_texts(engine).values()) == {s["template"] for s in old}
    finally:
        engine.dispose()


def test_an_edited_appointment_policy_is_left_alone(database_url: str) -> None:
    engine = _migrated_to_before_appointment_when(database_url)
    try:
        edited = _appointment_steps(engine)
        edited[0]["at"] = "19:00"
        _set_appointment_steps(engine, edited)
        _add_notices(engine, edited)
        before = _notice_texts(engine)
        upgrade(engine)
        assert _appointment_steps(engine) == edited
        assert _notice_texts(engine) == before
    finally:
        engine.dispose()


def test_attempts_take_their_notices_account(database_url: str) -> None:
    """0016 copies each attempt's account from its notice, for the quota's and usage's counts."""
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0015")
        now = datetime(2026, 11, 25)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (slug, name, sender_ids, rate_share, status, created_at,"
                    " updated_at) VALUES ('clinic-a', 'A', '[]', 1, 'active', :now, :now)"
                ),
                {"now": now},
            )
            accounts = dict(conn.execute(text("SELECT slug, id FROM accounts")).all())
            for slug, account_id in accounts.items():
                conn.execute(
                    text(
                        "INSERT INTO notices (account_id, key, kind, status, phone, text,"
                        " is_template, priority, transliterate, send_at, created_at, updated_at)"
                        " VALUES (:account, :key, 'message', 'sent', '+359888100001', 'x', :no,"
                        " 'bulk', :no, :now, :now, :now)"
                    ),
                    {"account": account_id, "key": slug, "no": False, "now": now},
                )
            conn.execute(
                text(
                    "INSERT INTO attempts (notice_id, provider, status, segments, submitted_at)"
                    " SELECT id, 'outbox', 'sent', 1, :now FROM notices"
                ),
                {"now": now},
            )
        upgrade(engine)
        with engine.connect() as conn:
            pairs = conn.execute(
                text(
                    "SELECT a.account_id, n.account_id FROM attempts a"
                    " JOIN notices n ON n.id = a.notice_id"
                )
            ).all()
        assert len(pairs) == 2 and all(mine == theirs for mine, theirs in pairs)
        assert {mine for mine, _ in pairs} == set(accounts.values())
    finally:
        engine.dispose()


BEFORE_ACCOUNTS = "0014"
OLD_KEY = "rmd_an-old-key-from-before-accounts-0123456789abcdef"
# What each child row points at: it must survive the tables' rebuilds (SQLite's batch mode
# copies a table and drops the old one: with foreign keys on, its children would go with it).
LINKS = {
    "group_members": "SELECT group_id, contact_id FROM group_members",
    "notices": "SELECT id, message_id, contact_id, anchor_id FROM notices",
    "anchor_recipients": "SELECT anchor_id, phone, contact_id FROM anchor_recipients",
    "anchors": "SELECT id, source_id FROM anchors",
    "attempts": "SELECT id, notice_id FROM attempts",
    "feed_series": "SELECT source_id, uid FROM feed_series",
    "inbound_messages": "SELECT id, contact_id FROM inbound_messages",
    "outbox": "SELECT id, notice_id FROM outbox",
}


def _fill_before_accounts(engine: Engine) -> None:
    """One or two rows in every table of 0014, the children pointing at their parents."""
    from reminders.apikeys import hash_key

    now = datetime(2026, 11, 25, 8, 0)
    rows: list[tuple[str, dict[str, Any]]] = [
        (
            "INSERT INTO api_keys (id, name, scope, key_hash, prefix, created_at) VALUES"
            " (1, 'old admin', 'admin', :hash, :prefix, :now)",
            {"hash": hash_key(OLD_KEY), "prefix": OLD_KEY[:10]},
        ),
        *(
            (
                "INSERT INTO contacts (id, name, name_folded, phone, language, external_id,"
                " opted_out, attributes, created_at, updated_at) VALUES (:id, :name, :name,"
                " :phone, 'bg', :ext, :no, '{}', :now, :now)",
                {"id": i, "name": f"c{i}", "phone": f"+35988810000{i}", "ext": str(40 + i)},
            )
            for i in (1, 2)
        ),
        ("INSERT INTO groups (id, name, created_at, updated_at) VALUES (1, 'g', :now, :now)", {}),
        *(("INSERT INTO group_members VALUES (1, :c, :now)", {"c": c}) for c in (1, 2)),
        (
            "INSERT INTO messages (id, text, send_at, created_at, priority) VALUES"
            " (1, 'hi', :now, :now, 'bulk')",
            {},
        ),
        (
            "INSERT INTO sources (id, name, url, refresh, timezone, policy, use_alarms,"
            " recipients, error_count, event_count, warnings, created_at, updated_at) VALUES"
            " (1, 'feed', 'https://example.bg/f.ics', 'PT15M', 'Europe/Sofia', 'appointment',"
            " :no, '{\"groups\": [], \"contacts\": []}', 0, 1, '[]', :now, :now)",
            {},
        ),
        (
            "INSERT INTO feed_series VALUES (1, 'u1', 'd', :no, '', '', '', '', '', '[]')",
            {},
        ),
        *(
            (
                "INSERT INTO anchors (id, key, kind, title, at, all_day, policy, data,"
                " cancelled, created_at, updated_at, source_id) VALUES (:id, :key, :kind, 'x',"
                " :now, :no, :policy, '{}', :no, :now, :now, :source)",
                {"id": i, "key": f"k{i}", "kind": kind, "policy": policy, "source": source},
            )
            for i, kind, policy, source in (
                (1, "event", "appointment", 1),
                (2, "bill", "bill", None),
            )
        ),
        ("INSERT INTO anchor_recipients VALUES (1, '+359888100001', 1)", {}),
        *(
            (
                "INSERT INTO notices (id, key, kind, status, message_id, contact_id, anchor_id,"
                " step, phone, text, send_at, created_at, updated_at, is_template, priority,"
                " transliterate) VALUES (:id, :key, :kind, :status, :message, :contact,"
                " :anchor, :step, '+359888100001', 'x', :now, :now, :now, :no, 'bulk', :no)",
                {
                    "id": i,
                    "key": f"n{i}",
                    "kind": kind,
                    "status": status,
                    "message": message,
                    "contact": contact,
                    "anchor": anchor,
                    "step": step,
                },
            )
            for i, kind, status, message, contact, anchor, step in (
                (1, "message", "scheduled", 1, 1, None, None),
                (2, "event_reminder", "scheduled", None, 1, 1, 0),
                (3, "bill_due", "sent", None, 2, 2, 0),
            )
        ),
        (
            "INSERT INTO attempts (id, notice_id, provider, provider_message_id, status,"
            " submitted_at) VALUES (1, 3, 'outbox', 'o-1', 'sent', :now)",
            {},
        ),
        (
            "INSERT INTO inbound_messages (id, provider, provider_message_id, from_phone, text,"
            " contact_id, received_at) VALUES (1, 'kannel', 'i-1', '+359888100001', 'ok', 1,"
            " :now)",
            {},
        ),
        (
            'INSERT INTO outbox (id, notice_id, "to", text, created_at) VALUES'
            " (1, 3, '+359888100002', 'x', :now)",
            {},
        ),
    ]
    with engine.begin() as conn:
        for statement, values in rows:
            conn.execute(text(statement), {"now": now, "no": False, **values})
        if engine.dialect.name == "postgresql":
            # Rows written with their ids: the sequences move past them, as the API's would.
            for table in ("api_keys", "contacts", "groups", "messages", "sources", "anchors",
                          "notices", "attempts", "inbound_messages", "outbox"):  # fmt: skip
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))


def _links(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {name: sorted(map(tuple, conn.execute(text(q)).all())) for name, q in LINKS.items()}


def test_an_upgrade_puts_every_row_in_the_default_account_and_keeps_its_links(
    database_url: str,
) -> None:
    from fastapi.testclient import TestClient

    from reminders.models import OWNED
    from reminders.process import build
    from reminders.settings import load_settings

    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), BEFORE_ACCOUNTS)
        _fill_before_accounts(engine)
        links = _links(engine)
        assert all(links.values()), links
        upgrade(engine)

        assert _links(engine) == links
        with engine.connect() as conn:
            accounts = conn.execute(text("SELECT id, slug FROM accounts")).all()
            assert [tuple(a) for a in accounts] == [(1, "default")]
            for model in OWNED:
                table = model.__tablename__  # type: ignore[attr-defined]
                owners = conn.execute(text(f"SELECT DISTINCT account_id FROM {table}")).all()
                assert [tuple(o) for o in owners] in ([(1,)], []), (table, owners)
                # Made with accounts or after them: no row of theirs predates accounts.
                if table not in ("users", "replies", "webhook_endpoints", "webhook_deliveries",
                                 "webhook_attempts"):  # fmt: skip
                    assert owners, f"{table} has no rows to check"

        # The old key works, in the account default, and the API shows its rows.
        settings = load_settings(database_url=database_url, quiet_hours="off")
        process = build(settings, engine, run_scheduler=False)
        headers = {"Authorization": f"Bearer {OLD_KEY}"}
        with TestClient(process.app) as client:
            contacts = client.get("/api/v1/contacts", headers=headers)
            assert contacts.status_code == 200, contacts.text
            assert [c["external_id"] for c in contacts.json()["items"]] == ["41", "42"]
            members = client.get("/api/v1/groups/1/members", headers=headers).json()
            assert [m["id"] for m in members["items"]] == [1, 2]
            event = client.get("/api/v1/events/1", headers=headers).json()
            assert event["source_id"] == 1 and [n["id"] for n in event["notices"]] == [2]
            bill = client.get("/api/v1/notices/3", headers=headers).json()
            assert bill["contact_id"] == 2 and bill["attempts"][0]["provider_message_id"] == "o-1"
            assert [k["name"] for k in client.get("/api/v1/keys", headers=headers).json()] == [
                "old admin"
            ]
            # Natural keys are still unique, now within the account.
            again = {"name": "x", "phone": "0888 100 009", "external_id": "42"}
            assert client.post("/api/v1/contacts", json=again, headers=headers).status_code == 409

        # Back before accounts, on a database that has one: every row and link is kept.
        command.downgrade(alembic_config(engine), BEFORE_ACCOUNTS)
        assert _links(engine) == links
        assert "accounts" not in inspect(engine).get_table_names()
        upgrade(engine)  # and forward again
        assert _links(engine) == links
    finally:
        engine.dispose()


def _appointments(engine: Engine) -> dict[int, tuple[Any, Any, Any]]:
    """Each account's appointment policy: (steps, replies, reply_ack), JSON read back."""

    def read(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT account_id, steps, replies, reply_ack FROM policies"
                " WHERE name = 'appointment'"
            )
        ).all()
    return {account: (read(s), read(r), read(a)) for account, s, r, a in rows}


def _first_accounts_steps(engine: Engine) -> Any:
    with engine.connect() as conn:
        raw = conn.execute(
            text("SELECT steps FROM policies WHERE name = 'appointment' AND account_id = 1")
        ).scalar_one()
    return json.loads(raw) if isinstance(raw, str) else raw


def test_the_seeded_appointment_policy_asks_for_an_answer_where_untouched(
    database_url: str,
) -> None:
    """0023: an untouched appointment policy gets the answer words, the acknowledgements and a
    day-before text that says how to answer (its notices to go too); an edited one is left
    alone; a downgrade takes it back. A new account starts with what the migration gives."""
    from reminders.accounts.defaults import DEFAULT_POLICIES

    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0022")
        now = datetime(2026, 11, 25)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (slug, name, sender_ids, inbound_numbers, rate_share,"
                    " status, created_at, updated_at) VALUES ('clinic-b', 'B', '[]', '[]', 1,"
                    " 'active', :now, :now)"
                ),
                {"now": now},
            )
            edited = conn.execute(text("SELECT id FROM accounts WHERE slug = 'clinic-b'")).scalar()
            conn.execute(
                text(
                    "INSERT INTO policies (account_id, name, steps, priority, created_at,"
                    " updated_at) VALUES (:a, 'appointment', :steps, 'bulk', :now, :now)"
                ),
                {
                    "a": edited,
                    "steps": json.dumps(
                        [{"offset": "-P2D", "at": "09:00", "template": "Own", "kind": None}]
                    ),
                    "now": now,
                },  # fmt: skip
            )
        old = _first_accounts_steps(engine)
        _add_notices(engine, old, owned=True)
        upgrade(engine)
        after = _appointments(engine)
        steps, replies, acks = after[1]
        assert "Отговорете 1 за потвърждение, 2 за отказ." in steps[0]["template"]
        assert "Reply 1 to confirm, 2 to cancel." in steps[0]["template"]
        assert steps[1] == old[1]
        assert replies["confirm"][:2] == ["1", "ДА"] and replies["cancel"][:2] == ["2", "НЕ"]
        assert set(acks) == {"confirm", "cancel"}
        assert after[edited] == (
            [{"offset": "-P2D", "at": "09:00", "template": "Own", "kind": None}],
            None,
            None,
        )
        # The appointment's day-before notice still to go says it too; what went keeps its text.
        assert _notice_texts(engine) == {
            "a:0:scheduled": steps[0]["template"],
            "a:1:scheduled": old[1]["template"],
            "a:1:sent": old[1]["template"],
            "b:1:scheduled": old[1]["template"],
        }
        [seeded] = [p for p in DEFAULT_POLICIES if p["name"] == "appointment"]
        assert (seeded["steps"], seeded["replies"], seeded["reply_ack"]) == after[1]

        command.downgrade(alembic_config(engine), "0022")
        assert _first_accounts_steps(engine) == old
        assert _notice_texts(engine)["a:0:scheduled"] == old[0]["template"]
    finally:
        engine.dispose()
