"""Contacts: the people reminders go to.

- ``matching``: who a contact is. The rules every writer of contacts follows (a phone in E.164,
  found by ``external_id`` and then by phone, what a found one takes from the spec, what a new
  one needs), decided in memory for one spec or a batch.
- ``writing``: the one statement that creates contacts, and ``apply_changes``, the one way a
  stored contact changes (its pending notices follow).
- ``crud``: one contact at a time, as ``/contacts`` shows them.
"""

from reminders.contacts.crud import (
    ContactEdited,
    create_contact,
    delete_contact,
    edit_contact,
    find_by_external_id,
    get_contact,
    list_contacts,
)
from reminders.contacts.matching import ContactKeys, Found, Known, Matcher, OnPhone, new_values
from reminders.contacts.writing import NoticesFollowed, apply_changes, write_contacts

__all__ = [
    "ContactEdited",
    "ContactKeys",
    "Found",
    "Known",
    "Matcher",
    "NoticesFollowed",
    "OnPhone",
    "apply_changes",
    "create_contact",
    "delete_contact",
    "edit_contact",
    "find_by_external_id",
    "get_contact",
    "list_contacts",
    "new_values",
    "write_contacts",
]
