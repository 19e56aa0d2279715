"""Which senders exist, by name: the built-ins, then plug-ins' ``reminders.senders`` entry points.

The names alone, apart from ``sender.registry`` (which imports the classes), so that the
settings can check ``REMINDERS_SENDER`` without importing a sender. The built-ins are listed
here only, not as entry points too: found without the package's installed metadata.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "reminders.senders"

BUILTIN = {
    "outbox": "reminders.sender.outbox:OutboxSender",
    "console": "reminders.sender.console:ConsoleSender",
    "twilio": "reminders.sender.twilio:TwilioSender",
    "kannel": "reminders.sender.kannel:KannelSender",
    "http": "reminders.sender.http:HttpSender",
    "links": "reminders.sender.links:RoutedSender",
}


def plugins() -> dict[str, str]:
    """Name to ``module:Class`` of every sender a plug-in registers."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> set[str]:
    return set(BUILTIN) | set(plugins())


def target(name: str) -> str | None:
    """Where the sender named ``name`` lives (``module:Class``); a built-in wins a plug-in's."""
    return BUILTIN.get(name) or plugins().get(name)
