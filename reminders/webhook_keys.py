"""Keys derived from ``REMINDERS_WEBHOOK_SECRET``, one for each use, none giving away another.

The secret itself never leaves the service: the URLs Kannel calls carry only what is derived
from it, and smsbox logs those URLs whole. Each key is HMAC-SHA256 of a purpose label under the
secret, so whoever holds one (the inbound get-url's token, read from a log) can compute neither
the secret nor the key of any other purpose (the one dlr-urls are signed with).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

# The labels name the use and a version; changing one invalidates every URL made with it.
DLR_URL: Final = b"reminders kannel dlr-url v1"
INBOUND_GET_URL: Final = b"reminders kannel inbound get-url v1"


def derived_key(secret: str, purpose: bytes) -> bytes:
    """The 256-bit key for ``purpose`` (one of the labels above) under ``secret``."""
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


def inbound_token(secret: str) -> str:
    """The token the inbound get-url carries instead of the secret: URL-safe, 43 characters.

    It is the credential for inbound SMS alone: it signs no delivery report.
    """
    return base64.urlsafe_b64encode(derived_key(secret, INBOUND_GET_URL)).rstrip(b"=").decode()


def inbound_token_valid(secret: str, given: str) -> bool:
    """Whether ``given`` is the inbound token for ``secret`` (compared in constant time)."""
    return hmac.compare_digest(inbound_token(secret).encode(), given.encode())
