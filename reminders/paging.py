"""Keyset pagination: an opaque cursor that carries the last id of the previous page."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlmodel import Session, col
from sqlmodel.sql.expression import SelectOfScalar

from reminders.errors import InvalidField
from reminders.schemas.common import MAX_ID

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        kind, _, value = text.partition(":")
        last_id = int(value)
        if kind != "id" or not 0 <= last_id <= MAX_ID:
            raise ValueError
        return last_id
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidField("not a cursor this API gave out", field="cursor") from None


def page(
    session: Session, query: SelectOfScalar[T], id_column: Any, *, limit: int, cursor: str | None
) -> tuple[Sequence[T], str | None]:
    """Run ``query`` by ``id_column`` from the cursor on; return the rows and the next cursor."""
    if cursor:
        query = query.where(col(id_column) > decode_cursor(cursor))
    rows = session.exec(query.order_by(col(id_column)).limit(limit + 1)).all()
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        return rows, encode_cursor(getattr(last, id_column.key))
    return rows, None
