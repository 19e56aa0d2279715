"""A generic JSON webhook sender for in-house gateways, signed with HMAC-SHA256.

POST {REMINDERS_HTTP_SENDER_URL} with {"id", "to", "from", "text", "segments", "encoding"};
the header X-Reminders-Signature is "sha256=" + hex(HMAC-SHA256(secret, body)), and
X-Reminders-Timestamp the Unix time the body was signed at (the signature covers
"timestamp.body", so a replayed request can be refused by its age). A 2xx answer accepts the
message; its JSON "id" (if any) is kept as the gateway's message id. 429 and 5xx are worth
retrying; any other answer is not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError, transport_error
from reminders.settings import Settings, SettingsError


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class HttpSender(Sender):
    name = "http"

    def __init__(
        self, settings: Settings, engine: Engine, *, client: httpx.Client | None = None
    ) -> None:
        super().__init__(settings, engine)
        if not settings.http_sender_url:
            raise SettingsError(
                "Invalid setting REMINDERS_HTTP_SENDER_URL: the http sender needs it."
            )
        if settings.http_sender_secret is None:
            raise SettingsError(
                "Invalid setting REMINDERS_HTTP_SENDER_SECRET: the http sender signs every request."
            )
        self.url = settings.http_sender_url
        self.secret = settings.http_sender_secret.get_secret_value()
        self.client = client or httpx.Client(timeout=10)

    def send(self, sms: OutgoingSms) -> Accepted:
        payload: dict[str, Any] = {
            "id": f"notice-{sms.notice_id}",
            "to": sms.to,
            "from": sms.sender_id,
            "text": sms.text,
            "segments": sms.segments,
            "encoding": sms.encoding,
        }
        body = json.dumps(payload, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Reminders-Timestamp": timestamp,
            "X-Reminders-Signature": sign(self.secret, timestamp, body),
        }
        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise transport_error(exc, "the gateway") from None
        if 200 <= response.status_code < 300:
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            message_id = answer.get("id") if isinstance(answer, dict) else None
            return Accepted(provider_message_id=str(message_id) if message_id else payload["id"])
        transient = response.status_code == 429 or response.status_code >= 500
        reason = response.text.strip()[:500] or f"the gateway answered {response.status_code}"
        raise SendError(reason, permanent=not transient, code=str(response.status_code))

    def close(self) -> None:
        self.client.close()
