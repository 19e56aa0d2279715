"""Text as the database can keep it: PostgreSQL refuses NUL (U+0000) in text, even to compare.

The API refuses NUL at its door (422). What a gateway brings is kept instead, since refusing it
would lose a customer's SMS or a delivery report: NUL is dropped from numbers and ids, where it
means nothing, and marked with U+FFFD in text, as a character that could not be read.
"""

from __future__ import annotations

from typing import overload

NUL = "\x00"
UNREADABLE = "\ufffd"


@overload
def storable(value: str, *, mark: str = ...) -> str: ...
@overload
def storable(value: None, *, mark: str = ...) -> None: ...
def storable(value: str | None, *, mark: str = "") -> str | None:
    """``value`` without NUL, or with each one replaced by ``mark`` (say ``UNREADABLE``)."""
    return value.replace(NUL, mark) if value is not None else None
