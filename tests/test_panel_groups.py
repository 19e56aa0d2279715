"""The groups screen: the list with sizes, a group's members, and the operators' changes."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reminders.models import Contact, Group, GroupMember
from reminders.panel.groups import contacts_for_numbers
from tests.conftest import DEFAULT_ACCOUNT, account_session, make_key
from tests.test_panel_compose import BG, contact, group, signed_in


def members(engine: Engine, group_id: int) -> list[str]:
    """The phones of a group's members."""
    with Session(engine) as session:
        query = (
            select(Contact.phone)
            .join(GroupMember, col(GroupMember.contact_id) == col(Contact.id))
            .where(GroupMember.group_id == group_id)
            .order_by(col(Contact.phone))
        )
        return list(session.exec(query).all())


def group_names(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(session.exec(select(Group.name)).all())


def contact_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(Contact.id)).all())


def test_numbers_become_contacts_once_and_known_ones_are_found(engine: Engine) -> None:
    with account_session(engine) as session:
        session.add(
            Contact(
                name="Ана", name_folded="ана", phone="+359888000001", account_id=DEFAULT_ACCOUNT
            )
        )
        session.commit()
        made = contacts_for_numbers(session, ["+359888000001", "+359888000002"], "BG")
        again = contacts_for_numbers(session, ["+359888000002"], "BG")
        session.commit()
        assert made.created == 1 and again.created == 0
        assert again.contact_ids == made.contact_ids[1:]
        new = session.get(Contact, made.contact_ids[1])
        assert new is not None and new.name == "+359888000002" and new.account_id == DEFAULT_ACCOUNT


def test_everyone_reads_the_list_with_member_counts(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    ana = contact(client, admin, "Ана", "+359888000001")
    boris = contact(client, admin, "Борис", "+359888000002")
    patients = group(client, admin, "Пациенти", [ana, boris])
    group(client, admin, "Празна", [])
    signed_in(client, engine, role="viewer")
    page = client.get("/groups")
    assert page.status_code == 200
    assert f'data-members="{patients}">2<' in page.text and "Празна" in page.text
    assert 'action="/groups"' not in page.text  # no form to create one: a viewer reads
    one = client.get(f"/groups/{patients}")
    assert one.status_code == 200 and "Members: 2" in one.text
    assert "+359888000002" in one.text and "/remove" not in one.text


def test_an_operator_creates_renames_and_deletes_a_group(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    ana = contact(client, admin, "Ана", "+359888000001")
    token = signed_in(client, engine)
    made = client.post("/groups", data={"csrf": token, "name": "Диабет"}, follow_redirects=False)
    assert made.status_code == 303
    group_id = int(made.headers["location"].rsplit("/", 1)[1])
    assert group_names(engine) == ["Диабет"]
    # The same name again, or none, is told beside the field.
    twice = client.post("/groups", data={"csrf": token, "name": "Диабет"})
    assert twice.status_code == 422 and "Another group already has this name." in twice.text
    empty = client.post("/groups", data={"csrf": token, "name": "  "})
    assert empty.status_code == 422 and 'id="name-error"' in empty.text
    assert group_names(engine) == ["Диабет"]
    renamed = client.post(f"/groups/{group_id}/rename", data={"csrf": token, "name": "Диабет 2"})
    assert renamed.status_code == 200 and "The group was renamed." in renamed.text
    assert group_names(engine) == ["Диабет 2"]
    client.post(f"/groups/{group_id}/members", data={"csrf": token, "contact": str(ana)})
    unsure = client.post(f"/groups/{group_id}/delete", data={"csrf": token})
    assert unsure.status_code == 422 and "Tick the box to delete the group." in unsure.text
    assert group_names(engine) == ["Диабет 2"]
    gone = client.post(
        f"/groups/{group_id}/delete", data={"csrf": token, "sure": "yes"}, follow_redirects=False
    )
    assert gone.status_code == 303 and gone.headers["location"] == "/groups"
    assert group_names(engine) == [] and contact_count(engine) == 1  # its contacts stay


def test_members_are_added_by_search_and_by_pasted_numbers_and_removed(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    ana = contact(client, admin, "Ана Петрова", "+359888000001")
    contact(client, admin, "Борис", "+359888000002")
    group_id = group(client, admin, "Пациенти", [])
    token = signed_in(client, engine)
    found = client.get(f"/groups/{group_id}/search", params={"q": "АНА"})
    assert f'value="{ana}"' in found.text and "Борис" not in found.text
    page = client.get(f"/groups/{group_id}", params={"q": "петров"})  # without JavaScript
    assert f'value="{ana}"' in page.text
    added = client.post(f"/groups/{group_id}/members", data={"csrf": token, "contact": str(ana)})
    assert added.status_code == 200 and "Added: 1." in added.text
    assert members(engine, group_id) == ["+359888000001"]
    nothing = client.post(f"/groups/{group_id}/members", data={"csrf": token})
    assert nothing.status_code == 422 and "Tick the contacts to add." in nothing.text
    # Pasted: a member already, a known contact, a stranger; a bad number stops them all.
    pasted = "0888 000 001\n0888000002, 0899 123 456"
    bad = client.post(
        f"/groups/{group_id}/numbers", data={"csrf": token, "numbers": pasted + "\n12345"}
    )
    assert bad.status_code == 422 and "12345: not a valid phone number" in bad.text
    assert "0899 123 456" in bad.text  # what was pasted is kept to be corrected
    assert members(engine, group_id) == ["+359888000001"] and contact_count(engine) == 2
    good = client.post(f"/groups/{group_id}/numbers", data={"csrf": token, "numbers": pasted})
    assert good.status_code == 200
    assert "Added: 2." in good.text and "Already members: 1." in good.text
    assert "New contacts made of unknown numbers: 1." in good.text
    assert members(engine, group_id) == ["+359888000001", "+359888000002", "+359899123456"]
    assert contact_count(engine) == 3
    removed = client.post(f"/groups/{group_id}/members/{ana}/remove", data={"csrf": token})
    assert removed.status_code == 200 and "removed from the group" in removed.text
    assert members(engine, group_id) == ["+359888000002", "+359899123456"]
    again = client.post(f"/groups/{group_id}/members/{ana}/remove", data={"csrf": token})
    assert again.status_code == 404


def test_members_page(client: TestClient, engine: Engine, admin: dict[str, str]) -> None:
    ids = [contact(client, admin, f"Човек {n:02d}", f"+3598880001{n:02d}") for n in range(55)]
    group_id = group(client, admin, "Много", ids)
    signed_in(client, engine, role="viewer")
    first = client.get(f"/groups/{group_id}")
    assert "Members: 55" in first.text and "Човек 49" in first.text and "Човек 50" not in first.text
    link = re.search(r'href="(/groups/\d+\?cursor=[^"]+)"', first.text)
    assert link is not None
    second = client.get(link.group(1).replace("&amp;", "&"))
    assert "Човек 50" in second.text and "Човек 54" in second.text and "Човек 49" not in second.text
    assert client.get(f"/groups/{group_id}?cursor=nonsense").status_code == 200


def test_a_viewer_may_not_change_groups(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    ana = contact(client, admin, "Ана", "+359888000001")
    group_id = group(client, admin, "Пациенти", [ana])
    token = signed_in(client, engine, role="viewer")
    refused = [
        client.post("/groups", data={"csrf": token, "name": "Нова"}),
        client.post(f"/groups/{group_id}/rename", data={"csrf": token, "name": "Друга"}),
        client.post(f"/groups/{group_id}/numbers", data={"csrf": token, "numbers": "0888000002"}),
        client.post(f"/groups/{group_id}/members", data={"csrf": token, "contact": str(ana)}),
        client.post(f"/groups/{group_id}/members/{ana}/remove", data={"csrf": token}),
        client.post(f"/groups/{group_id}/delete", data={"csrf": token, "sure": "yes"}),
    ]
    assert [r.status_code for r in refused] == [403] * 6
    assert client.get(f"/groups/{group_id}/search?q=ана").status_code == 403
    assert group_names(engine) == ["Пациенти"] and members(engine, group_id) == ["+359888000001"]


def test_a_form_without_its_token_is_refused(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    group_id = group(client, admin, "Пациенти", [])
    signed_in(client, engine)
    assert client.post("/groups", data={"name": "Нова"}).status_code == 403
    refused = client.post(f"/groups/{group_id}/delete", data={"csrf": "guess", "sure": "yes"})
    assert refused.status_code == 403
    assert group_names(engine) == ["Пациенти"]


def test_another_accounts_group_or_contact_is_not_found(
    client: TestClient, engine: Engine, admin: dict[str, str], provider: dict[str, str]
) -> None:
    assert client.post("/api/v1/accounts", json={"slug": "bank-b"}, headers=provider).is_success
    bank = make_key(engine, "admin", "bank-b")
    theirs = contact(client, bank, "Чужд", "+359888000009")
    their_group = group(client, bank, "Клиенти", [theirs])
    mine = group(client, admin, "Пациенти", [])
    token = signed_in(client, engine)
    assert client.get(f"/groups/{their_group}").status_code == 404
    assert client.get("/groups/abc").status_code == 404
    assert "Клиенти" not in client.get("/groups").text
    answers = [
        client.post(f"/groups/{their_group}/rename", data={"csrf": token, "name": "X"}),
        client.post(f"/groups/{their_group}/delete", data={"csrf": token, "sure": "yes"}),
        client.post(
            f"/groups/{their_group}/numbers", data={"csrf": token, "numbers": "0888000002"}
        ),
        client.post(f"/groups/{their_group}/members/{theirs}/remove", data={"csrf": token}),
        client.post(f"/groups/{mine}/members", data={"csrf": token, "contact": str(theirs)}),
        client.post(f"/groups/{mine}/members", data={"csrf": token, "contact": "x"}),
    ]
    assert [a.status_code for a in answers] == [404] * 6
    assert "+359888000009" not in client.get(f"/groups/{mine}?q=Чужд").text
    assert members(engine, mine) == [] and members(engine, their_group) == ["+359888000009"]
    assert "Клиенти" in group_names(engine)


def test_the_screen_speaks_bulgarian(
    client: TestClient, engine: Engine, admin: dict[str, str]
) -> None:
    group_id = group(client, admin, "Пациенти", [])
    token = signed_in(client, engine)
    page = client.get("/groups", headers=BG)
    assert "Нова група" in page.text and "Членове" in page.text
    one = client.get(f"/groups/{group_id}", headers=BG)
    assert "Добавяне на членове" in one.text and "Групата още няма членове." in one.text
    bad = client.post(
        f"/groups/{group_id}/numbers", data={"csrf": token, "numbers": "abc"}, headers=BG
    )
    assert bad.status_code == 422 and "abc: не е телефонен номер" in bad.text
