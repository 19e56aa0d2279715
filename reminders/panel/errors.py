"""Domain errors as the panel shows them: a page for what is not there, a sentence beside the
field for what was refused."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import HTMLResponse

from reminders.panel.pages import Viewer, render


def not_found(request: Request, who: Viewer) -> HTMLResponse:
    """Another account's id, or one that never was: the same 404 either way."""
    return render(request, "not_found.html", who, status_code=404)
