"""Who a contact is (``contacts.matching``), decided in memory: no database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reminders.contacts.matching import ContactKeys, Known, Matcher, OnPhone
from reminders.errors import Conflict, InvalidField
from reminders.models import Contact

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def contact(contact_id: int, phone: str, **extra: Any) -> Contact:
    name = extra.pop("name", f"C{contact_id}")
    return Contact(id=contact_id, name=name, name_folded=name.casefold(), phone=phone, **extra)


def matcher(*stored: Contact) -> Matcher:
    known = Known(
        by_external_id={c.external_id: c for c in stored if c.external_id},
        by_id={c.id or 0: c for c in stored},
    )
    for c in sorted(stored, key=lambda c: c.id or 0):
        known.by_phone.setdefault(c.phone, []).append(c)
    return Matcher(known, "BG", NOW)


def test_keys_are_e164_and_skip_what_is_not_a_phone() -> None:
    keys = ContactKeys.of(
        [{"external_id": "a", "phone": "0888 123 456"}, {"phone": "123"}, {"name": "x"}], "BG"
    )
    assert keys == ContactKeys(["a"], ["+359888123456"])
    assert keys.locks() == ["contact:ext:a", "phone:+359888123456"]


def test_found_by_external_id_the_given_fields_change_it() -> None:
    ivan = contact(1, "+359888123456", external_id="c-1", language="bg")
    found, changes = matcher(ivan).match(
        {"external_id": "c-1", "phone": "0888 123 457", "language": "bg"}, on_phone=OnPhone.USE
    )
    assert found.stored is ivan
    assert changes == {"phone": "+359888123457"}  # what differs, in E.164


def test_an_unknown_external_id_is_a_new_contact_whoever_has_the_phone() -> None:
    m = matcher(contact(1, "+359888123456"))
    found, changes = m.match(
        {"external_id": "new", "phone": "0888123456", "name": "Иван"}, on_phone=OnPhone.USE
    )
    assert found.stored is None and changes == {}
    assert found.values["phone"] == "+359888123456"
    assert (found.values["language"], found.values["opted_out"]) == ("bg", False)
    assert found.values["name_folded"] == "иван"


def test_by_phone_a_bill_uses_the_first_made_and_an_import_refuses_to_guess() -> None:
    first, second = contact(3, "+359888123456"), contact(7, "+359888123456")
    m = matcher(second, first)
    given = {"phone": "0888123456", "name": "Other"}
    assert m.match(given, on_phone=OnPhone.USE) == (m.of(first), {})
    with pytest.raises(Conflict) as refused:
        m.match(given, on_phone=OnPhone.UPDATE)
    assert refused.value.field == "phone"


def test_by_phone_an_import_row_changes_the_one_contact() -> None:
    only = contact(3, "+359888123456", name="Ясен")
    found = matcher(only).find(
        {"phone": "+359888123456", "name": "Ясен", "email": "y@example.com"},
        on_phone=OnPhone.UPDATE,
    )
    assert found is not None
    assert found[0].stored is only and found[1] == {"email": "y@example.com"}
    assert matcher(only).find({"phone": "0888 123 457"}, on_phone=OnPhone.UPDATE) is None


def test_a_later_spec_finds_what_earlier_ones_made_and_moved() -> None:
    georgi = contact(5, "+359888000001", external_id="g")
    m = matcher(georgi)
    new, _ = m.match({"external_id": "n", "phone": "0888000002", "name": "N"}, on_phone=OnPhone.USE)
    m.accept(new, {})
    moved, changes = m.match({"external_id": "g", "phone": "0888000003"}, on_phone=OnPhone.USE)
    m.accept(moved, changes)
    assert m.match({"phone": "0888000002", "name": "x"}, on_phone=OnPhone.USE)[0] is new
    assert m.match({"phone": "0888000003", "name": "x"}, on_phone=OnPhone.USE)[0] is moved
    # Georgi's old number is nobody's now: a new contact.
    assert m.match({"phone": "0888000001", "name": "x"}, on_phone=OnPhone.USE)[0].stored is None


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"phone": "0888123456"}, "contact.name"),
        ({"external_id": "x", "name": "N"}, "contact.phone"),
        ({"phone": "02 987 6543", "name": "N"}, "contact.phone"),  # not a mobile
    ],
)
def test_a_new_contact_needs_a_name_and_a_mobile_phone(given: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidField) as refused:
        matcher().match(given, on_phone=OnPhone.USE, field_prefix="contact.")
    assert refused.value.field == field


def test_a_contact_id_must_be_known() -> None:
    m = matcher(contact(1, "+359888123456"))
    assert m.with_id(1, field="contact").contact_id == 1
    with pytest.raises(InvalidField, match="no contact with id 2"):
        m.with_id(2, field="contact")
