"""The sender contract: one method, ``send``, that accepts an SMS or raises ``SendError``.

Like Django's mail backends, a sender is picked by one setting (``REMINDERS_SENDER``) and checks
its own configuration when it is constructed, so a bad setting stops start-up rather than the
first send.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import httpx
from sqlalchemy.engine import Engine

from reminders.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingSms:
    notice_id: int
    to: str  # E.164
    text: str  # final: look-alikes replaced, transliterated if asked
    sender_id: str | None
    segments: int = 1
    encoding: str = "GSM-7"
    # Its ``Priority`` ("transactional" or "bulk"): the links that serve it, and which rate
    # budget it spends first, depend on it (``sender.links``).
    lane: str = "bulk"


@dataclass(frozen=True)
class Accepted:
    """The gateway took the message. ``delivered`` only when it also confirmed delivery."""

    provider_message_id: str | None
    status: Literal["sent", "delivered"] = "sent"
    # Set by ``RoutedSender``: the link that carried it and that link's sender, which is the
    # provider its delivery reports come back from (the routed sender's own name is "links").
    link: str | None = None
    provider: str | None = None


class SendError(Exception):
    """The gateway did not take the message.

    ``permanent`` separates what retrying cannot fix (an invalid number, a rejected sender ID)
    from what it may (a timeout, a 5xx).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        ambiguous: bool = False,
        link: str | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        # The request may have reached the gateway (it timed out waiting for the answer): the
        # SMS may be on its way, so it is neither retried nor called failed, but "unknown".
        self.ambiguous = ambiguous
        # As on ``Accepted``: the link tried last, and its sender (set by ``RoutedSender``).
        self.link = link
        self.provider = provider

    @property
    def transient(self) -> bool:
        """Worth trying again, here or on another link: it surely never reached the gateway."""
        return not self.permanent and not self.ambiguous


def transport_error(exc: Exception, gateway: str) -> SendError:
    """Classify an httpx transport error: retry only what surely never reached the gateway."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return SendError(f"cannot reach {gateway}: {exc}", permanent=False, code="network")
    if isinstance(exc, httpx.TimeoutException):
        return SendError(
            f"{gateway} did not answer in time; it may have taken the message",
            permanent=True,
            code="timeout",
            ambiguous=True,
        )
    return SendError(
        f"the connection to {gateway} broke: {exc}; it may have taken the message",
        permanent=True,
        code="network",
        ambiguous=True,
    )


class Sender(ABC):
    """Base class of every sender; subclasses set ``name`` and implement ``send``."""

    name: ClassVar[str]
    # How many messages ``send_many`` takes at once; results are recorded after each batch, so
    # a crash leaves at most this many notices whose outcome is unknown. Not a ClassVar: the
    # routed sender sizes its own from its links' concurrency.
    batch_size: int = 20

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    @abstractmethod
    def send(self, sms: OutgoingSms) -> Accepted:
        """Hand ``sms`` to the gateway; return what it said or raise ``SendError``."""

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Accepted | SendError]:
        """Send each message; one result per message, in order. Override to batch the I/O."""
        results: list[Accepted | SendError] = []
        for sms in messages:
            try:
                results.append(self.send(sms))
            except SendError as exc:
                results.append(exc)
            except Exception as exc:  # a sender bug must not leave notices in "sending"
                log.exception("sender %s raised while sending notice %s", self.name, sms.notice_id)
                # A bug in a sender does not go away by retrying: fail it, loudly, once.
                results.append(SendError(f"{type(exc).__name__}: {exc}", permanent=True))
        return results

    def close(self) -> None:  # noqa: B027  (an optional hook, not an abstract method)
        """Release connections; called once when the service stops."""
