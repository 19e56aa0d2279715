"""Senders: one class per gateway behind the small contract in ``base``."""

from reminders.sender.base import Accepted, OutgoingSms, Sender, SendError

__all__ = ["Accepted", "OutgoingSms", "SendError", "Sender"]
