"""The shapes of bills in the API: what a billing system sends, what it is answered.

The form of each field is checked here (a decimal string, a three-letter code); what a row
means against the database and its currency is ``rules``'.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from reminders.schemas.common import (
    Email,
    ExternalId,
    Id,
    Input,
    Language,
    Name,
    Phone,
    TimeZoneName,
    _no_control_chars,
)
from reminders.schemas.notices import NoticeOut

_AMOUNT = re.compile(r"\d{1,12}(\.\d+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


def _amount(value: str) -> str:
    if not _AMOUNT.fullmatch(value):
        raise ValueError("write the amount as a decimal string such as '84.20'")
    whole, _, decimals = value.partition(".")
    if len(decimals) > 2:
        # Rounding someone's bill silently would send a wrong amount.
        raise ValueError(f"{value!r} has more than two decimals")
    return str(Decimal(value))


def _currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValueError("use a three-letter ISO 4217 code such as BGN or EUR")
    return value


class BillContact(Input):
    """The customer, matched by external_id, else by phone; created if unknown.

    A customer known by external_id needs nothing else, and the fields given change it (a new
    phone takes its pending notices along); one matched by phone is used as it is. A new one
    needs ``name`` and ``phone``.
    """

    external_id: ExternalId | None = None
    phone: Phone | None = None
    name: Name | None = None
    email: Email | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None


Text = Annotated[str, Field(max_length=200), AfterValidator(_no_control_chars)]
ContactId = Annotated[Id, Field(description="a contact id")]


class BillIn(Input):
    external_id: ExternalId
    contact: ContactId | BillContact = Field(description="A contact id, or the customer inline.")
    amount: Annotated[str, Field(max_length=20), AfterValidator(_amount)] = Field(
        description="A decimal string, at most two decimals (none for JPY and the like)."
    )
    currency: Annotated[str, AfterValidator(_currency)] = "BGN"
    due: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_control_chars)] = (
        Field(description="ISO date, 15.12.2026, or words: 'tomorrow', 'утре'.")
    )
    reference: Text | None = None
    title: Text | None = Field(
        default=None,
        description="What the bill is for; default 'Сметка' or 'Bill', in the customer's language.",
    )
    policy: Annotated[str, Field(min_length=1, max_length=64)] = "bill"


class PaymentFailedIn(Input):
    reason: Text | None = Field(
        default=None,
        description="Why the payment was refused, in the customer's language; the SMS names "
        "no reason without it.",
    )


class BillOut(BaseModel):
    id: int
    external_id: str
    contact_id: int | None
    title: str
    amount: str
    currency: str
    due: date = Field(description="The due date as understood.")
    reference: str | None
    policy: str
    paid: bool
    created: bool = Field(description="True if this request created the bill.")
    notices: list[NoticeOut]


class BatchIn(Input):
    bills: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class RowError(BaseModel):
    index: int
    external_id: str | None
    errors: list[dict[str, str]]


class BatchOut(BaseModel):
    created: int
    updated: int
    refused: list[RowError]
