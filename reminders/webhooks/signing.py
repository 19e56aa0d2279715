"""Signing by the Standard Webhooks specification (https://www.standardwebhooks.com).

The secret is ``whsec_`` and the base64 of 32 random bytes; the signature is the base64 of
HMAC-SHA256, under those bytes, of ``<webhook-id>.<webhook-timestamp>.<body>``, sent as
``v1,<signature>``. Any of the specification's libraries verifies it (our tests use the
``standardwebhooks`` package).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

PREFIX: Final = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value for one attempt."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of the specification, and the content type."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "Content-Type": "application/json",
    }
