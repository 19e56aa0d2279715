"""Which sender ID an account's SMS goes out from.

Bulgarian operators register alphanumeric sender IDs per company, so an account with
``sender_ids`` sends from those alone: a message or a policy naming another one is refused when
it is written, and a notice whose sender ID the account may no longer use (its list changed
since) fails when it fires, with the reason, rather than go out under a name it may not use.

With no sender ID given, the account's ``default_sender_id`` applies, read when the notice
fires (as ``REMINDERS_SENDER_ID`` is), so a new default reaches the notices already planned;
else ``REMINDERS_SENDER_ID`` if the account may use it; else the first of its ``sender_ids``.
An account with no ``sender_ids`` may use any valid sender ID.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from reminders.accounts.scoping import current
from reminders.errors import InvalidField
from reminders.models import Account


def sender_for(
    asked: str | None,
    *,
    allowed: Sequence[str],
    default: str | None,
    fallback: str | None,
) -> str | None:
    """The sender ID a notice goes out from: ``asked`` (its message's or policy's), else the
    account's ``default``, else the service's ``fallback`` when the account may use it, else
    the first it may use (None: the gateway's own)."""
    if asked:
        return asked
    if default:
        return default
    if not allowed or fallback in allowed:
        return fallback
    return allowed[0]


def refusal(sender_id: str | None, allowed: Sequence[str]) -> str | None:
    """Why an account that may use ``allowed`` may not send from ``sender_id``, or None."""
    if sender_id is None or not allowed or sender_id in allowed:
        return None
    return f"{sender_id!r} is not one of the account's sender IDs: {', '.join(allowed)}"


def check_sender_id(session: Session, sender_id: str | None, *, field: str = "sender_id") -> None:
    """Refuse (422 naming ``field``) a sender ID the session's account may not use."""
    if sender_id is None:
        return
    account = session.get(Account, current(session))
    reason = refusal(sender_id, account.sender_ids if account is not None else [])
    if reason is not None:
        raise InvalidField(reason, field=field)
