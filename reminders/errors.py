"""Domain errors. The API turns them into 4xx responses; the CLI into one-line messages."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors a user's input can cause."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidField(DomainError):
    """A value is well-typed but not acceptable (a phone that is not a mobile, an unknown zone)."""

    status_code = 422


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    """The request clashes with the current state (a duplicate name, a notice already sent)."""

    status_code = 409
