"""The contacts screen's plain functions: the edit form's values, and a CSV import's outcome.

The rules are the domain's (``reminders.contacts``, ``reminders.importer``); here only what a
page needs around them: a form's texts as a ``ContactUpdate``, an uploaded file imported as
the command line imports one, and the refused rows kept to be downloaded.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from reminders.errors import DomainError, InvalidField
from reminders.importer import import_csv
from reminders.models import Contact
from reminders.panel.forms import optional
from reminders.schemas.contacts import ContactUpdate

MAX_UPLOAD = 5 * 1024 * 1024  # bytes: some 50,000 rows of a clinic's list


def form_values(contact: Contact) -> dict[str, str]:
    """The edit form's texts for ``contact``, as stored."""
    attributes = contact.attributes or {}
    return {
        "name": contact.name,
        "phone": contact.phone,
        "email": contact.email or "",
        "timezone": contact.timezone or "",
        "language": contact.language,
        "external_id": contact.external_id or "",
        "attributes": json.dumps(attributes, ensure_ascii=False, indent=2) if attributes else "",
    }


def update_from_form(form: dict[str, str]) -> ContactUpdate:
    """The change the edit form asks for: every field, an empty optional one cleared.

    Raises ValidationError (the API's own rules) or InvalidField for attributes that are not
    a JSON object."""
    text = (form.get("attributes") or "").strip()
    attributes: Any = {}
    if text:
        try:
            attributes = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidField(
                f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                field="attributes",
            ) from None
        if not isinstance(attributes, dict):
            raise InvalidField('must be a JSON object: {"doctor": "…"}', field="attributes")
    return ContactUpdate.model_validate(
        {
            "name": form.get("name", ""),
            "phone": form.get("phone", ""),
            "email": optional(form.get("email")),
            "timezone": optional(form.get("timezone")),
            "language": form.get("language") or "bg",
            "external_id": optional(form.get("external_id")),
            "attributes": attributes,
        }
    )


@dataclass(frozen=True)
class Imported:
    created: int
    updated: int
    refused: int
    refused_csv: bytes  # the refused rows as they were, with a reason column; empty if none

    @property
    def refused_data_url(self) -> str:
        """The refused rows as a link's target: downloaded with no state kept on the server."""
        encoded = base64.b64encode(self.refused_csv).decode()
        return f"data:text/csv;charset=utf-8;base64,{encoded}"


def import_upload(engine: Engine, content: bytes, *, account_id: int, region: str) -> Imported:
    """Import an uploaded CSV file by the importer's rules (each row its own transaction).

    Raises DomainError for a file that cannot be read as a whole (not UTF-8, no name or phone
    column), as the command line does."""
    with tempfile.TemporaryDirectory(prefix="reminders-import-") as folder:
        path = Path(folder) / "upload.csv"
        path.write_bytes(content)
        refused_path = Path(folder) / "refused.csv"
        try:
            report = import_csv(
                engine,
                path,
                account_id=account_id,
                region=region,
                refused_path=refused_path,
                show_progress=False,
            )
        except DomainError as exc:
            # The importer names the file by its path; the form's field is the upload.
            raise InvalidField(exc.message, field="file") from None
        refused = refused_path.read_bytes() if refused_path.exists() else b""
    return Imported(report.created, report.updated, len(report.refused), refused)
