"""What an account's settings change when its notices fire, read once per firing batch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from reminders.accounts.senders import refusal, sender_for
from reminders.models import Account, AccountStatus


@dataclass(frozen=True)
class Terms:
    account_id: int
    suspended: bool = False
    sender_ids: tuple[str, ...] = ()
    default_sender_id: str | None = None
    monthly_segments: int | None = None

    def sender_for(self, asked: str | None, fallback: str | None) -> str | None:
        return sender_for(
            asked, allowed=self.sender_ids, default=self.default_sender_id, fallback=fallback
        )

    def refusal(self, sender_id: str | None) -> str | None:
        return refusal(sender_id, self.sender_ids)


def terms_of(session: Session, account_ids: Iterable[int]) -> dict[int, Terms]:
    """The terms of these accounts: one small query (a batch has few accounts)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    # The table's columns, not the model's: a Core statement skips the ORM's result set-up,
    # and this runs once per firing batch.
    accounts = Account.__table__.c  # type: ignore[attr-defined]
    query = select(
        accounts.id,
        accounts.status,
        accounts.sender_ids,
        accounts.default_sender_id,
        accounts.monthly_segments,
    ).where(accounts.id.in_(ids))
    return {
        account_id: Terms(
            account_id=account_id,
            suspended=status == AccountStatus.suspended,
            sender_ids=tuple(sender_ids or ()),
            default_sender_id=default,
            monthly_segments=quota,
        )
        for account_id, status, sender_ids, default, quota in session.execute(query)
    }
