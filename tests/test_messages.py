"""A message fans out into notices that the scheduler fires once each through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from reminders.errors import InvalidField
from reminders.messages import create_message
from reminders.models import Contact
from reminders.schemas.messages import MessageCreate
from reminders.settings import Settings, load_settings
from tests.conftest import account_session, wait_for

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Quiet hours off: these tests send "now", whatever the hour the suite runs at."""
    return load_settings(database_url=database_url, quiet_hours="off")


def contact(client: TestClient, headers: Headers, phone: str, **extra: Any) -> int:
    body = {"name": f"Contact {phone}", "phone": phone, **extra}
    response = client.post("/api/v1/contacts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def send(client: TestClient, headers: Headers, **body: Any) -> Any:
    return client.post("/api/v1/messages", json=body, headers=headers)


def notices_of(client: TestClient, headers: Headers, message_id: int) -> list[dict[str, Any]]:
    page = client.get("/api/v1/notices", params={"message_id": message_id}, headers=headers)
    return list(page.json()["items"])


def outbox(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT notice_id, "to", text FROM outbox ORDER BY id')).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_send_now_reaches_the_outbox_once_per_phone(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    a = contact(client, writer, "0888 300 001")
    b = contact(client, writer, "0888 300 002")
    g = client.post("/api/v1/groups", json={"name": "G"}, headers=writer).json()["id"]
    client.post(f"/api/v1/groups/{g}/members", json={"contact_ids": [a, b]}, headers=writer)

    response = send(
        client,
        writer,
        to={"groups": [g], "contacts": [a], "phones": ["+359888300002", "0888 300 003"]},
        text="Часът ви е утре в 10:30",
        sender_id="Clinic",
    )
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["recipients"] == 3
    assert sorted(n["phone"] for n in message["notices"]) == [
        "+359888300001",
        "+359888300002",
        "+359888300003",
    ]
    # The raw phone of a known contact is sent as that contact.
    by_phone = {n["phone"]: n for n in message["notices"]}
    assert by_phone["+359888300002"]["contact_id"] == b
    assert by_phone["+359888300003"]["contact_id"] is None

    wait_for(
        lambda: all(n["status"] == "sent" for n in notices_of(client, writer, message["id"])),
        what="every notice sent",
    )
    rows = outbox(engine)
    assert sorted(r[1] for r in rows) == sorted(by_phone)
    assert {r[2] for r in rows} == {"Часът ви е утре в 10:30"}

    detail = client.get(f"/api/v1/notices/{message['notices'][0]['id']}", headers=writer).json()
    assert detail["sender_id"] == "Clinic"
    assert len(detail["attempts"]) == 1
    attempt = detail["attempts"][0]
    assert attempt["provider"] == "outbox"
    assert attempt["provider_message_id"].startswith("outbox-")
    assert attempt["status"] == "sent" and attempt["error"] is None


def test_opted_out_contact_is_suppressed_not_sent(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    out = contact(client, writer, "0888 300 010", opted_out=True)
    message = send(
        client, writer, to={"contacts": [out], "phones": ["0888300010"]}, text="Hi"
    ).json()
    assert [n["status"] for n in message["notices"]] == ["suppressed"]
    assert message["notices"][0]["status_reason"] == "the contact opted out"
    assert outbox(engine) == []


def test_contact_opting_out_after_scheduling_is_suppressed_when_it_fires(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    who = contact(client, writer, "0888 300 011")
    # A minute ahead: a loaded machine can take more than a second to answer the PATCH, and
    # the notice must still be waiting when the opt-out comes.
    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    message = send(client, writer, to={"contacts": [who]}, text="Hi", send_at=soon).json()
    client.patch(f"/api/v1/contacts/{who}", json={"opted_out": True}, headers=writer)
    notice_id = message["notices"][0]["id"]
    wait_for(
        lambda: (
            client.get(f"/api/v1/notices/{notice_id}", headers=writer).json()["status"]
            == "suppressed"
        ),
        what="the notice to be suppressed",
    )
    assert outbox(engine) == []


def test_future_message_waits_and_can_be_cancelled(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).astimezone().isoformat()
    message = send(
        client, writer, to={"phones": ["0888 300 020", "0888 300 021"]}, text="Later", send_at=later
    ).json()
    first, second = (n["id"] for n in message["notices"])
    assert all(n["status"] == "scheduled" for n in message["notices"])

    cancelled = client.post(f"/api/v1/notices/{first}/cancel", headers=writer)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/notices/{first}/cancel", headers=writer)
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]

    with engine.connect() as conn:
        jobs = set(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
    assert jobs == {f"notice:{second}"}


def test_filters(client: TestClient, writer: Headers) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    m1 = send(
        client, writer, to={"phones": ["0888 300 030"]}, text="A", send_at=later.isoformat()
    ).json()
    m2 = send(
        client,
        writer,
        to={"phones": ["0888 300 031"]},
        text="B",
        send_at=(later + timedelta(days=2)).isoformat(),
    ).json()
    client.post(f"/api/v1/notices/{m2['notices'][0]['id']}/cancel", headers=writer)

    def ids(**params: Any) -> list[int]:
        response = client.get("/api/v1/notices", params=params, headers=writer)
        assert response.status_code == 200, response.text
        return [n["id"] for n in response.json()["items"]]

    n1, n2 = m1["notices"][0]["id"], m2["notices"][0]["id"]
    assert ids(status="scheduled") == [n1]
    assert ids(status=["scheduled", "cancelled"]) == [n1, n2]
    assert ids(kind="message") == [n1, n2]
    assert ids(kind="bill_due") == []
    assert ids(since=(later + timedelta(days=1)).isoformat()) == [n2]
    assert ids(until=(later + timedelta(days=1)).isoformat()) == [n1]
    assert (
        client.get("/api/v1/notices", params={"status": "lost"}, headers=writer).status_code == 422
    )
    naive = client.get("/api/v1/notices", params={"since": "2026-12-01T10:00:00"}, headers=writer)
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "since"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"to": {}, "text": "x"}, "to", "at least one recipient"),
        ({"to": {"phones": ["0888300040", "12"]}, "text": "x"}, "to.phones.1", "not a valid"),
        ({"to": {"groups": [424242]}, "text": "x"}, "to.groups", "no group with id 424242"),
        ({"to": {"contacts": [424242]}, "text": "x"}, "to.contacts", "no contact with id 424242"),
        ({"to": {"phones": ["0888300040"]}, "text": ""}, "text", "at least 1"),
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "send_at": "tomorrow-ish"},
            "send_at",
            "could not read 'tomorrow-ish' as a date",
        ),
        (
            {
                "to": {"phones": ["0888300040"]},
                "text": "x",
                "send_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            },
            "send_at",
            "in the past",
        ),
        # The rules of every date field: day first, nothing impossible, nothing far off.
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "send_at": "12.13.2027 10:00"},
            "send_at",
            "'12.13.2027' is not a date read day first",
        ),
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "send_at": "02/03/2027 10:00"},
            "send_at",
            "day first or month first",
        ),
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "send_at": "утре"},
            "send_at",
            "has no time of day",
        ),
        (
            {
                "to": {"phones": ["0888300040"]},
                "text": "x",
                "send_at": "9999-12-31T23:00:00+00:00",
            },
            "send_at",
            "is outside the dates accepted",
        ),
        (
            {
                "to": {"phones": ["0888300040"]},
                "text": "x",
                "send_at": "0001-01-01T01:00:00+00:00",
            },
            "send_at",
            "is outside the dates accepted",
        ),
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "timezone": "Mars/Olympus"},
            "timezone",
            "IANA",
        ),
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "sender_id": "Far too long name"},
            "sender_id",
            "1 to 11",
        ),
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "sender_id": "Клиника"},
            "sender_id",
            "Latin",
        ),
        ({"to": {"phones": "0888300040"}, "text": "x"}, "to.phones", "list"),
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "priority": "high"},
            "priority",
            "'transactional' or 'bulk'",
        ),
        (
            {"to": {"phones": ["0888300040"]}, "text": "x", "urgent": True},
            "urgent",
            "not a known field",
        ),
    ],
)
def test_bad_messages_are_refused_naming_the_field(
    client: TestClient,
    writer: Headers,
    engine: Engine,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = send(client, writer, **body)
    assert 400 <= response.status_code < 500
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notices")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 0


def test_empty_group_is_refused(client: TestClient, writer: Headers) -> None:
    g = client.post("/api/v1/groups", json={"name": "Empty"}, headers=writer).json()["id"]
    response = send(client, writer, to={"groups": [g]}, text="x")
    assert response.status_code == 422
    assert "no members" in response.json()["detail"]


def test_deleting_a_contact_cancels_what_was_still_to_be_sent(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    who = contact(client, writer, "0888 300 050")
    later = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    message = send(client, writer, to={"contacts": [who]}, text="x", send_at=later).json()
    assert client.delete(f"/api/v1/contacts/{who}", headers=writer).status_code == 204
    notice = client.get(f"/api/v1/notices/{message['notices'][0]['id']}", headers=writer).json()
    assert notice["status"] == "cancelled"
    assert notice["status_reason"] == "the contact was deleted"
    assert notice["contact_id"] is None
    with engine.connect() as conn:
        wait_for(
            lambda: conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == 0,
            what="the job to fire into nothing",
        )
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar() == 0


def test_bulk_waits_for_the_end_of_quiet_hours_on_the_recipients_clock(engine: Engine) -> None:
    from zoneinfo import ZoneInfo

    from reminders.messages import create_message
    from reminders.schemas.messages import MessageCreate
    from reminders.wall_clock import QuietHours

    sofia = ZoneInfo("Europe/Sofia")
    now = datetime(2026, 12, 1, 22, 30, tzinfo=sofia)  # 20:30 in London
    quiet = QuietHours.parse("21:00-08:00")
    with account_session(engine, expire_on_commit=False) as session:
        from reminders.models import Contact

        session.add(
            Contact(
                name="Jane", name_folded="jane", phone="+447911123456", timezone="Europe/London"
            )
        )
        session.commit()

        def send(priority: str) -> dict[str, Any]:
            data = MessageCreate.model_validate(
                {
                    "to": {"phones": ["0888 300 060", "+44 7911 123456"]},
                    "text": "x",
                    "priority": priority,
                }
            )
            _, notices = create_message(
                session, None, data, region="BG", quiet=quiet, zone="Europe/Sofia", now=now
            )
            return {n.phone: n for n in notices}

        bulk = send("bulk")
        assert bulk["+359888300060"].send_at == datetime(2026, 12, 2, 8, 0, tzinfo=sofia)
        assert "quiet hours" in (bulk["+359888300060"].status_reason or "")
        # Jane's evening is still before 21:00 in London: her message goes now.
        assert bulk["+447911123456"].send_at == now
        urgent = send("transactional")
        assert {n.send_at for n in urgent.values()} == {now}
        assert {n.priority for n in urgent.values()} == {"transactional"}


# send_at takes what an event's start takes, read in the message's zone, else the recipients'.
SOFIA = ZoneInfo("Europe/Sofia")
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2027, 1, 13, 12, 0, tzinfo=SOFIA)  # a Wednesday


def add_contact(engine: Engine, phone: str, timezone: str | None) -> int:
    with account_session(engine) as session:
        contact = Contact(name="C", name_folded="c", phone=phone, timezone=timezone)
        session.add(contact)
        session.commit()
        assert contact.id is not None
        return contact.id


def plan_message(engine: Engine, **body: Any) -> datetime:
    """The send time create_message gives a message; its error if it refuses it."""
    data = MessageCreate.model_validate({"text": "x", **body})
    with account_session(engine, expire_on_commit=False) as session:
        message, _ = create_message(session, None, data, region="BG", zone="Europe/Sofia", now=NOW)
    return message.send_at


@pytest.mark.parametrize(
    ("send_at", "local"),
    [
        ("утре в 10", datetime(2027, 1, 14, 10, 0, tzinfo=SOFIA)),
        ("следващия петък 9:00", datetime(2027, 1, 22, 9, 0, tzinfo=SOFIA)),
        ("tomorrow at 10", datetime(2027, 1, 14, 10, 0, tzinfo=SOFIA)),
        ("15.02.2027 10:30", datetime(2027, 2, 15, 10, 30, tzinfo=SOFIA)),
        ("2027-02-15T10:30", datetime(2027, 2, 15, 10, 30, tzinfo=SOFIA)),
        ("в 10:30", datetime(2027, 1, 14, 10, 30, tzinfo=SOFIA)),
        ("в 18 ч.", datetime(2027, 1, 13, 18, 0, tzinfo=SOFIA)),
        ("след 2 часа", datetime(2027, 1, 13, 14, 0, tzinfo=SOFIA)),
    ],
)
def test_send_at_takes_words_like_an_event_start(
    engine: Engine, send_at: str, local: datetime
) -> None:
    assert plan_message(engine, to={"phones": ["0888 300 070"]}, send_at=send_at) == local


def test_send_at_is_read_in_the_recipients_zone_or_the_message_s(engine: Engine) -> None:
    jane = add_contact(engine, "+447911123456", "Europe/London")
    add_contact(engine, "+447911123457", "Europe/London")
    london_ten = datetime(2027, 1, 14, 10, 0, tzinfo=LONDON)
    assert plan_message(engine, to={"contacts": [jane]}, send_at="утре в 10") == london_ten
    # A raw number of a known contact is that contact, zone included.
    both = {"phones": ["+44 7911 123457"], "contacts": [jane]}
    assert plan_message(engine, to=both, send_at="tomorrow 10:00") == london_ten
    sofia_ten = datetime(2027, 1, 14, 10, 0, tzinfo=SOFIA)
    assert (
        plan_message(engine, to={"contacts": [jane]}, send_at="утре в 10", timezone="Europe/Sofia")
        == sofia_ten
    )


def test_words_that_mean_different_times_for_the_recipients_are_refused(engine: Engine) -> None:
    jane = add_contact(engine, "+447911123456", "Europe/London")
    mixed = {"contacts": [jane], "phones": ["0888 300 071"]}
    with pytest.raises(InvalidField) as refused:
        plan_message(engine, to=mixed, send_at="утре в 10")
    assert refused.value.field == "send_at"
    assert str(refused.value) == (
        "'утре в 10' is a different time for recipients in Europe/London, Europe/Sofia;"
        " add an offset or a timezone"
    )
    # The same instant everywhere is fine: an offset, or a duration.
    at = plan_message(engine, to=mixed, send_at="2027-01-14T10:00:00+02:00")
    assert at == datetime(2027, 1, 14, 10, 0, tzinfo=SOFIA)
    assert plan_message(engine, to=mixed, send_at="in 2 hours") == NOW + timedelta(hours=2)
    assert plan_message(engine, to=mixed, send_at="утре в 10", timezone="Europe/London") == (
        datetime(2027, 1, 14, 10, 0, tzinfo=LONDON)
    )


def test_send_at_in_words_over_the_api(client: TestClient, writer: Headers) -> None:
    day = (datetime.now(SOFIA) + timedelta(days=30)).date()
    response = send(
        client, writer, to={"phones": ["0888 300 072"]}, text="x", send_at=f"{day:%d.%m.%Y} в 10 ч."
    )
    assert response.status_code == 201, response.text
    expected = datetime(day.year, day.month, day.day, 10, 0, tzinfo=SOFIA)
    assert datetime.fromisoformat(response.json()["send_at"]) == expected
    assert datetime.fromisoformat(response.json()["notices"][0]["send_at"]) == expected


def test_a_message_is_sent_as_written_not_rendered_as_a_template(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    # Only policy steps are templates; a message's braces are its own text.
    written = "Код {{ event.title }} {% for i in range(9) %}"
    response = send(client, writer, to={"phones": ["0888 300 010"]}, text=written)
    assert response.status_code == 201, response.text
    message = response.json()
    wait_for(
        lambda: all(n["status"] == "sent" for n in notices_of(client, writer, message["id"])),
        what="the notice sent",
    )
    assert [r[2] for r in outbox(engine)] == [written]


def test_a_message_written_as_a_template_is_filled_in_for_each_recipient(
    client: TestClient, writer: Headers, engine: Engine
) -> None:
    ivan = client.post(
        "/api/v1/contacts",
        json={"name": "Иван Петров", "phone": "0888 300 020", "attributes": {"debt": "84.20"}},
        headers=writer,
    )
    assert ivan.status_code == 201, ivan.text
    template = "Здравейте, {{ first_name or 'клиенте' }}! Дължите {{ contact.debt or '0' }} лв."
    response = send(
        client,
        writer,
        to={"contacts": [ivan.json()["id"]], "phones": ["0888 300 021"]},
        text=template,
        template=True,
    )
    assert response.status_code == 201, response.text
    message = response.json()
    wait_for(
        lambda: all(n["status"] == "sent" for n in notices_of(client, writer, message["id"])),
        what="both notices sent",
    )
    assert sorted(r[2] for r in outbox(engine)) == [
        "Здравейте, Иван! Дължите 84.20 лв.",
        "Здравейте, клиенте! Дължите 0 лв.",
    ]


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{{ title }} утре", "unknown name title"),  # an event's name: a message has none
        ("{% for x in %}", "line 1"),
        ("{{ name|nosuchfilter }}", "nosuchfilter"),
    ],
)
def test_a_template_message_that_cannot_be_filled_in_is_refused(
    client: TestClient, writer: Headers, template: str, says: str
) -> None:
    response = send(client, writer, to={"phones": ["0888 300 030"]}, text=template, template=True)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "text" and says in error["message"], error


def test_the_quota_counts_a_template_at_its_longest_recipient(
    client: TestClient, engine: Engine
) -> None:
    from tests.conftest import make_key
    from tests.test_quota import new_account

    new_account(engine, "clinic-a", monthly_segments=3)
    key = make_key(engine, "write", "clinic-a")
    long_name = client.post(
        "/api/v1/contacts",
        json={"name": "x" * 150, "phone": "0888 300 040"},
        headers=key,
    ).json()["id"]
    body = {"to": {"contacts": [long_name], "phones": ["0888 300 041"]},
            "text": "Hi {{ name }}", "template": True}  # fmt: skip
    # Filled in: 153 characters (one segment is 160) for the contact, 3 for the number; the
    # quota counts 2 SMS of the longest, 1 segment each: fits in 3. With 160 more, it would not.
    assert client.post("/api/v1/messages", json=body, headers=key).status_code == 201
    body["text"] = "Hi {{ name }}" + "!" * 10  # 163 characters for the contact: two segments
    refused = client.post("/api/v1/messages", json=body, headers=key)
    assert refused.status_code == 422
    assert "needs 4 segments (2 per SMS to 2 recipients)" in refused.json()["errors"][0]["message"]
