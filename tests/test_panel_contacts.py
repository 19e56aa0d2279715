"""The control panel's contacts screen over HTTP: search, a contact's page, opting out and back
in, and the CSV import, for the signed-in account alone and by role."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders.models import Contact
from tests.test_panel import add_user, csrf, sign_in

Headers = dict[str, str]


def add(client: TestClient, headers: Headers, **fields: Any) -> dict[str, Any]:
    body = {"name": "Иван Петров", "phone": "0888 123 456", **fields}
    response = client.post("/api/v1/contacts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def message_to(client: TestClient, headers: Headers, contact_id: int) -> None:
    send_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).isoformat()
    body = {"to": {"contacts": [contact_id]}, "text": "Утре", "send_at": send_at}
    assert client.post("/api/v1/messages", json=body, headers=headers).status_code == 201


def notices(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT phone, status FROM notices ORDER BY id")).all()
    return [(phone, status) for phone, status in rows]


def notice_jobs(engine: Engine) -> int:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM apscheduler_jobs WHERE id LIKE 'notice:%'"))
        return len(found.all())


def stored(engine: Engine, contact_id: int) -> Contact:
    with Session(engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact


def as_role(client: TestClient, engine: Engine, role: str, email: str = "ana@clinic.bg") -> str:
    add_user(engine, email, role=role)
    assert sign_in(client, email).status_code == 303
    return csrf(client.get("/contacts").text)


def form(contact: dict[str, Any], **changes: str) -> dict[str, str]:
    values = {
        "name": contact["name"],
        "phone": contact["phone"],
        "email": contact.get("email") or "",
        "timezone": contact.get("timezone") or "",
        "language": contact["language"],
        "external_id": contact.get("external_id") or "",
        "attributes": "",
    }
    return {**values, **changes}


def test_search_finds_names_in_any_case_and_phones_and_pages(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    add(client, writer, name="Мария Иванова", phone="0888 500 001")
    add(client, writer, name="John Smith", phone="0888 500 002")
    for n in range(50):
        add(client, writer, name=f"Пациент {n:02d}", phone=f"0877 600 {n:03d}")
    as_role(client, engine, "viewer")
    found = client.get("/contacts", params={"q": "МАРИЯ"})
    assert found.status_code == 200
    assert "Мария Иванова" in found.text and "John Smith" not in found.text
    by_phone = client.get("/contacts", params={"q": "0888 500 002"})
    assert "John Smith" in by_phone.text and "Мария Иванова" not in by_phone.text
    # htmx asks for the rows alone, as the search box is typed in.
    rows = client.get("/contacts", params={"q": "мария"}, headers={"HX-Request": "true"})
    assert "Мария Иванова" in rows.text and "<html" not in rows.text
    # 52 contacts: a page of 50 and a link to the rest, each contact once.
    first = client.get("/contacts")
    names = re.findall(r'<a href="/contacts/\d+">([^<]+)</a>', first.text)
    link = re.search(r'href="(/contacts\?q=&amp;cursor=[^"]+)"', first.text)
    assert len(names) == 50 and link is not None
    second = client.get(link.group(1).replace("&amp;", "&"))
    rest = re.findall(r'<a href="/contacts/\d+">([^<]+)</a>', second.text)
    assert len(rest) == 2 and not set(rest) & set(names)
    none = client.get("/contacts", params={"q": "Никой"})
    assert "No contact matches" in none.text


def test_a_bad_search_is_a_422_in_words(client: TestClient, engine: Engine) -> None:
    as_role(client, engine, "viewer")
    long = client.get("/contacts", params={"q": "я" * 201})
    assert long.status_code == 422 and "at most 200 characters" in long.text
    cursor = client.get("/contacts", params={"cursor": "nonsense"})
    assert cursor.status_code == 422 and "not a cursor" in cursor.text


def test_an_operator_edits_a_contact_and_its_notices_follow(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    ivan = add(client, writer, phone="0888 400 001")
    message_to(client, writer, ivan["id"])
    token = as_role(client, engine, "operator")
    page = client.get(f"/contacts/{ivan['id']}")
    assert page.status_code == 200 and 'value="+359888400001"' in page.text
    changed = form(
        ivan,
        name="Иван Г. Петров",
        phone="0888 400 002",
        timezone="Europe/London",
        attributes='{"doctor": "д-р Петрова"}',
    )
    saved = client.post(f"/contacts/{ivan['id']}", data={**changed, "csrf": token})
    assert saved.status_code == 200, saved.text
    assert "1 pending messages now go to the new number" in saved.text
    contact = stored(engine, ivan["id"])
    assert (contact.name, contact.phone, contact.timezone) == (
        "Иван Г. Петров",
        "+359888400002",
        "Europe/London",
    )
    assert contact.attributes == {"doctor": "д-р Петрова"}
    assert notices(engine) == [("+359888400002", "scheduled")]


def test_bad_input_is_shown_beside_its_field_and_nothing_changes(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    ivan = add(client, writer, phone="0888 400 011", email="ivan@example.bg")
    token = as_role(client, engine, "operator")
    cases = [
        ({"phone": "123"}, "phone", "phone number"),
        ({"name": ""}, "name", "at least 1 character"),
        ({"timezone": "Europe/Nowhere"}, "timezone", "Europe/Nowhere"),
        ({"attributes": "{not json"}, "attributes", "is not valid JSON"),
        ({"attributes": "[1, 2]"}, "attributes", "must be a JSON object"),
        ({"language": "de"}, "language", "bg"),
    ]
    for changes, field, words in cases:
        refused = client.post(
            f"/contacts/{ivan['id']}", data={**form(ivan, **changes), "csrf": token}
        )
        assert refused.status_code == 422, (changes, refused.text)
        error = re.search(rf'id="{field}-error"[^>]*>([^<]+)<', refused.text)
        assert error is not None and words in error.group(1), (changes, refused.text)
        assert 'aria-invalid="true"' in refused.text
    contact = stored(engine, ivan["id"])
    assert (contact.phone, contact.name, contact.email) == (
        "+359888400011",
        "Иван Петров",
        "ivan@example.bg",
    )
    # An emptied optional field clears it.
    cleared = client.post(f"/contacts/{ivan['id']}", data={**form(ivan, email=""), "csrf": token})
    assert cleared.status_code == 200 and stored(engine, ivan["id"]).email is None


def test_opting_out_suppresses_pending_notices_and_opting_in_brings_none_back(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    ivan = add(client, writer, phone="0888 400 021")
    message_to(client, writer, ivan["id"])
    assert notice_jobs(engine) == 1
    token = as_role(client, engine, "operator")
    out = client.post(f"/contacts/{ivan['id']}/opt-out", data={"csrf": token})
    assert out.status_code == 200
    assert "1 pending messages will not be sent" in out.text
    assert stored(engine, ivan["id"]).opted_out is True
    assert notices(engine) == [("+359888400021", "suppressed")]
    assert notice_jobs(engine) == 0  # dropped after the commit
    back = client.post(f"/contacts/{ivan['id']}/opt-in", data={"csrf": token})
    assert back.status_code == 200 and "Opted back in" in back.text
    assert stored(engine, ivan["id"]).opted_out is False
    assert notices(engine) == [("+359888400021", "suppressed")]


def test_a_viewer_reads_but_every_change_is_refused(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    ivan = add(client, writer, phone="0888 400 031")
    token = as_role(client, engine, "viewer")
    page = client.get(f"/contacts/{ivan['id']}")
    assert page.status_code == 200 and "<fieldset disabled>" in page.text
    assert ">Save<" not in page.text and "Opt out" not in page.text
    attempts = [
        client.post(f"/contacts/{ivan['id']}", data={**form(ivan, name="X"), "csrf": token}),
        client.post(f"/contacts/{ivan['id']}/opt-out", data={"csrf": token}),
        client.post(f"/contacts/{ivan['id']}/opt-in", data={"csrf": token}),
        client.post(
            "/contacts/import",
            data={"csrf": token},
            files={"file": ("c.csv", "name,phone\nА,0888400032\n".encode(), "text/csv")},
        ),
        client.get("/contacts/import"),
    ]
    assert [r.status_code for r in attempts] == [403] * 5
    contact = stored(engine, ivan["id"])
    assert (contact.name, contact.opted_out) == ("Иван Петров", False)
    with Session(engine) as session:
        assert len(session.exec(select(Contact)).all()) == 1


def test_a_change_without_the_csrf_token_is_refused(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    ivan = add(client, writer, phone="0888 400 041")
    as_role(client, engine, "operator")
    assert client.post(f"/contacts/{ivan['id']}/opt-out").status_code == 403
    forged = client.post(f"/contacts/{ivan['id']}/opt-out", data={"csrf": "guess"})
    assert forged.status_code == 403
    assert stored(engine, ivan["id"]).opted_out is False


def test_another_accounts_contact_is_not_found(
    client: TestClient, engine: Engine, provider: Headers
) -> None:
    made = client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider)
    assert made.status_code == 201
    theirs = add(client, {**provider, "Reminders-Account": "bank-b"}, phone="0888 400 051")
    token = as_role(client, engine, "operator")
    assert client.get(f"/contacts/{theirs['id']}").status_code == 404
    changed = {**form(theirs, name="Чужд"), "csrf": token}
    assert client.post(f"/contacts/{theirs['id']}", data=changed).status_code == 404
    assert client.post(f"/contacts/{theirs['id']}/opt-out", data={"csrf": token}).status_code == 404
    assert "Иван Петров" not in client.get("/contacts").text
    contact = stored(engine, theirs["id"])
    assert (contact.name, contact.opted_out) == ("Иван Петров", False)
    for address in ("999999", "abc", "-1", "0", "99999999999", "١٢"):
        assert client.get(f"/contacts/{address}").status_code == 404, address
    assert client.post("/contacts/abc/opt-out", data={"csrf": token}).status_code == 404


CSV = (
    "Име;Телефон;Лекар\n"
    "Мария Иванова;0888 700 001;д-р Петрова\n"
    "Петър Петров;0888 700 002;\n"
    "Без номер;123;\n"
    "Иван Петров;0888 400 061;д-р Колев\n"
)


def test_an_import_adds_updates_and_offers_the_refused_rows(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    ivan = add(client, writer, phone="0888 400 061")
    token = as_role(client, engine, "operator")
    assert client.get("/contacts/import").status_code == 200
    done = client.post(
        "/contacts/import",
        data={"csrf": token},
        files={"file": ("patients.csv", CSV.encode(), "text/csv")},
    )
    assert done.status_code == 200, done.text
    assert "Added: 2" in done.text and "Updated: 1" in done.text and "Refused: 1" in done.text
    with Session(engine) as session:
        phones = {c.phone: c for c in session.exec(select(Contact)).all()}
    assert set(phones) == {"+359888700001", "+359888700002", "+359888400061"}
    assert phones["+359888700001"].attributes == {"лекар": "д-р Петрова"}
    assert stored(engine, ivan["id"]).attributes == {"лекар": "д-р Колев"}
    link = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)" download', done.text)
    assert link is not None
    refused = base64.b64decode(link.group(1)).decode()
    lines = refused.splitlines()
    assert lines[0] == "Име;Телефон;Лекар;reason"
    assert lines[1].startswith("Без номер;123;;phone:") and len(lines) == 2


def test_an_unreadable_file_is_a_422_beside_the_upload(client: TestClient, engine: Engine) -> None:
    token = as_role(client, engine, "operator")
    cases = [
        (b"email\nana@clinic.bg\n", "no name or phone column"),
        ("name,phone\nМария,0888\n".encode("cp1251"), "not UTF-8"),
        (b"", "Choose a CSV file"),
    ]
    for content, words in cases:
        refused = client.post(
            "/contacts/import",
            data={"csrf": token},
            files={"file": ("c.csv", content, "text/csv")},
        )
        assert refused.status_code == 422, refused.text
        error = re.search(r'id="file-error"[^>]*>([^<]+)<', refused.text)
        assert error is not None and words in error.group(1), refused.text
    with Session(engine) as session:
        assert session.exec(select(Contact)).all() == []


def test_the_contacts_screen_speaks_bulgarian(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    ivan = add(client, writer, phone="0888 400 071")
    token = as_role(client, engine, "operator")
    bg = {"Accept-Language": "bg"}
    listing = client.get("/contacts", headers=bg)
    assert "Търсене по име или телефон" in listing.text and "Search" not in listing.text
    page = client.get(f"/contacts/{ivan['id']}", headers=bg)
    assert "Отписване" in page.text and "Запазване" in page.text
    out = client.post(f"/contacts/{ivan['id']}/opt-out", data={"csrf": token}, headers=bg)
    assert "Отписан" in out.text
    empty = client.post("/contacts/import", data={"csrf": token}, headers=bg,
                        files={"file": ("c.csv", b"", "text/csv")})  # fmt: skip
    assert empty.status_code == 422 and "Изберете CSV файл" in empty.text


def test_a_refusal_is_told_in_the_viewers_language(
    client: TestClient, engine: Engine, writer: Headers
) -> None:
    ivan = add(client, writer, phone="0888 400 021")
    token = as_role(client, engine, "operator")
    bad = {**form(ivan, phone="0888 12", timezone="Europe/Nowhere"), "csrf": token}
    english = client.post(f"/contacts/{ivan['id']}", data=bad, headers={"Accept-Language": "en"})
    assert english.status_code == 422
    assert (
        "Europe/Nowhere” is not a time zone" in english.text
        or "is not a valid phone" in english.text
    )
    bulgarian = client.post(f"/contacts/{ivan['id']}", data=bad, headers={"Accept-Language": "bg"})
    assert bulgarian.status_code == 422
    assert "не е валиден телефонен номер" in bulgarian.text or "не е часова зона" in bulgarian.text
    assert "is not a valid phone number" not in bulgarian.text
