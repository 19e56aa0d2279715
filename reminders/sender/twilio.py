"""Twilio's Messages REST API, spoken with httpx (no SDK), with its status callbacks.

Request: POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded To, From (or
MessagingServiceSid), Body and StatusCallback, with HTTP basic auth (account SID, auth token).
A 201 answers with the message's ``sid``; an error answers with a JSON ``code`` and ``message``.
Callbacks are signed: X-Twilio-Signature is base64(HMAC-SHA1(auth token, URL + the POST
parameters sorted by name, each name followed by its value)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError, transport_error
from reminders.sender.reports import DeliveryReport, ReportStatus
from reminders.settings import Settings, SettingsError

API = "https://api.twilio.com"
CALLBACK_PATH = "/webhooks/twilio/status"
# Twilio's statuses that end or advance a notice; queued/accepted/sending say nothing new.
STATUSES: dict[str, ReportStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(auth_token: str, url: str, params: Mapping[str, str], given: str) -> bool:
    return hmac.compare_digest(signature(auth_token, url, params), given)


def report_from_callback(params: Mapping[str, str], notice_id: int | None) -> DeliveryReport | None:
    status = STATUSES.get(params.get("MessageStatus", ""))
    sid = params.get("MessageSid") or params.get("SmsSid")
    if status is None or not sid:
        return None
    code = params.get("ErrorCode") or None
    return DeliveryReport(
        provider="twilio",
        provider_message_id=sid,
        status=status,
        notice_id=notice_id,
        error_code=code,
        error=f"Twilio error {code}" if code else None,
    )


class TwilioSender(Sender):
    name = "twilio"

    def __init__(
        self, settings: Settings, engine: Engine, *, client: httpx.Client | None = None
    ) -> None:
        super().__init__(settings, engine)
        for setting in ("twilio_account_sid", "twilio_auth_token"):
            if not getattr(settings, setting):
                raise SettingsError(
                    f"Invalid setting REMINDERS_{setting.upper()}: the twilio sender needs it."
                )
        if not (settings.twilio_from or settings.twilio_messaging_service_sid):
            raise SettingsError(
                "Invalid setting REMINDERS_TWILIO_FROM: the twilio sender needs a sender number "
                "or REMINDERS_TWILIO_MESSAGING_SERVICE_SID."
            )
        assert settings.twilio_account_sid and settings.twilio_auth_token
        self.account_sid = settings.twilio_account_sid
        self.auth_token = settings.twilio_auth_token.get_secret_value()
        self.client = client or httpx.Client(base_url=API, timeout=10)

    def send(self, sms: OutgoingSms) -> Accepted:
        data: dict[str, str] = {"To": sms.to, "Body": sms.text}
        service = self.settings.twilio_messaging_service_sid
        if service:
            data["MessagingServiceSid"] = service
        # A message's or a policy's sender ID goes as From, with a Messaging Service too (it
        # must then be one of the service's senders); else the service picks from its pool.
        sender_id = sms.sender_id or (None if service else self.settings.twilio_from)
        if sender_id:
            data["From"] = sender_id
        if self.settings.public_url:
            data["StatusCallback"] = (
                f"{self.settings.public_url}{CALLBACK_PATH}?notice={sms.notice_id}"
            )
        try:
            response = self.client.post(
                f"/2010-04-01/Accounts/{self.account_sid}/Messages.json",
                data=data,
                auth=(self.account_sid, self.auth_token),
            )
        except httpx.TransportError as exc:
            raise transport_error(exc, "Twilio") from None
        body = _json(response)
        if response.status_code in (200, 201) and body.get("sid"):
            return Accepted(provider_message_id=str(body["sid"]))
        code = str(body.get("code") or response.status_code)
        message = str(body.get("message") or f"Twilio answered {response.status_code}")
        # 429 and 5xx pass; any other 4xx (invalid number, unverified sender...) will not.
        transient = response.status_code == 429 or response.status_code >= 500
        raise SendError(message, permanent=not transient, code=code)

    def close(self) -> None:
        self.client.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
