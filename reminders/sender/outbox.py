"""The default sender: keeps every message in the ``outbox`` table instead of sending it."""

from __future__ import annotations

from sqlmodel import Session

from reminders.models import OutboxMessage
from reminders.sender.base import Accepted, OutgoingSms, Sender


class OutboxSender(Sender):
    name = "outbox"

    def send(self, sms: OutgoingSms) -> Accepted:
        with Session(self.engine) as session:
            row = OutboxMessage(
                notice_id=sms.notice_id, to=sms.to, text=sms.text, sender_id=sms.sender_id
            )
            session.add(row)
            session.commit()
            return Accepted(provider_message_id=f"outbox-{row.id}")
