"""Finding a sender class by name: the built-ins, then the ``reminders.senders`` entry points."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from reminders.sender.base import Sender

ENTRY_POINT_GROUP = "reminders.senders"

_BUILTIN = {
    "outbox": "reminders.sender.outbox:OutboxSender",
    "console": "reminders.sender.console:ConsoleSender",
    "twilio": "reminders.sender.twilio:TwilioSender",
    "kannel": "reminders.sender.kannel:KannelSender",
    "http": "reminders.sender.http:HttpSender",
}


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> set[str]:
    return set(_BUILTIN) | set(_plugins())


def load(name: str) -> type[Sender]:
    """Import the sender class registered as ``name`` (imported on first use, not before)."""
    target = _BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        raise KeyError(name)
    module_name, _, attr = target.partition(":")
    cls = getattr(import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Sender)):
        raise TypeError(f"{target} is not a Sender subclass")
    return cls
