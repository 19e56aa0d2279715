"""The HTTP API: a thin layer that validates, calls plain functions and maps their errors."""

from reminders.api.app import create_app

__all__ = ["create_app"]
