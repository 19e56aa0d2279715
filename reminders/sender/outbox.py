"""The default sender: keeps every message in the ``outbox`` table instead of sending it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
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
        # The outbox is the database: when it is away the messages were not taken (worth
        # trying again), unless only the commit's answer was lost (they may be in: unknown).
        ids: list[int] = []
        step = "insert"
        try:
            with self.engine.connect() as conn:
                query = insert(table).returning(table.c.id, sort_by_parameter_order=True)
                ids = list(conn.execute(query, rows).scalars())
                step = "commit"
                conn.commit()
                step = "done"
        except SQLAlchemyError as exc:
            if step == "insert":
                error = SendError(
                    f"the outbox could not be written ({type(exc).__name__})",
                    permanent=False,
                    code="database",
                )
                return [error] * len(messages)
            if step == "commit":
                error = SendError(
                    f"the outbox may or may not have kept the message ({type(exc).__name__})",
                    permanent=True,
                    code="database",
                    ambiguous=True,
                )
                return [error] * len(messages)
        return [Accepted(provider_message_id=f"outbox-{row_id}") for row_id in ids]

    def send(self, sms: OutgoingSms) -> Accepted:
        with Session(self.engine) as session:
            row = OutboxMessage(
                notice_id=sms.notice_id, to=sms.to, text=sms.text, sender_id=sms.sender_id
            )
            session.add(row)
            session.commit()  # the outbox is the gateway: what it took is kept, as a gateway's
            return Accepted(provider_message_id=f"outbox-{row.id}")
