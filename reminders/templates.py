"""Message templates: Jinja2 in its sandbox, compiled when saved, rendered when a notice fires."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reminders.errors import InvalidField

MAX_RENDERED = 1600  # ten GSM-7 segments: past that a template is broken, not long


class RenderError(Exception):
    """A template could not be rendered; the message is for the notice's status reason."""


def _fmt_date(value: Any, fmt: str = "%d.%m.%Y") -> str:
    return value.strftime(fmt) if isinstance(value, datetime) else str(value)


def _fmt_time(value: Any, fmt: str = "%H:%M") -> str:
    return value.strftime(fmt) if isinstance(value, datetime) else str(value)


def _environment(undefined: type[Undefined]) -> ImmutableSandboxedEnvironment:
    # The sandbox refuses attribute access to internals, and the immutable variant refuses
    # changing the lists and dicts handed in, so a template can only read its context.
    env = ImmutableSandboxedEnvironment(autoescape=False, undefined=undefined)
    env.filters["date"] = _fmt_date
    env.filters["time"] = _fmt_time
    return env


_lenient = _environment(Undefined)


def check_template(source: str, *, field: str) -> None:
    """Refuse a template that does not compile, naming the line and the reason."""
    try:
        _lenient.parse(source)
    except TemplateSyntaxError as exc:
        raise InvalidField(f"line {exc.lineno}: {exc.message}", field=field) from None


@lru_cache(maxsize=256)
def _compiled(source: str) -> Any:
    return _lenient.from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    """Render ``source``; a missing variable renders empty, a sandbox breach is an error."""
    try:
        text = str(_compiled(source).render(context))
    except SecurityError as exc:
        raise RenderError(f"the template tried something the sandbox forbids: {exc}") from None
    except TemplateError as exc:
        raise RenderError(f"the template failed: {exc}") from None
    except Exception as exc:  # a template doing arithmetic on a string, say
        raise RenderError(f"the template failed: {type(exc).__name__}: {exc}") from None
    text = text.strip()
    if not text:
        raise RenderError("the template rendered an empty message")
    if len(text) > MAX_RENDERED:
        raise RenderError(f"the template rendered {len(text)} characters (at most {MAX_RENDERED})")
    return text
