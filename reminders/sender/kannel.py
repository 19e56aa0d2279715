"""Kannel's sendsms HTTP interface, with delivery reports through a signed dlr-url.

Request: GET {kannel_url}?username=&password=&to=&from=&text= (plus ``coding=2`` for text
outside GSM-7, and ``dlr-mask``/``dlr-url`` when the service has a public URL and a webhook
secret). Kannel answers 202 "0: Accepted for delivery" (or "3: Queued for later delivery"
while the operator link is down), 403 for a wrong user or password, 400 for a refused number.

Kannel returns no message id, so each send is recorded as ``notice-{id}.{attempt}``, the
notice and the attempt id that its dlr-url names and signs (see ``kannel_dlr``).
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
from typing import Final
from urllib.parse import urlencode

import httpx
from sqlalchemy.engine import Engine

from reminders.redaction import REDACT_SECRETS
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError, transport_error
from reminders.sender.compose import compose, is_gsm7
from reminders.sender.kannel_dlr import DLR_MASK, dlr_url, message_id, new_attempt
from reminders.settings import Settings, SettingsError

# "0: Accepted for delivery", "3: Queued for later delivery": both mean Kannel has it.
ACCEPTED_ANSWERS: Final = ("0:", "3:")
# Kannel reads "to" as a list split on spaces and drops characters outside "0123456789 +-",
# answering 202 for what is left, so anything but a plain E.164 number is refused here.
E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")

log = logging.getLogger(__name__)


def parts(text: str) -> int:
    """How many SMS ``text`` takes as sent (GSM-7 160/153 septets, UCS-2 70/67 units)."""
    # No look-alike replacement: the text goes to Kannel exactly as it is.
    return compose(text, replace_lookalikes=False).segments


class KannelSender(Sender):
    name = "kannel"

    def __init__(
        self, settings: Settings, engine: Engine, *, client: httpx.Client | None = None
    ) -> None:
        super().__init__(settings, engine)
        for setting in ("kannel_url", "kannel_username", "kannel_password"):
            if not getattr(settings, setting):
                raise SettingsError(
                    f"Invalid setting REMINDERS_{setting.upper()}: the kannel sender needs it."
                )
        assert settings.kannel_url and settings.kannel_username and settings.kannel_password
        # Parsed once: httpx parses a URL given as text again for every request.
        self.url = httpx.URL(settings.kannel_url)
        self.username = settings.kannel_username
        self.password = settings.kannel_password.get_secret_value()
        self.max_parts = settings.kannel_max_parts
        # Given (a test's mock transport): that one client, shared by every sending thread.
        self._given = client
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()
        self._closed = False
        self._tls: ssl.SSLContext | None = None
        # httpx logs each request's full URL, and Kannel takes its password in the query.
        logging.getLogger("httpx").addFilter(REDACT_SECRETS)

    @property
    def client(self) -> httpx.Client:
        """The calling thread's client: its own keep-alive connection to Kannel.

        A link sends from a pool of threads; one client shared by all of them has its
        connection pool scan every connection under one lock for each request and each
        answer, which cost more CPU than anything else on the way to Kannel. Each thread
        sends one request at a time, so one connection each is all it needs.
        """
        if self._given is not None:
            return self._given
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            with self._clients_lock:
                if self._closed:
                    # As httpx says of a closed client: a closed sender does not start again.
                    raise RuntimeError("the Kannel sender has been closed")
                if self._tls is None:
                    # One for all the threads' clients: each would otherwise load the CA
                    # bundle itself, about 25 ms and 1 MB a thread, for a link that is
                    # usually plain HTTP.
                    self._tls = httpx.create_ssl_context()
                # Kannel is local or near: a slow connect means it is down, not busy.
                client = httpx.Client(
                    verify=self._tls,
                    timeout=httpx.Timeout(10.0, connect=3.0),
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                )
                self._clients.append(client)
            self._local.client = client
        return client

    def send(self, sms: OutgoingSms) -> Accepted:
        attempt = new_attempt()
        params = self.params(sms, attempt)
        try:
            response = self.client.get(self.request_url(params))
        except httpx.TransportError as exc:
            raise transport_error(exc, "Kannel") from None
        return self._answer(sms, attempt, response)

    def request_url(self, params: dict[str, str | int]) -> httpx.URL:
        """The sendsms URL with ``params`` in its query, as ``client.get(url, params=...)``
        would send it.

        httpx encodes params with ``urllib.parse.urlencode``, after building a ``QueryParams``
        of them: the query written here directly is the same bytes, for a tenth less CPU per
        request, the largest cost of a send. A configured URL with a query of its own gets
        httpx's own rule for it (merged before httpx 0.28, replaced since).
        """
        if self.url.query:
            return httpx.Request("GET", self.url, params=params).url
        return self.url.copy_with(query=urlencode(params).encode("ascii"))

    def params(self, sms: OutgoingSms, attempt: str) -> dict[str, str | int]:
        """The sendsms query for this ``attempt`` at ``sms``; raises a permanent ``SendError``
        for what Kannel would mangle while still answering 202 (a malformed number, too many
        parts)."""
        if not E164.fullmatch(sms.to):
            raise SendError(
                f"{sms.to!r} is not an E.164 number", permanent=True, code="invalid_number"
            )
        count = parts(sms.text)
        if count > self.max_parts:
            # Past the user's max-messages Kannel drops the rest of the text and answers 202.
            raise SendError(
                f"the text takes {count} SMS; Kannel sends at most {self.max_parts}",
                permanent=True,
                code="too_long",
            )
        params: dict[str, str | int] = {
            "username": self.username,
            "password": self.password,
            "to": sms.to,  # httpx encodes "+" as %2B; a raw "+" would lose the country code
            "text": sms.text,
            "charset": "UTF-8",  # what httpx encodes the text in
        }
        if sms.sender_id:
            params["from"] = sms.sender_id
        if not is_gsm7(sms.text):
            # Kannel does not choose: without coding=2 Cyrillic arrives as "?????".
            params["coding"] = 2
        secret = self.settings.webhook_secret
        if self.settings.public_url and secret is not None and secret.get_secret_value():
            params["dlr-mask"] = DLR_MASK
            params["dlr-url"] = dlr_url(
                self.settings.public_url, secret.get_secret_value(), sms.notice_id, attempt
            )
        return params

    def _answer(self, sms: OutgoingSms, attempt: str, response: httpx.Response) -> Accepted:
        status, body = response.status_code, response.text.strip()
        if status == 202:
            if not body.startswith(ACCEPTED_ANSWERS):
                log.warning("Kannel took notice %s with an unusual answer: %s", sms.notice_id, body)
            return Accepted(provider_message_id=message_id(sms.notice_id, attempt))
        message = f"Kannel answered {status}: {body[:200]}" if body else f"Kannel answered {status}"
        if status >= 500:
            raise SendError(message, permanent=False, code="kannel_unavailable")
        # A wrong password or a refused number stays so however often it is retried.
        if status == 403:
            raise SendError(message, permanent=True, code="kannel_auth")
        lowered = body.lower()
        if status == 400 and ("receiver" in lowered or "denied" in lowered):
            raise SendError(message, permanent=True, code="invalid_number")
        if status == 400 and "sender missing" in lowered:
            # No "from" and no default-sender or global-sender in kannel.conf.
            raise SendError(message, permanent=True, code="no_sender")
        raise SendError(message, permanent=True, code="kannel_rejected")

    def close(self) -> None:
        if self._given is not None:
            self._given.close()
        with self._clients_lock:
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
