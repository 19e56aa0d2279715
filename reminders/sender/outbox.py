"""The default sender: keeps every message in the ``outbox`` table instead of sending it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert
from sqlmodel import Session

from reminders.db import utcnow
from reminders.models import OutboxMessage
from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError


class OutboxSender(Sender):
    name = "outbox"
    batch_size = 200

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Accepted | SendError]:
        now = utcnow()
        rows = [
            {
                "notice_id": sms.notice_id,
                "to": sms.to,
                "text": sms.text,
                "sender_id": sms.sender_id,
                "created_at": now,
            }
            for sms in messages
        ]
        table = OutboxMessage.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            ids = (
                conn.execute(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
                )
                .scalars()
                .all()
            )
        return [Accepted(provider_message_id=f"outbox-{row_id}") for row_id in ids]

    def send(self, sms: OutgoingSms) -> Accepted:
        with Session(self.engine) as session:
            row = OutboxMessage(
                notice_id=sms.notice_id, to=sms.to, text=sms.text, sender_id=sms.sender_id
            )
            session.add(row)
            session.commit()
            return Accepted(provider_message_id=f"outbox-{row.id}")
