"""reminders: a self-hosted service that sends SMS reminders."""

__version__ = "0.1.0"
