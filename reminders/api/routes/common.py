"""Query parameters several routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from reminders.paging import DEFAULT_LIMIT, MAX_LIMIT
from reminders.schemas.common import MAX_ID, _no_control_chars

MAX_SEARCH = 200


def _search_text(value: str | None) -> str | None:
    # Checked here rather than with Query(max_length=...): on an optional annotated string
    # pydantic words that limit as "at most 200 items", which reads as nonsense for a text.
    if value is None:
        return None
    if len(value) > MAX_SEARCH:
        raise ValueError(
            f"the search text may be at most {MAX_SEARCH} characters long, not {len(value)}"
        )
    return _no_control_chars(value)


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
]
SearchText = Annotated[
    str | None,
    AfterValidator(_search_text),
    Query(description=f"Part of a name or a phone; at most {MAX_SEARCH} characters."),
]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DEFAULT_PAGE = DEFAULT_LIMIT
