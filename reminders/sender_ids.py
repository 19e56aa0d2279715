"""Sender ID rules: what a handset may show as the sender of an SMS."""

from __future__ import annotations

import re

_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 ]{1,11}")
_NUMERIC = re.compile(r"\+?[0-9]+")

SENDER_ID_RULE = (
    "a sender ID is 1 to 11 Latin letters, digits or spaces with at least one letter, "
    "or a number of at most 16 characters (digits, optionally after a leading +)"
)


def validate_sender_id(value: str) -> str:
    """Return the sender ID unchanged if it follows the rule, else raise ``ValueError``."""
    if _NUMERIC.fullmatch(value) and len(value) <= 16:
        return value
    if _ALPHANUMERIC.fullmatch(value) and any(c.isalpha() for c in value) and value.strip():
        return value
    raise ValueError(SENDER_ID_RULE)
