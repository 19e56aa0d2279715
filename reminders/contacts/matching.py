"""Who a contact is: the one set of rules every writer of contacts follows.

A bill's inline customer (one, or ten thousand in a batch), a CSV import row, POST /contacts and
an SMS from an unknown number all decide here:

- A phone is kept in E.164, read in the default region (``phones.normalize_mobile``).
- A contact is found by its ``external_id``; a spec without one, by its phone. A spec whose
  ``external_id`` is unknown is a new contact, whoever else has its phone.
- Found by ``external_id``, the fields the spec gives change the contact.
- Found by phone alone, ``OnPhone`` says what the caller does with it: a bill's customer is used
  as it is (the contact made first, when several share the number), an import row changes it
  (and is refused when several share the number: it cannot say which).
- A new contact needs a name and a phone; the rest defaults (language ``bg``, not opted out).

Everything is decided in memory, against ``Known``: the stored contacts the specs may be,
fetched beforehand in a few queries, after their ``ContactKeys`` were locked (``keylocks``), so
that two writers of the same new contact make one. A ``Matcher`` remembers the contacts of the
specs accepted so far, so that a later spec of a batch finds an earlier one's new contact.
``writing.write_contacts`` then writes what was decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from sqlmodel import Session, col, select

from reminders.db import in_chunks
from reminders.errors import Conflict, InvalidField
from reminders.keylocks import contact_key, phone_key
from reminders.models import Contact
from reminders.phones import normalize_mobile

# "given", below: the fields a spec sets on a contact, none of them null. A new contact has
# these where it was given none.
_NEW_DEFAULTS: dict[str, Any] = {
    "email": None,
    "timezone": None,
    "language": "bg",
    "external_id": None,
    "opted_out": False,
}


class OnPhone(Enum):
    """What a spec found by its phone alone does to the contact."""

    USE = "use"  # a bill's customer: the contact as it is, the first made if several
    UPDATE = "update"  # an import row: its fields change the one contact with that number


def new_values(given: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Every column of a new contact: ``given`` (name and phone checked there already) and the
    defaults."""
    values = {**_NEW_DEFAULTS, **given, "attributes": dict(given.get("attributes") or {})}
    values["name_folded"] = values["name"].casefold()
    values["created_at"] = values["updated_at"] = now
    return values


@dataclass(frozen=True)
class ContactKeys:
    """What specs are looked up and locked by: their external ids, their phones in E.164."""

    external_ids: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, specs: Iterable[Mapping[str, Any]], region: str) -> ContactKeys:
        external_ids, phones = [], []
        for spec in specs:
            if spec.get("external_id"):
                external_ids.append(spec["external_id"])
            if spec.get("phone") is not None:
                try:
                    phones.append(normalize_mobile(spec["phone"], region))
                except InvalidField:
                    pass  # refused with its spec
        return cls(external_ids, phones)

    def locks(self) -> list[str]:
        """The ``keylocks`` keys to hold before looking these up."""
        return [*map(contact_key, self.external_ids), *map(phone_key, self.phones)]


@dataclass
class Known:
    """The stored contacts that specs may be, fetched beforehand in a few queries."""

    by_external_id: dict[str, Contact] = field(default_factory=dict)
    by_phone: dict[str, list[Contact]] = field(default_factory=dict)  # the first made first
    by_id: dict[int, Contact] = field(default_factory=dict)

    @classmethod
    def fetch(cls, session: Session, keys: ContactKeys, ids: Iterable[int] = ()) -> Known:
        found = cls()
        for chunk in in_chunks(sorted(set(keys.external_ids))):
            for contact in session.exec(select(Contact).where(col(Contact.external_id).in_(chunk))):
                found.by_external_id[contact.external_id or ""] = contact
        for chunk in in_chunks(sorted(set(keys.phones))):
            query = select(Contact).where(col(Contact.phone).in_(chunk)).order_by(col(Contact.id))
            for contact in session.exec(query):
                found.by_phone.setdefault(contact.phone, []).append(contact)
        for id_chunk in in_chunks(sorted(set(ids))):
            for contact in session.exec(select(Contact).where(col(Contact.id).in_(id_chunk))):
                found.by_id[contact.id or 0] = contact
        return found


@dataclass(eq=False)
class Found:
    """A spec's contact: a stored one and the changes specs bring to it, or a new one
    (``values`` then holds every column, and ``id`` is known once it is written)."""

    stored: Contact | None
    values: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def get(self, name: str) -> Any:
        if name in self.values or self.stored is None:
            return self.values.get(name)
        return getattr(self.stored, name)

    @property
    def contact_id(self) -> int | None:
        return self.stored.id if self.stored is not None else self.id


@dataclass
class Matcher:
    """Finds the contact of each spec by the rules above, remembering the accepted ones."""

    known: Known
    region: str
    now: datetime
    by_id: dict[int, Found] = field(default_factory=dict)
    by_external_id: dict[str, Found] = field(default_factory=dict)
    by_phone: dict[str, list[Found]] = field(default_factory=dict)  # new, or moved to a phone

    def of(self, contact: Contact) -> Found:
        """The one ``Found`` of a stored contact, so that the changes of specs add up."""
        assert contact.id is not None
        if contact.id not in self.by_id:
            self.by_id[contact.id] = Found(contact)
        return self.by_id[contact.id]

    def with_id(self, contact_id: int, *, field: str) -> Found:
        contact = self.known.by_id.get(contact_id)
        if contact is None:
            raise InvalidField(f"no contact with id {contact_id}", field=field)
        return self.of(contact)

    def match(
        self, given: Mapping[str, Any], *, on_phone: OnPhone, field_prefix: str = ""
    ) -> tuple[Found, dict[str, Any]]:
        """The spec's contact, found or new, and what the spec changes on a found one."""
        given = self.normalised(given, field_prefix)
        return self._find(given, on_phone) or (self._new(given, field_prefix), {})

    def find(
        self, given: Mapping[str, Any], *, on_phone: OnPhone, field_prefix: str = ""
    ) -> tuple[Found, dict[str, Any]] | None:
        """``match`` without making a new one: None when the spec is nobody known."""
        return self._find(self.normalised(given, field_prefix), on_phone)

    def new(self, given: Mapping[str, Any], *, field_prefix: str = "") -> Found:
        return self._new(self.normalised(given, field_prefix), field_prefix)

    def normalised(self, given: Mapping[str, Any], field_prefix: str = "") -> dict[str, Any]:
        out = dict(given)
        if out.get("phone") is not None:
            out["phone"] = normalize_mobile(out["phone"], self.region, field=f"{field_prefix}phone")
        return out

    def accept(self, found: Found, changes: Mapping[str, Any]) -> None:
        """The spec is kept: its changes count, and a later spec finds its contact."""
        found.values.update(changes)
        if found.stored is None:
            found.values["name_folded"] = found.values["name"].casefold()
        if found.stored is None or "phone" in changes:
            self.by_phone.setdefault(found.get("phone"), []).append(found)
        if found.get("external_id"):
            self.by_external_id[found.get("external_id")] = found

    def _find(
        self, given: dict[str, Any], on_phone: OnPhone
    ) -> tuple[Found, dict[str, Any]] | None:
        external_id = given.get("external_id")
        if external_id:
            found = self.by_external_id.get(external_id)
            stored = self.known.by_external_id.get(external_id)
            if found is None and stored is not None:
                found = self.of(stored)
            if found is None:
                return None
            return found, {k: v for k, v in given.items() if found.get(k) != v}
        if given.get("phone") is None:
            return None
        phone = given["phone"]
        stored_ones = [self.of(c) for c in self.known.by_phone.get(phone, [])]
        # Those that have the number now, after the changes of earlier specs: stored ones
        # first made first, then new ones in the order they came.
        having = list(dict.fromkeys(f for f in (*stored_ones, *self.by_phone.get(phone, []))))
        having = [f for f in having if f.get("phone") == phone]
        having.sort(key=lambda f: (0, f.stored.id) if f.stored is not None else (1, 0))
        if not having:
            return None
        if on_phone is OnPhone.USE:
            return having[0], {}
        if len(having) > 1:  # only an import row updates by phone
            raise Conflict(
                f"{len(having)} contacts have this number; add an external_id column to say which",
                field="phone",
            )
        return having[0], {k: v for k, v in given.items() if having[0].get(k) != v}

    def _new(self, given: dict[str, Any], field_prefix: str) -> Found:
        # Only a bill's inline customer can lack them: the other callers' forms require both.
        for required in ("phone", "name"):
            if given.get(required) is None:
                raise InvalidField(
                    "is required for a new customer", field=f"{field_prefix}{required}"
                )
        return Found(None, new_values(given, self.now))
