"""The default sender: keeps every message in the ``outbox`` table instead of sending it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from reminders.models import OutboxMessage
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError


class OutboxSender(Sender):
    name = "outbox"
    batch_size = 100

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Accepted | SendError]:
        rows = [
            OutboxMessage(
                notice_id=sms.notice_id, to=sms.to, text=sms.text, sender_id=sms.sender_id
            )
            for sms in messages
        ]
        with Session(self.engine) as session:
            session.add_all(rows)
            session.commit()
            return [Accepted(provider_message_id=f"outbox-{row.id}") for row in rows]

    def send(self, sms: OutgoingSms) -> Accepted:
        with Session(self.engine) as session:
            row = OutboxMessage(
                notice_id=sms.notice_id, to=sms.to, text=sms.text, sender_id=sms.sender_id
            )
            session.add(row)
            session.commit()
            return Accepted(provider_message_id=f"outbox-{row.id}")
