"""The gateway numbers an account owns: an SMS sent to one of them is that account's.

A provider with several customers often gives each its own number (or short code) on the
gateway; then the number an SMS was sent to says whose it is, whoever last texted the phone.
Numbers are stored in international form (``+359888000111``) or as a short code (``1851``)
and compared by their digits, since gateways write ``to`` as they please: Kannel's %P may come
as ``359888000111``, ``00359888000111`` or, from a national SMSC, ``0888000111``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from sqlmodel import Session, col, select

from reminders.errors import Conflict
from reminders.models import Account

_SEPARATORS = re.compile(r"[\s\-().]")
_NUMBER = re.compile(r"\+?\d{3,15}")
RULE = "3 to 15 digits: a number in international form (+359888000111) or a short code (1851)"


def gateway_number(text: str) -> str:
    """``text`` as stored: separators dropped, ``00`` read as ``+``. A national number
    (``0888…``) is refused: which country it is in would be a guess."""
    number = _SEPARATORS.sub("", text)
    if number.startswith("00"):
        number = "+" + number[2:]
    if not _NUMBER.fullmatch(number):
        raise ValueError(RULE)
    if number.startswith("0"):
        raise ValueError("write it in international form (+359…), not as dialled at home")
    return number


def _digits(number: str) -> str:
    return number.removeprefix("+")


def incoming_key(to: str, region: str) -> str | None:
    """The digits of the number a gateway says an SMS was sent to, a national form read in
    ``region``; None when it is no number."""
    number = _SEPARATORS.sub("", to)
    if number.startswith("00"):
        number = "+" + number[2:]
    if not _NUMBER.fullmatch(number):
        return None
    if number.startswith("0"):
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            return None
        return _digits(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return _digits(number)


def owner_of_number(session: Session, to: str | None, region: str) -> int | None:
    """The account that owns the gateway number ``to``, if one does.

    Few accounts list numbers, and this runs once an inbound SMS: they are read whole.
    """
    key = incoming_key(to, region) if to else None
    if key is None:
        return None
    for account_id, numbers in session.exec(select(Account.id, Account.inbound_numbers)):
        if any(_digits(n) == key for n in numbers or ()):
            return account_id
    return None


def check_numbers_free(session: Session, numbers: Iterable[str], own_id: int | None) -> None:
    """Refuse a number another account owns: an SMS to it could belong to either."""
    wanted = {_digits(n): n for n in numbers}
    if not wanted:
        return
    query = select(Account.slug, Account.inbound_numbers).where(col(Account.id) != (own_id or 0))
    for slug, taken in session.exec(query):
        clash = sorted(wanted[_digits(n)] for n in taken or () if _digits(n) in wanted)
        if clash:
            raise Conflict(
                f"{clash[0]} is the account {slug!r}'s: a number belongs to one account",
                field="inbound_numbers",
            )
