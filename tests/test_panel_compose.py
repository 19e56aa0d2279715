"""The compose screen: recipients, the live preview, the confirmation, sending and the test."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.errors import InvalidField
from reminders.models import Message, Notice
from reminders.panel.compose import cost, read_numbers, read_when
from tests.conftest import make_key, wait_for
from tests.test_panel import add_user, csrf, sign_in

SOFIA = ZoneInfo("Europe/Sofia")
BG = {"Accept-Language": "bg"}


def signed_in(client: TestClient, engine: Engine, role: str = "operator") -> str:
    """Sign in someone with ``role`` in the default account; the page's CSRF token."""
    add_user(engine, f"{role}@clinic.bg", role=role)
    assert sign_in(client, f"{role}@clinic.bg").status_code == 303
    return csrf(client.get("/").text)


def contact(client: TestClient, key: dict[str, str], name: str, phone: str) -> int:
    made = client.post("/api/v1/contacts", json={"name": name, "phone": phone}, headers=key)
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def group(client: TestClient, key: dict[str, str], name: str, members: list[int]) -> int:
    made = client.post("/api/v1/groups", json={"name": name}, headers=key)
    assert made.status_code == 201, made.text
    group_id = int(made.json()["id"])
    if members:
        added = client.post(
            f"/api/v1/groups/{group_id}/members", json={"contact_ids": members}, headers=key
        )
        assert added.status_code == 200, added.text
    return group_id


def messages(engine: Engine) -> list[Message]:
    with Session(engine) as session:
        return list(session.exec(select(Message).order_by(col(Message.id))).all())


def notices(engine: Engine, message_id: int) -> list[Notice]:
    with Session(engine) as session:
        query = select(Notice).where(Notice.message_id == message_id).order_by(col(Notice.phone))
        return list(session.exec(query).all())


# --- the plain functions


def test_pasted_numbers_are_read_as_the_api_reads_phones() -> None:
    read = read_numbers(
        "0888 123 456\n+359 899 111 222, 00359888123456; 0887000111 0887000222\n"
        "12345\nabc\n029876543",
        "BG",
    )
    assert read.phones == ["+359888123456", "+359899111222", "+359887000111", "+359887000222"]
    assert [(b.written, b.reason) for b in read.bad] == [
        ("12345", "invalid"),
        ("abc", "not_a_number"),
        ("029876543", "not_mobile"),  # a Sofia landline
    ]
    assert read_numbers("  \n , ", "BG").phones == []


def test_the_cost_is_shown_both_ways_with_the_dear_characters_marked() -> None:
    bulgarian = cost("Часът ви е утре в 10:30 при д-р Петрова.")
    assert (bulgarian.written.encoding, bulgarian.latin.encoding) == ("UCS-2", "GSM-7")
    assert [s.mark for s in bulgarian.spans] == [None]  # Cyrillic is dear only as written
    # A typographic quote and a non-breaking space are replaced; an emoji stays UCS-2.
    latin = cost("Hello\u00a0„Ana“ 🙂")
    assert latin.written.encoding == "UCS-2" and latin.latin.encoding == "UCS-2"
    marked = [(s.text, s.mark) for s in latin.spans if s.mark]
    assert marked == [("\u00a0„", "lookalike"), ("“", "lookalike"), ("🙂", "ucs2")]
    assert ("\u00a0", "U+00A0", " ") in latin.swaps
    plain = cost('Hello "Ana"')
    assert plain.written.encoding == "GSM-7" and plain.written.segments == 1


def test_when_is_read_by_the_apis_parser() -> None:
    now = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert read_when("", zone=SOFIA, now=now) is None
    tomorrow = read_when("утре в 10", zone=SOFIA, now=now)
    assert tomorrow == datetime(2026, 12, 3, 10, 0, tzinfo=SOFIA)
    assert read_when("2026-12-15T10:30", zone=SOFIA, now=now) == datetime(
        2026, 12, 15, 10, 30, tzinfo=SOFIA
    )
    with pytest.raises(InvalidField) as refused:
        read_when("утре", zone=SOFIA, now=now)  # no time of day
    assert refused.value.field == "send_at"


# --- the screen


def test_an_operator_composes_checks_confirms_and_sends(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    ana = contact(client, admin, "Ана Петрова", "+359888000001")
    boris = contact(client, admin, "Борис Иванов", "+359888000002")
    vera = contact(client, admin, "Вера Колева", "+359888000003")
    patients = group(client, admin, "Пациенти", [ana, boris])
    token = signed_in(client, engine)
    page = client.get("/compose")
    assert page.status_code == 200
    assert "Пациенти" in page.text and 'hx-post="/compose/preview"' in page.text
    # Search finds contacts by a Cyrillic name, in any case, and by phone.
    found = client.post("/compose/contacts", data={"csrf": token, "q": "вера"})
    assert f'value="{vera}"' in found.text and "Вера Колева" in found.text
    by_phone = client.post("/compose/contacts", data={"csrf": token, "q": "0888 000 002"})
    assert f'value="{boris}"' in by_phone.text and f'value="{vera}"' not in by_phone.text
    # The preview counts each phone once: Ana is in the group and pasted too.
    form = {
        "csrf": token,
        "group": str(patients),
        "contact": str(vera),
        "numbers": "0888 000 001\n0899 123 456, 12345",
        "text": "Здравейте, часът ви е утре.",
    }
    preview = client.post("/compose/preview", data=form)
    assert preview.status_code == 200
    assert "Recipients: 4" in preview.text
    assert "12345: not a valid phone number" in preview.text
    assert 'data-encoding="written">UCS-2' in preview.text
    assert 'data-encoding="latin">GSM-7' in preview.text
    # A bad number stops the confirmation, listed beside its field.
    refused = client.post("/compose/confirm", data=form)
    assert refused.status_code == 422 and 'id="numbers-error"' in refused.text
    assert messages(engine) == []
    form["numbers"] = "0888 000 001\n0899 123 456"
    confirmed = client.post("/compose/confirm", data=form)
    assert confirmed.status_code == 200, confirmed.text
    assert "4 recipients × 1 segments = 4 SMS" in confirmed.text
    assert messages(engine) == []  # checked, not sent
    expect = re.search(r'name="expect" value="([^"]+)"', confirmed.text)
    assert expect is not None and expect.group(1) == "4:1"
    sent = client.post(
        "/compose/send", data={**form, "expect": expect.group(1)}, follow_redirects=False
    )
    assert sent.status_code == 303
    [message] = messages(engine)
    assert sent.headers["location"] == f"/notices?message={message.id}"
    assert message.text == "Здравейте, часът ви е утре."
    assert [n.phone for n in notices(engine, message.id or 0)] == [
        "+359888000001",
        "+359888000002",
        "+359888000003",
        "+359899123456",
    ]


def test_what_changed_after_the_confirmation_is_confirmed_again(
    client: TestClient, engine: Engine
) -> None:
    token = signed_in(client, engine)
    form = {"csrf": token, "numbers": "0888000001", "text": "Hello", "expect": "1:1"}
    longer = {**form, "numbers": "0888000001 0888000002"}
    again = client.post("/compose/send", data=longer)
    assert again.status_code == 409 and "check them again" in again.text
    assert "2 recipients × 1 segments = 2 SMS" in again.text
    assert messages(engine) == []
    # Without a confirmation at all, the same.
    assert client.post("/compose/send", data={**form, "expect": ""}).status_code == 409
    assert messages(engine) == []


def test_bad_input_is_told_beside_its_field(client: TestClient, engine: Engine) -> None:
    token = signed_in(client, engine)
    empty = client.post("/compose/confirm", data={"csrf": token, "text": " "})
    assert empty.status_code == 422
    assert "Choose at least one group, contact or number." in empty.text
    assert "Write the message." in empty.text and 'aria-invalid="true"' in empty.text
    late = client.post(
        "/compose/confirm", data={"csrf": token, "numbers": "0888000001", "text": "Hi",
                                  "when": "вчера в 10"},
    )  # fmt: skip
    assert late.status_code == 422 and 'id="when-error"' in late.text
    assert "Refused: is in the past" in late.text
    unreadable = client.post(
        "/compose/confirm",
        data={"csrf": token, "numbers": "0888000001", "text": "Hi", "when": "някой ден"},
    )
    assert unreadable.status_code == 422 and "Could not read this time" in unreadable.text
    long = client.post(
        "/compose/send", data={"csrf": token, "numbers": "0888000001", "text": "я" * 1601}
    )
    assert long.status_code == 422 and 'id="text-error"' in long.text
    assert messages(engine) == []


def test_a_later_time_is_echoed_on_the_accounts_clock_in_the_viewers_language(
    client: TestClient, engine: Engine
) -> None:
    token = signed_in(client, engine)
    form = {"csrf": token, "numbers": "0888000001", "text": "Hi", "when": "2026-12-15 10:30"}
    form["when"] = (datetime.now(SOFIA) + timedelta(days=3)).strftime("%Y-%m-%d") + " 10:30"
    day = (datetime.now(SOFIA) + timedelta(days=3)).day
    bg = client.post("/compose/preview", data=form, headers=BG)
    assert "Изпраща се:" in bg.text and f"{day} " in bg.text and "10:30" in bg.text
    en = client.post("/compose/preview", data={**form, "when": "tomorrow at 9:15"})
    assert "Goes out:" in en.text and "9:15" in en.text
    confirmed = client.post("/compose/confirm", data=form)
    assert confirmed.status_code == 200
    sent = client.post("/compose/send", data={**form, "expect": "1:1"}, follow_redirects=False)
    assert sent.status_code == 303
    [message] = messages(engine)
    local = message.send_at.replace(tzinfo=message.send_at.tzinfo or UTC).astimezone(SOFIA)
    assert (local.day, local.hour, local.minute) == (day, 10, 30)


def test_sender_ids_come_from_the_accounts_list(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    token = signed_in(client, engine)
    free = client.get("/compose")
    assert '<input id="sender_id"' in free.text
    form = {"csrf": token, "numbers": "0888000001", "text": "Hi"}
    bad = client.post("/compose/confirm", data={**form, "sender_id": "a b c d e f g h i j k l"})
    assert bad.status_code == 422 and 'id="sender_id-error"' in bad.text
    changed = client.patch(
        "/api/v1/accounts/default",
        json={"sender_ids": ["Clinic", "ClinicInfo"], "default_sender_id": "Clinic"},
        headers=provider,
    )
    assert changed.status_code == 200, changed.text
    listed = client.get("/compose")
    assert '<select id="sender_id"' in listed.text and ">ClinicInfo</option>" in listed.text
    assert "The default (Clinic)" in listed.text
    other = client.post("/compose/confirm", data={"csrf": token, "numbers": "0888000001",
                                                  "text": "Hi", "sender_id": "Bank"})  # fmt: skip
    assert other.status_code == 422 and "not one of the account&#39;s sender IDs" in other.text
    form = {"csrf": token, "numbers": "0888000001", "text": "Hi", "sender_id": "ClinicInfo"}
    sent = client.post("/compose/send", data={**form, "expect": "1:1"}, follow_redirects=False)
    assert sent.status_code == 303
    assert [m.sender_id for m in messages(engine)] == ["ClinicInfo"]


def test_a_test_goes_to_the_one_number_given(client: TestClient, engine: Engine) -> None:
    token = signed_in(client, engine)
    form = {"csrf": token, "numbers": "0888000001 0888000002", "text": "Проба",
            "test_phone": "0899 111 222"}  # fmt: skip
    tested = client.post("/compose/test", data=form)
    assert tested.status_code == 200, tested.text
    assert "A test message was sent to 0899 111 222." in tested.text
    assert 'name="numbers"' in tested.text and "0888000001 0888000002" in tested.text  # kept
    [message] = messages(engine)
    assert message.priority == "transactional"
    [only] = notices(engine, message.id or 0)
    assert only.phone == "+359899111222"
    # It goes out now (the test's settings have no quiet hours, and it is transactional).
    wait_for(
        lambda: notices(engine, message.id or 0)[0].status == "sent", what="the test to be sent"
    )
    refused = client.post("/compose/test", data={**form, "test_phone": "02 987 6543"})
    assert refused.status_code == 422 and "not a mobile number" in refused.text
    assert len(messages(engine)) == 1


def test_a_viewer_may_not_compose(client: TestClient, engine: Engine) -> None:
    token = signed_in(client, engine, role="viewer")
    assert client.get("/compose").status_code == 403
    form = {"csrf": token, "numbers": "0888000001", "text": "Hi", "expect": "1:1"}
    paths = ("/compose/send", "/compose/test", "/compose/confirm", "/compose/preview",
             "/compose/contacts", "/compose/search")  # fmt: skip
    for path in paths:
        assert client.post(path, data={**form, "test_phone": "0888000001"}).status_code == 403
    assert messages(engine) == []
    assert 'href="/compose"' not in client.get("/").text


def test_a_form_without_its_token_is_refused(client: TestClient, engine: Engine) -> None:
    signed_in(client, engine)
    form = {"numbers": "0888000001", "text": "Hi", "expect": "1:1"}
    assert client.post("/compose/send", data=form).status_code == 403
    assert client.post("/compose/send", data={**form, "csrf": "guess"}).status_code == 403
    assert messages(engine) == []


def test_another_accounts_group_or_contact_is_not_found(
    client: TestClient, engine: Engine, provider: dict[str, str]
) -> None:
    made = client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    assert made.status_code == 201
    bank = make_key(engine, "admin", "bank-b")
    theirs = contact(client, bank, "Чужд", "+359888000009")
    their_group = group(client, bank, "Клиенти", [theirs])
    token = signed_in(client, engine)
    base = {"csrf": token, "text": "Hi", "expect": "1:1"}
    for field, value in (("group", their_group), ("contact", theirs), ("group", "x")):
        for path in ("/compose/send", "/compose/preview"):
            answer = client.post(path, data={**base, field: str(value)})
            assert answer.status_code == 404, (path, field)
            assert "Чужд" not in answer.text and "Not found" in answer.text
    assert messages(engine) == []
    assert "Клиенти" not in client.get("/compose").text


def test_the_screen_speaks_bulgarian(client: TestClient, engine: Engine) -> None:
    token = signed_in(client, engine)
    page = client.get("/compose", headers=BG)
    assert '<html lang="bg">' in page.text and "Ново съобщение" in page.text
    assert "Получатели" in page.text and "Провери и потвърди" in page.text
    form = {"csrf": token, "numbers": "0888000001, 12345", "text": "Здравейте"}
    preview = client.post("/compose/preview", data=form, headers=BG)
    assert "Получатели: 1" in preview.text and "не е валиден телефонен номер" in preview.text
    confirmed = client.post("/compose/confirm", data={**form, "numbers": "0888000001"},
                            headers=BG)  # fmt: skip
    assert "Получатели: 1 × сегменти: 1 = 1 SMS" in confirmed.text


def test_the_preview_marks_the_characters_that_make_it_dear(
    client: TestClient, engine: Engine
) -> None:
    token = signed_in(client, engine)
    page = client.get("/compose")
    assert page.text.count('hx-trigger="input changed delay:300ms"') >= 3  # text, numbers, when
    assert 'id="preview" aria-live="polite"' in page.text
    typed = "Hello\u00a0„Ana“ 🙂"
    preview = client.post("/compose/preview", data={"csrf": token, "text": typed})
    assert '<mark class="lookalike">\u00a0„</mark>' in preview.text
    assert '<mark class="ucs2">🙂</mark>' in preview.text
    assert "(U+00A0) is sent as" in preview.text
    plain = client.post("/compose/preview", data={"csrf": token, "text": "Hello Ana"})
    assert "<mark" not in plain.text and 'data-segments="written">1<' in plain.text


def test_opted_out_recipients_are_counted_apart(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    ana = contact(client, admin, "Ана", "+359888000001")
    gone = contact(client, admin, "Борис", "+359888000002")
    assert client.patch(f"/api/v1/contacts/{gone}", json={"opted_out": True},
                        headers=admin).status_code == 200  # fmt: skip
    token = signed_in(client, engine)
    form = {"csrf": token, "group": str(group(client, admin, "Всички", [ana, gone])),
            "text": "Hi"}  # fmt: skip
    confirmed = client.post("/compose/confirm", data=form)
    assert "1 recipients × 1 segments = 1 SMS" in confirmed.text
    assert "1 more opted out and get nothing." in confirmed.text
    sent = client.post("/compose/send", data={**form, "expect": "2:1"}, follow_redirects=False)
    assert sent.status_code == 303
    [message] = messages(engine)
    # (Ana's may be on its way already: the test's settings have no quiet hours.)
    statuses = {n.phone: n.status for n in notices(engine, message.id or 0)}
    assert statuses["+359888000002"] == "suppressed"
    assert statuses["+359888000001"] in ("due", "sending", "sent")


def test_more_numbers_than_a_message_takes_are_refused(client: TestClient, engine: Engine) -> None:
    token = signed_in(client, engine)
    pasted = "\n".join(f"+3598881{n:05d}" for n in range(10_001))
    answer = client.post("/compose/confirm", data={"csrf": token, "numbers": pasted, "text": "Hi"})
    assert answer.status_code == 422 and "at most 10000" in answer.text.replace(",", "")
    assert messages(engine) == []


def test_quiet_hours_are_told_before_sending(database_url: str, engine: Engine) -> None:
    from reminders.process import build
    from reminders.settings import load_settings

    # Quiet from an hour ago to two hours from now on the account's clock: whatever the hour.
    now = datetime.now(SOFIA)
    quiet = f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=2):%H:%M}"
    settings = load_settings(database_url=database_url, quiet_hours=quiet)
    process = build(settings, engine, run_scheduler=False)
    with TestClient(process.app) as client:
        token = signed_in(client, engine)
        form = {"csrf": token, "numbers": "0888000001", "text": "Hi {{ name }}"}
        preview = client.post("/compose/preview", data=form)
        assert "Braces are sent as written: tick" in preview.text
        confirmed = client.post("/compose/confirm", data=form)
        assert "1 of them wait for the end of quiet hours." in confirmed.text
        sent = client.post("/compose/send", data={**form, "expect": "1:1"}, follow_redirects=False)
        assert sent.status_code == 303
    [message] = messages(engine)
    [held] = notices(engine, message.id or 0)
    assert held.text == "Hi {{ name }}" and held.status == "scheduled"
    assert held.send_at > message.send_at and held.status_reason


def test_a_template_is_costed_for_each_recipient_and_sent_filled_in(
    client: TestClient, engine: Engine, writer: dict[str, str]
) -> None:
    token = signed_in(client, engine)
    short = contact(client, writer, "Ана", "0888 500 001")
    long = contact(client, writer, "Александра-Мария Петрова-Иванова", "0888 500 002")
    club = group(client, writer, "Клуб", [short, long])
    text = "Здравейте, {{ name }}! Картата ви е готова, вземете я от офиса до петък."
    form = {"csrf": token, "group": str(club), "text": text, "template": "on"}
    preview = client.post("/compose/preview", data=form, headers={"Accept-Language": "en"})
    assert preview.status_code == 200
    # 62 characters for Ана, 91 for the long name: 1 and 2 UCS-2 segments (70 a segment).
    assert "one SMS is 1 to 2 segments as written" in preview.text
    assert "Здравейте, Ана! Картата" in preview.text  # the first recipient, by phone
    confirmed = client.post("/compose/confirm", data=form)
    assert confirmed.status_code == 200, confirmed.text
    expect = re.search(r'name="expect" value="([^"]+)"', confirmed.text)
    assert expect is not None and expect.group(1) == "2:2"  # two recipients, the longest: 2
    sent = client.post("/compose/send", data={**form, "expect": "2:2"}, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    [message] = messages(engine)
    made = notices(engine, message.id or 0)
    assert [n.is_template for n in made] == [True, True] and made[0].text == text
    # A name a message cannot fill in is told beside the text, before anything is made.
    bad = client.post(
        "/compose/preview",
        data={**form, "text": "{{ title }} утре"},
        headers={"Accept-Language": "en"},
    )
    assert "The template cannot be filled in" in bad.text and "Unknown names: title." in bad.text
    refused = client.post("/compose/confirm", data={**form, "text": "{{ title }} утре"})
    assert refused.status_code == 422 and len(messages(engine)) == 1
