"""Query parameters several routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from reminders.paging import DEFAULT_LIMIT, MAX_LIMIT
from reminders.schemas import MAX_ID

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DEFAULT_PAGE = DEFAULT_LIMIT
