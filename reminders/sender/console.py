"""A sender for trying things out: prints each message on standard output."""

from __future__ import annotations

import sys
import uuid

from reminders.sender.base import Accepted, OutgoingSms, Sender


class ConsoleSender(Sender):
    name = "console"

    def send(self, sms: OutgoingSms) -> Accepted:
        message_id = f"console-{uuid.uuid4().hex[:12]}"
        sender = sms.sender_id or "-"
        print(
            f"SMS {message_id} to {sms.to} from {sender}: {sms.text}", file=sys.stdout, flush=True
        )
        return Accepted(provider_message_id=message_id)
