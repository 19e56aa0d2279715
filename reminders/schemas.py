"""Shapes of the API's requests and responses. Unknown fields are refused everywhere."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from reminders.models import Notice, NoticeKind, NoticeStatus, Priority, Scope
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


class ContactCreate(Input):
    name: Name
    phone: Phone
    email: Email | None = None
    timezone: TimeZoneName | None = None
    language: Language = "bg"
    external_id: ExternalId | None = None
    opted_out: bool = False
    attributes: SmallJson = Field(default_factory=dict)


class ContactUpdate(Input):
    name: Name | None = None
    phone: Phone | None = None
    email: Email | None = None
    timezone: TimeZoneName | None = None
    language: Language | None = None
    external_id: ExternalId | None = None
    opted_out: bool | None = None
    attributes: SmallJson | None = None


class ContactOut(BaseModel):
    id: int
    name: str
    phone: str
    email: str | None
    timezone: str | None
    language: str
    external_id: str | None
    opted_out: bool
    attributes: Annotated[dict[str, Any], BeforeValidator(shown_json)]
    created_at: datetime
    updated_at: datetime


class NoticesFollowedOut(BaseModel):
    moved: int = Field(description="Pending notices that now go to the contact's new phone.")
    cancelled: int = Field(
        description="Pending notices the new phone already had (from the same message or "
        "reminder step): cancelled, so that it gets each once."
    )
    suppressed: int = Field(description="Pending notices suppressed because the contact opted out.")


class ContactPatched(ContactOut):
    notices: NoticesFollowedOut = Field(description="What the change did to pending notices.")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class GroupCreate(Input):
    name: Name
    description: (
        Annotated[str, Field(max_length=2000), AfterValidator(_no_control_chars)] | None
    ) = None


class GroupUpdate(Input):
    name: Name | None = None
    description: (
        Annotated[str, Field(max_length=2000), AfterValidator(_no_control_chars)] | None
    ) = None


class GroupOut(BaseModel):
    id: int
    name: str
    description: str | None
    member_count: int
    created_at: datetime
    updated_at: datetime


class MembersAdd(Input):
    contact_ids: list[Id] = Field(min_length=1, max_length=10_000)


class MembersAdded(BaseModel):
    added: int = Field(description="Contacts that were not members before.")
    already_members: int
    member_count: int


class Recipients(Input):
    phones: list[Phone] = Field(default_factory=list, max_length=10_000)
    contacts: list[Id] = Field(default_factory=list, max_length=10_000)
    groups: list[Id] = Field(default_factory=list, max_length=1_000)

    @model_validator(mode="after")
    def _not_empty(self) -> Recipients:
        if not (self.phones or self.contacts or self.groups):
            raise ValueError("name at least one recipient in phones, contacts or groups")
        return self


class MessageCreate(Input):
    to: Recipients
    text: Annotated[str, Field(min_length=1, max_length=1600), AfterValidator(_no_control_chars)]
    send_at: WhenText | None = Field(
        default=None,
        description="ISO 8601, or words in English or Bulgarian ('tomorrow 10:00', 'утре в 10'),"
        " read in `timezone`; absent means now.",
    )
    timezone: TimeZoneName | None = Field(
        default=None,
        description="Zone send_at is read in; default the recipients' own zone when they share"
        " one, else REMINDERS_TIMEZONE.",
    )
    sender_id: SenderId | None = None
    transliterate: bool | None = Field(
        default=None,
        description="Write Bulgarian Cyrillic in Latin letters; default REMINDERS_TRANSLITERATE.",
    )
    priority: Priority = Field(
        default=Priority.bulk,
        description="transactional: sent as asked, quiet hours or not (alerts, payment "
        "failures); bulk: held until quiet hours end on the recipient's clock.",
    )


class AttemptOut(BaseModel):
    id: int
    provider: str
    provider_message_id: str | None
    gateway_reference: str | None = Field(
        description="The gateway's or the operator's own id for the message, once reported."
    )
    status: str
    error_code: str | None
    error: str | None
    segments: int | None
    encoding: str | None
    text: str | None = Field(
        description="The text handed to the gateway (null if it never got that far)."
    )
    submitted_at: datetime
    delivered_at: datetime | None


class NoticeOut(BaseModel):
    id: int
    kind: NoticeKind
    status: NoticeStatus
    status_reason: str | None
    message_id: int | None
    contact_id: int | None
    anchor_id: int | None
    step: int | None
    phone: str
    text: str | None = Field(
        description="What the recipient gets: the text last handed to the gateway (rendered, "
        "transliterated if asked, look-alikes replaced); until then the message as written, "
        "or null for a policy step, whose template renders when it fires."
    )
    template: str | None = Field(
        description="For a policy step, the Jinja2 template it renders; null for a message."
    )
    sender_id: str | None
    send_at: datetime
    priority: Priority
    transliterate: bool
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _text_or_template(cls, data: Any) -> Any:
        # The notices table keeps a step's template in ``text``, to render when it fires.
        if not isinstance(data, Notice):
            return data
        values = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        values["template"] = data.text if data.is_template else None
        values["text"] = data.sent_text or (None if data.is_template else data.text)
        return values


class NoticeDetail(NoticeOut):
    attempts: list[AttemptOut]


class MessageOut(BaseModel):
    id: int
    text: str
    sender_id: str | None
    send_at: datetime
    priority: Priority
    created_at: datetime
    recipients: int = Field(description="Distinct phone numbers the message goes to.")
    notices: list[NoticeOut]


class KeyCreate(Input):
    # api_keys.name is VARCHAR(100); PostgreSQL refuses a longer name with an error.
    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_control_chars)]
    scope: Scope = Scope.read


class KeyOut(BaseModel):
    id: int
    name: str
    scope: Scope
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The bearer token; shown only this once.")
