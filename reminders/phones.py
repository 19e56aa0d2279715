"""Phone numbers: parsed with ``phonenumbers`` in the default region, kept in E.164."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType

from reminders.errors import InvalidField

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalize_mobile(raw: str, region: str, *, field: str = "phone") -> str:
    """Return ``raw`` as an E.164 mobile number, or raise ``InvalidField`` naming ``field``.

    ``00`` is the international prefix across Europe; phonenumbers reads it only when the region
    dials out with ``00``, so it is turned into ``+`` first to accept it from any region.
    """
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidField(f"{raw!r} is not a phone number", field=field) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidField(f"{raw!r} is not a valid phone number", field=field)
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidField(f"{raw!r} is not a mobile number, so it cannot receive SMS", field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
