"""Message templates: checked when saved, rendered when a notice fires.

They run in the bounded sandbox of ``reminders.sandbox``; here a render streams the output
(stopped past ``MAX_OUTPUT``) and turns whatever went wrong into one sentence for the notice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError

from reminders.errors import InvalidField
from reminders.sandbox import OverBounds, bounded_environment, budget

MAX_RENDERED = 1600  # ten GSM-7 segments: past that a template is broken, not long
MAX_OUTPUT = 4 * MAX_RENDERED  # streamed output, before the surrounding whitespace is stripped


class RenderError(Exception):
    """A template could not be rendered; the message is for the notice's status reason."""


class BudgetExceeded(RenderError):
    """A template did, or would build, more than a message template ever needs."""


_lenient = bounded_environment(Undefined)


def check_template(
    source: str,
    *,
    field: str,
    variables: Collection[str] | None = None,
    samples: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Refuse a template that does not compile, naming the line and the reason.

    With ``variables``, also refuse one that uses a name not among them (the 422 lists those
    available); with ``samples``, one that goes over its bounds rendering any of them.
    """
    try:
        tree = _lenient.parse(source)
        # An unknown filter or test parses; compiling finds it (as a TemplateAssertionError,
        # a kind of syntax error), and so would every later use of the tree.
        _lenient.compile(tree)
    except TemplateSyntaxError as exc:
        raise InvalidField(f"line {exc.lineno}: {exc.message}", field=field) from None
    except RecursionError:
        raise InvalidField("the template is nested too deeply", field=field) from None
    if variables is not None:
        unknown = unknown_variables(tree, variables)
        if unknown:
            raise InvalidField(
                f"unknown {'name' if len(unknown) == 1 else 'names'} {', '.join(unknown)}; "
                f"a template can use {', '.join(sorted(variables))}",
                field=field,
            )
    for sample in samples:
        try:
            render(source, sample)
        except BudgetExceeded as exc:
            raise InvalidField(str(exc), field=field) from None
        except RenderError as exc:
            # Jinja looks a test up only when it runs: one that does not exist never will.
            if "No test named" in str(exc):
                raise InvalidField(str(exc), field=field) from None
            # Anything else may well render with the real values (a key the sample lacks).


def unknown_variables(template: str | nodes.Template, variables: Collection[str]) -> list[str]:
    """The names ``template`` reads that are neither in ``variables`` nor built in (``range``,
    ``namespace``...), sorted. A source that does not compile has none."""
    if isinstance(template, str):
        try:
            template = _lenient.parse(template)
        except (TemplateSyntaxError, RecursionError):
            return []
    try:
        used = meta.find_undeclared_variables(template)
    except (TemplateSyntaxError, RecursionError):
        return []  # an unknown filter or test: it does not compile
    return sorted(used - set(variables) - set(_lenient.globals))


@lru_cache(maxsize=256)
def _compiled(source: str) -> Any:
    template = _lenient.from_string(source)
    # Jinja keeps a template's globals as a ChainMap over the environment's, and copies and
    # lists it for every render: a third of a short render. Ours never change once built.
    template.globals = dict(template.globals)
    return template


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render ``source``; a missing variable renders empty, a sandbox breach or going over the
    bounds is an error."""
    chunks: list[str] = []
    size = 0
    try:
        with budget():
            template = _compiled(source)
            # The root function itself, not generate(): one generator less per chunk, and the
            # traceback rewriting generate() does is of no use to a one-sentence reason.
            stream = template.root_render_func(template.new_context(dict(context)))
            try:
                for chunk in stream:
                    size += len(chunk)
                    if size > MAX_OUTPUT:
                        raise OverBounds(f"more than {MAX_OUTPUT} characters of output")
                    chunks.append(chunk)
            finally:
                stream.close()
    except OverBounds as exc:
        raise BudgetExceeded(f"the template went over its bounds: {exc}") from None
    except SecurityError as exc:
        raise RenderError(f"the template tried something the sandbox forbids: {exc}") from None
    except TemplateError as exc:
        raise RenderError(f"the template failed: {exc}") from None
    except RecursionError:
        raise RenderError("the template failed: it is nested or recurses too deeply") from None
    except Exception as exc:  # a template doing arithmetic on a string, say
        raise RenderError(f"the template failed: {type(exc).__name__}: {exc}") from None
    text = "".join(chunks).strip()
    if not text:
        raise RenderError("the template rendered an empty message")
    if len(text) > MAX_RENDERED:
        raise BudgetExceeded(
            f"the template rendered {len(text)} characters (at most {MAX_RENDERED})"
        )
    return text
