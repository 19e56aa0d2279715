"""Pydantic's validation errors, told in the user's own field paths.

Where a field takes one of several types (a contact id or an inline customer), pydantic puts
the member it tried into each error's location (``contact.constrained-int``,
``contact.BillContact.name``) and reports every member's failure. ``field_errors`` walks the
model along each location to drop those member names, keeps the errors of the member the value
was meant for (the one whose shape it has), and when no member takes the value's shape at all,
says once what the field accepts: "must be either a contact id or an object".
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True)
class _Union:
    at: tuple[str | int, ...]  # the union field's path, as the user writes it
    member: int  # which member this error came from, -1 if pydantic's name was not recognised
    accepts: tuple[str, ...]  # what each member takes, in words


@dataclass(frozen=True)
class _Walked:
    order: int
    path: tuple[str | int, ...]
    unions: tuple[_Union, ...]
    kind: str
    message: str


def field_errors(model: Any, errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """``errors`` (pydantic's ``ValidationError.errors()``, locations relative to ``model``) as
    one error per user field, named by its dotted path (``contact.name``, ``to.phones.2``)."""
    walked = [_walk(model, i, error) for i, error in enumerate(errors)]
    found = sorted(_settle(walked, 0), key=lambda pair: pair[0])
    return [error for _, error in found]


def message_of(error: Mapping[str, Any]) -> str:
    """pydantic's message in our words where they differ."""
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "missing":
        return "is required"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    return str(error.get("msg", "is not valid")).removeprefix("Value error, ")


def _settle(items: Sequence[_Walked], level: int) -> list[tuple[int, FieldError]]:
    """The errors to show for ``items``, looking at the union each passed at depth ``level``."""
    out: list[tuple[int, FieldError]] = []
    groups: dict[tuple[str | int, ...], list[_Walked]] = {}
    for item in items:
        if len(item.unions) > level:
            groups.setdefault(item.unions[level].at, []).append(item)
        else:
            out.append((item.order, FieldError(_dotted(item.path), item.message)))
    for at, group in groups.items():
        # A member took the value's shape when its error is inside the value (a field of the
        # object) or about its content (too small), not about its type.
        meant = {
            item.unions[level].member
            for item in group
            if len(item.path) > len(at) or not _is_shape_error(item.kind)
        }
        meant.discard(-1)
        if meant:
            chosen = [item for item in group if item.unions[level].member in meant]
            out.extend(_settle(chosen, level + 1))
        else:
            accepts = group[0].unions[level].accepts
            out.append((group[0].order, FieldError(_dotted(at), _must_be(accepts))))
    return out


def _is_shape_error(kind: str) -> bool:
    # A value outside a Literal or an Enum is as much "not this member" as a wrong type.
    return kind.endswith(("_type", "_parsing")) or kind in ("literal_error", "enum")


def _must_be(accepts: Sequence[str]) -> str:
    if len(accepts) == 2:
        return f"must be either {accepts[0]} or {accepts[1]}"
    return "must be one of: " + ", ".join(accepts)


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in path)


def _walk(model: Any, order: int, error: Mapping[str, Any]) -> _Walked:
    """Follow ``error``'s location through the types, keeping field names, list indexes and
    dict keys, and noting (then dropping) the union members pydantic named."""
    path: list[str | int] = []
    unions: list[_Union] = []
    current: Any = model
    for part in error.get("loc", ()):
        current = _unwrap(current)
        members = _members(current)
        if members is not None:
            index = _member_named(members, part)
            unions.append(_Union(tuple(path), index, tuple(_describe(m) for m in members)))
            current = _unwrap(members[index]) if index >= 0 else Any
            continue
        if current is Any and _looks_like_a_member_name(part):
            continue
        path.append(part)
        current = _child(current, part)
    return _Walked(order, tuple(path), tuple(unions), str(error.get("type", "")), message_of(error))


def _looks_like_a_member_name(part: Any) -> bool:
    """pydantic's name for a non-model union member, where the walk lost track of the types."""
    return isinstance(part, str) and (
        "[" in part or part.startswith(("function-", "constrained-", "lax-or-strict"))
    )


def _unwrap(annotation: Any) -> Any:
    """The type under ``Annotated`` and ``X | None`` (pydantic names no member for those)."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        members = _union_args(annotation)
        if members is not None:
            present = [m for m in members if m is not type(None)]
            if len(present) == 1:
                annotation = present[0]
                continue
        return annotation


def _union_args(annotation: Any) -> tuple[Any, ...] | None:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return None


def _members(annotation: Any) -> list[Any] | None:
    """The members of a union of two or more types (None left out), else None."""
    members = _union_args(annotation)
    if members is None:
        return None
    return [m for m in members if m is not type(None)]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _member_named(members: Sequence[Any], name: Any) -> int:
    """Which member pydantic meant: a model by its class name, another type by its schema's
    name (``int``, ``constrained-int``, ``list[int]``); -1 when it cannot be told."""
    for index, member in enumerate(members):
        if _is_model(_unwrap(member)) and _unwrap(member).__name__ == name:
            return index
    others = [i for i, m in enumerate(members) if not _is_model(_unwrap(m))]
    if len(others) == 1:
        return others[0]
    head = str(name).removeprefix("constrained-").split("[")[0]
    matching = [i for i in others if _schema_head(_unwrap(members[i])) == head]
    return matching[0] if len(matching) == 1 else -1


def _schema_head(annotation: Any) -> str:
    """How pydantic's member names start for this type: ``list``, ``literal``, ``int``."""
    origin = get_origin(annotation)
    if origin is Literal:
        return "literal"
    return str(getattr(origin or annotation, "__name__", "")).lower()


def _child(annotation: Any, part: str | int) -> Any:
    """The type of ``part`` inside ``annotation``; ``Any`` when unknown (nothing dropped)."""
    if _is_model(annotation):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return Any
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (list, set, frozenset, Sequence) and args:
        return args[0]
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[part] if isinstance(part, int) and part < len(args) else Any
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return Any


_WORDS: list[tuple[type, str]] = [
    (bool, "true or false"),
    (int, "a whole number"),
    (float, "a number"),
    (Decimal, "a number"),
    (str, "a string"),
    (datetime, "a date and time"),
    (date, "a date"),
]


def _describe(member: Any) -> str:
    """What a union member takes, in words: its own description when it has one."""
    if get_origin(member) is Annotated:
        for extra in get_args(member)[1:]:
            if isinstance(extra, FieldInfo) and extra.description:
                return extra.description
    base = _unwrap(member)
    if _is_model(base) or get_origin(base) in (dict, Mapping):
        return "an object"
    if get_origin(base) in (list, set, frozenset, tuple, Sequence):
        return "a list"
    if get_origin(base) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(base))
    for kind, words in _WORDS:
        if isinstance(base, type) and issubclass(base, kind):
            return words
    return getattr(base, "__name__", "another value")
