"""Finding a sender class by name (see ``reminders.sender_names`` for which names exist)."""

from __future__ import annotations

from importlib import import_module

from reminders import sender_names
from reminders.sender.base import Sender


def load(name: str) -> type[Sender]:
    """Import the sender class registered as ``name`` (imported on first use, not before)."""
    target = sender_names.target(name)
    if target is None:
        raise KeyError(name)
    module_name, _, attr = target.partition(":")
    cls = getattr(import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Sender)):
        raise TypeError(f"{target} is not a Sender subclass")
    return cls
