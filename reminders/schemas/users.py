"""Users' requests and responses, and the rules for an email and a password.

A password is write-only: no response carries it or its hash, and no rule's message repeats it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from reminders.models import Role
from reminders.schemas.common import Input

MAX_EMAIL = 320  # users.email is VARCHAR(320): 64 for the local part, 255 for the domain, an @
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MIN_PASSWORD = 10
# Argon2 takes any length; the bound keeps a request from making hashing arbitrarily long.
MAX_PASSWORD = 1000
# Every C0 control, tab and line breaks included: nobody types them into a password field, and
# a NUL is where C libraries would cut it short.
_PASSWORD_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normal_email(value: str) -> str:
    """``value`` as it is stored: trimmed and casefolded (one person, however they type it).

    Raises ValueError, without repeating a value too long to be an address.
    """
    folded = value.strip().casefold()
    if len(folded) > MAX_EMAIL:
        raise ValueError(f"an email address has at most {MAX_EMAIL} characters")
    if _PASSWORD_CONTROL.search(folded) or not _EMAIL.fullmatch(folded):
        raise ValueError(f"{value.strip()!r} is not an email address")
    return folded


def valid_password(value: str) -> str:
    """``value`` unchanged when it is acceptable; a ValueError that never repeats it."""
    if len(value) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(value) > MAX_PASSWORD:
        raise ValueError(f"a password has at most {MAX_PASSWORD} characters")
    if _PASSWORD_CONTROL.search(value):
        raise ValueError("a password must not contain control characters (NUL, tab, line breaks)")
    return value


Email = Annotated[str, Field(max_length=MAX_EMAIL), AfterValidator(normal_email)]
# Kept exactly as typed: stripping spaces would change someone's password behind their back.
Password = Annotated[
    str,
    StringConstraints(strip_whitespace=False),
    Field(
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        description=f"Write-only: {MIN_PASSWORD} to {MAX_PASSWORD} characters, no control "
        "characters. Stored as an Argon2 hash and never shown.",
    ),
    AfterValidator(valid_password),
]


class UserCreate(Input):
    email: Email
    role: Role
    password: Password
    disabled: bool = False


class UserUpdate(Input):
    email: Email | None = None
    role: Role | None = None
    password: Password | None = None
    disabled: bool | None = None


class UserOut(BaseModel):
    id: int
    email: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
