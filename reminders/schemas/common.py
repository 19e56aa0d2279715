"""The field types and bases every resource's shapes share; unknown fields are refused."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from reminders.sender_ids import validate_sender_id

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Ids are INTEGER columns: PostgreSQL refuses a larger value in a query with an error, not a miss.
MAX_ID = 2**31 - 1


def as_id(text: str) -> int | None:
    """``text`` as one of our ids, or None: a gateway echoing back a number past the ids'
    range names nothing of ours (and PostgreSQL would refuse to even compare it)."""
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_ID else None


def _no_control_chars(value: str) -> str:
    # PostgreSQL refuses NUL in text, and no name or SMS needs control characters.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Sofia") from None
    return value


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _sender_id(value: str) -> str:
    return validate_sender_id(value)


# Free JSON kept on a contact (and a template preview's sample): enough for what templates use
# (a doctor, an account number, a few nested details), never a store for documents.
JSON_MAX_BYTES = 8192
JSON_MAX_DEPTH = 5  # {"a": {"b": [1]}} is 3 deep
JSON_MAX_KEYS = 100  # counted at every level


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    keys, depth = 0, 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            depth = max(depth, level)
            if depth > JSON_MAX_DEPTH:
                raise ValueError(f"may nest at most {JSON_MAX_DEPTH} levels deep")
            children = list(item.values()) if isinstance(item, dict) else item
            keys += len(item) if isinstance(item, dict) else 0
            pending.extend((child, level + 1) for child in children)
    if keys > JSON_MAX_KEYS:
        raise ValueError(f"may hold at most {JSON_MAX_KEYS} keys, not {keys}")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > JSON_MAX_BYTES:
        raise ValueError(f"may take at most {JSON_MAX_BYTES} bytes as JSON, not {size}")
    return value


# No request needs JSON nested deeper (api.limits refuses such a body before parsing it), and
# pydantic cannot serialise much past 250 levels.
MAX_JSON_DEPTH = 32


def shown_json(value: Any, depth: int = 1) -> Any:
    """``value`` as a response can carry it: containers nested past ``MAX_JSON_DEPTH`` given as
    their JSON text.

    Only a row stored before attributes had limits can be that deep (a 300-level one answered
    every read that held it with a 500); it is shown, not refused, and a PATCH can replace it.
    """
    if not isinstance(value, dict | list):
        return value
    if depth > MAX_JSON_DEPTH:
        try:
            return json.dumps(value, ensure_ascii=False)
        except (RecursionError, ValueError):
            return "…"
    if isinstance(value, dict):
        return {key: shown_json(child, depth + 1) for key, child in value.items()}
    return [shown_json(child, depth + 1) for child in value]


Text = Annotated[str, AfterValidator(_no_control_chars)]
SmallJson = Annotated[dict[str, Any], AfterValidator(_small_json)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_control_chars)]
Phone = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_no_control_chars)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_iana_zone)]
Language = Literal["bg", "en"]
ExternalId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_control_chars)]
SenderId = Annotated[str, AfterValidator(_sender_id)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# A date as people write it (ISO 8601 or words), read by reminders.dates in the right zone.
WhenText = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_control_chars)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
