"""What a refused form says: the domain's and pydantic's errors as messages by field.

A form is checked by the API's own schemas and domain functions; their errors name fields by
the API's dotted paths (``phone``, ``steps.2.template``), which the templates put beside the
input of that name. An error that names no field of the form is shown above it (key ``""``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from reminders.errors import DomainError
from reminders.field_errors import field_errors
from reminders.schemas.common import MAX_ID


def messages_of(error: ValidationError | DomainError, model: Any = None) -> dict[str, str]:
    """The first message for each field of ``error`` (``model``: the schema that refused it)."""
    found: dict[str, str] = {}
    if isinstance(error, ValidationError):
        for item in field_errors(model, error.errors()):
            found.setdefault(item.field, item.message)
    else:
        found[error.field or ""] = error.message
    return found


def optional(value: str | None) -> str | None:
    """A text input left empty means "none"."""
    value = (value or "").strip()
    return value or None


def row_id(text: str) -> int:
    """An id from a page's address; 0 (found nowhere) for anything that is not one, so that a
    mistyped address is a page not found, not an error."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return 0
    value = int(text)
    return value if 0 < value <= MAX_ID else 0
