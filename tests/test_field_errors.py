"""Validation errors name the user's fields, never the member types pydantic tried in a union."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reminders.field_errors import FieldError, field_errors


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int


class Shapes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: Annotated[int, Field(ge=1, description="an item id")] | Item = 1
    tags: str | list[str] | None = None
    items: list[int | Item] = Field(default_factory=list)
    marks: dict[str, Literal["x", "y"] | Item] = Field(default_factory=dict)


def errors_for(value: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(ValidationError) as caught:
        Shapes.model_validate(value)
    return field_errors(Shapes, caught.value.errors())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # No member takes the value's shape: one error saying what the field takes.
        ({"ref": "abc"}, [("ref", "must be either an item id or an object")]),
        ({"ref": [1]}, [("ref", "must be either an item id or an object")]),
        ({"tags": 5}, [("tags", "must be either a string or a list")]),
        ({"items": [1, "k"]}, [("items.1", "must be either a whole number or an object")]),
        ({"marks": {"k": "z"}}, [("marks.k", "must be either one of 'x', 'y' or an object")]),
        # The value has one member's shape: that member's errors, by the user's field path.
        ({"ref": {}}, [("ref.n", "is required")]),
        ({"ref": {"n": 1, "m": 2}}, [("ref.m", "is not a known field")]),
        ({"ref": 0}, [("ref", "Input should be greater than or equal to 1")]),
        ({"tags": ["a", 3]}, [("tags.1", "Input should be a valid string")]),
        ({"items": [{"n": "w"}]}, [("items.0.n", "Input should be a valid integer")]),
        ({"marks": {"j": {}}}, [("marks.j.n", "is required")]),
    ],
)
def test_union_fields_are_named_as_written(
    value: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    found = errors_for(value)
    assert [e.field for e in found] == [field for field, _ in expected]
    for error, (_, message) in zip(found, expected, strict=True):
        assert error.message.startswith(message), error


def test_several_errors_keep_their_order() -> None:
    found = errors_for({"ref": "abc", "tags": ["a", 3], "items": [{"n": "w"}], "extra": 1})
    assert [e.field for e in found] == ["ref", "tags.1", "items.0.n", "extra"]
    assert not any(
        name in e.field for e in found for name in ("Item", "int", "str", "list", "literal")
    )
