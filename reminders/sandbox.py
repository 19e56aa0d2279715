"""The sandbox templates run in: Jinja2's immutable sandbox with every render bounded.

A template is user input that runs in the API's threads (previews) and in the firing thread, so
its work and what it builds are bounded:

- work: every loop iteration and every call a template makes costs a step (loops and calls,
  macros included, are the only ways a template repeats anything); a render stops past
  ``MAX_STEPS`` steps, or ``MAX_SECONDS`` as a backstop for steps that are slow;
- size: what a single step can build is checked before it is built where Python would do the
  work in one C call (``"x" * n``, ``2 ** n``, ``"%*d"``, ``center``, ``replace``, ``join``...)
  and after otherwise, so no string or list grows past ``MAX_VALUE``; ``range`` stops at
  ``MAX_RANGE``, and a template cannot make bytes.

Steps are counted by the compiled code itself. A ``sys.settrace`` tracer counting the lines of
template code was tried first: it cost about 100 microseconds a render on the seeded texts,
four times the render, because it sees every call Jinja's runtime makes. Counting in the
compiled code costs nothing measurable on the seeded texts and well under a microsecond a loop
iteration.

Going over a bound raises :class:`OverBounds`, which ``reminders.templates.render`` reports.
"""

from __future__ import annotations

import functools
import inspect
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from datetime import datetime
from inspect import unwrap
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import BlockReference, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, pass_environment

MAX_STEPS = 10_000  # loop iterations and calls per render; the seeded texts take none
TEMPLATE_CALL_STEPS = 10  # a macro or block call runs template code: ten times a loop's step
MAX_SECONDS = 2.0
MAX_VALUE = 10_000  # characters of a string, or items of a list, that a template may build
MAX_RANGE = 1_000
MAX_WIDTH = 100  # of a field in a format: "%5d", "{:>10}"
MAX_INT_BITS = 4_096


class OverBounds(BaseException):
    """A render did, or was about to build, more than a message template ever needs.

    A BaseException, so that no ``except Exception`` in Jinja's runtime or in a filter can
    swallow it and let the template run on.
    """


def _fmt_date(value: Any, fmt: str = "%d.%m.%Y") -> str:
    return value.strftime(fmt) if isinstance(value, datetime) else str(value)


def _fmt_time(value: Any, fmt: str = "%H:%M") -> str:
    return value.strftime(fmt) if isinstance(value, datetime) else str(value)


# --- size checks ----------------------------------------------------------------------------


_SIZED = (str, list, tuple, dict, set, frozenset)


def _checked(value: Any) -> Any:
    """``value``, unless it is a string, collection or number larger than a template may build."""
    if isinstance(value, _SIZED):
        if len(value) > MAX_VALUE:
            raise OverBounds(f"a value of {len(value)} characters or items (at most {MAX_VALUE})")
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise OverBounds(f"a number of more than {MAX_INT_BITS} bits")
    return value


def _expect(size: int) -> None:
    if size > MAX_VALUE:
        raise OverBounds(f"a value of about {size} characters or items (at most {MAX_VALUE})")


def _bounded_join(separator: str, items: Iterable[Any], *, strict: bool = False) -> str:
    """``separator.join(items)`` (each item made a string), stopped before it grows too long.

    ``strict`` refuses items that are not strings, as ``str.join`` does.
    """
    parts: list[str] = []
    size = 0
    for item in items:
        if strict and not isinstance(item, str):
            raise TypeError(
                f"sequence item {len(parts)}: expected str instance, {type(item).__name__} found"
            )
        text = item if isinstance(item, str) else str(item)
        size += len(text) + (len(separator) if parts else 0)
        _expect(size)
        parts.append(text)
    return separator.join(parts)


def _concat(parts: Iterable[Any]) -> str:
    # Jinja joins a block's output with ``environment.concat``: a macro's result, a
    # ``{% set %}...{% endset %}`` block, a filter block, and the ``~`` operator (see below).
    return _bounded_join("", parts)


_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str) -> None:
    """Refuse a ``%`` format whose widths would build a huge string before any check sees it."""
    for width, precision in _PRINTF_FIELD.findall(fmt):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise OverBounds(f"a %-format width or precision over {MAX_WIDTH}")


def _check_format(fmt: str) -> None:
    """The same for ``str.format``: no width over MAX_WIDTH, none taken from an argument."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format will say what is wrong with it
    for _, _, spec, _ in fields:
        if spec and ("{" in spec or any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec))):
            raise OverBounds(f"a format width or precision over {MAX_WIDTH}")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise OverBounds(f"a number of more than {MAX_INT_BITS} bits")
            return
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(times, int) and isinstance(sequence, Sized):
            _expect(len(sequence) * times)
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if left.bit_length() * right > MAX_INT_BITS:
                raise OverBounds(f"a number of more than {MAX_INT_BITS} bits")
    elif operator == "%" and isinstance(left, str):
        _check_printf(left)


def _replace_size(text: str, old: str, new: str, count: int | None) -> int:
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _check_str_method(owner: str, name: str, args: tuple[Any, ...]) -> None:
    """Pre-checks for the string methods that build a large string in one C call."""
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        _expect(args[0])
    elif name == "expandtabs":
        tab = args[0] if args and isinstance(args[0], int) else 8
        _expect(len(owner) + owner.count("\t") * tab)
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
        if isinstance(args[0], str) and isinstance(args[1], str):
            _expect(_replace_size(owner, args[0], args[1], count))
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        _expect(len(owner) * longest)
    elif name in ("format", "format_map"):
        _check_format(owner)


# --- filters with arguments that size their result ------------------------------------------


def _pre_center(a: dict[str, Any]) -> None:
    if isinstance(a.get("width"), int):
        _expect(a["width"])


def _pre_indent(a: dict[str, Any]) -> None:
    width = a.get("width", 4)
    indent = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    text = str(a["s"])
    _expect(len(text) + (text.count("\n") + 1) * indent)


def _pre_replace(a: dict[str, Any]) -> None:
    old, new = a.get("old"), a.get("new")
    if isinstance(old, str) and isinstance(new, str):
        _expect(_replace_size(str(a["s"]), old, new, a.get("count")))


def _pre_wordwrap(a: dict[str, Any]) -> None:
    wrap = a.get("wrapstring")
    if isinstance(wrap, str):
        text = str(a["s"])
        _expect(len(text) * (1 + len(wrap)))


def _pre_count(name: str) -> Callable[[dict[str, Any]], None]:
    def check(a: dict[str, Any]) -> None:
        if isinstance(a.get(name), int):
            _expect(a[name])

    return check


def _pre_tojson(a: dict[str, Any]) -> None:
    indent = a.get("indent")
    if (isinstance(indent, int) and indent > MAX_WIDTH) or (
        isinstance(indent, str) and len(indent) > MAX_WIDTH
    ):
        raise OverBounds(f"a JSON indent over {MAX_WIDTH}")


def _pre_format(a: dict[str, Any]) -> None:
    if isinstance(a.get("value"), str):
        _check_printf(a["value"])


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "replace": _pre_replace,
    "wordwrap": _pre_wordwrap,
    "batch": _pre_count("linecount"),
    "slice": _pre_count("slices"),
    "tojson": _pre_tojson,
    "format": _pre_format,
}


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    check = _FILTER_CHECKS.get(name)
    signature = inspect.signature(func) if check is not None else None
    # Jinja's async-capable filters take an extra first argument that their signature (the
    # plain function's) does not show: the evaluation context, to learn whether to await.
    extra = int(_PassArg.from_obj(func) is not None and _PassArg.from_obj(unwrap(func)) is None)

    @functools.wraps(func)  # keeps Jinja's pass_context / pass_environment mark
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check is not None and signature is not None:
            try:
                bound = signature.bind(*args[extra:], **kwargs)
            except TypeError:
                pass  # the filter itself will say which argument is wrong
            else:
                check(bound.arguments)
        return _checked(func(*args, **kwargs))

    return bounded


@pass_environment
def _join(environment: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    """Jinja's ``join``, stopped before the joined string grows past MAX_VALUE."""
    if attribute is not None:
        value = map(make_attrgetter(environment, attribute), value)
    return _bounded_join(str(d), value)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise OverBounds(f"a range of {len(numbers)} numbers (at most {MAX_RANGE})")
    return numbers


# --- the work budget ------------------------------------------------------------------------


class _Budget:
    """The steps a render has left, and its deadline."""

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS

    def spend(self, steps: int) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise OverBounds(f"more than {MAX_STEPS} steps")
        # The clock is read every 32 steps or so: a step is cheap, and the deadline only a
        # backstop for steps that are not.
        if self.steps & 31 < steps and time.monotonic() > self.deadline:
            raise OverBounds(f"more than {MAX_SECONDS:g} s")


class _Local(threading.local):
    budget: _Budget | None = None


_local = _Local()


@contextmanager
def budget() -> Iterator[None]:
    """A fresh work budget for the renders on this thread inside the block."""
    previous = _local.budget
    _local.budget = _Budget()
    try:
        yield
    finally:
        _local.budget = previous


def _step(steps: int = 1) -> None:
    budget = _local.budget
    if budget is not None:
        budget.spend(steps)


def _ticking(iterable: Iterable[Any]) -> Iterable[Any]:
    """``iterable``, one step spent per item: every ``{% for %}`` iterates through this."""
    budget = _local.budget
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.spend(1)
        yield item


# --- the environment ------------------------------------------------------------------------


class _BoundedCodeGenerator(CodeGenerator):
    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # {% for x in items %} iterates environment.ticking(items): a step per iteration, the
        # ones a loop's filter (``if``) skips included.
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("ticking"), [node.iter], [], None, None, lineno=node.lineno
        )
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # ``a ~ b`` compiles to a join that bypasses ``environment.concat``; route it there.
        self.write("concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox (no internals, no changing the lists and dicts handed in), with
    the operators and calls that can build something large checked (see the module's doc)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    concat = staticmethod(_concat)
    ticking = staticmethod(_ticking)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # Every call is a step, and one that runs template code (a macro, ``caller()``,
        # ``self.block()``, ``loop()`` in a recursive for loop) costs more: it can recurse.
        if isinstance(__obj, Macro | BlockReference | LoopContext):
            _step(TEMPLATE_CALL_STEPS)
            if isinstance(__obj, LoopContext) and args:
                # loop(children) iterates without the for's ticking: tick it here.
                args = (_ticking(args[0]), *args[1:])
        else:
            _step()
        # The sandbox hands out ``str.format`` wrapped; the bound method is under __wrapped__.
        method = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            name = getattr(method, "__name__", "")
            if name == "join" and len(args) == 1 and not kwargs:
                if not __self.is_safe_callable(__obj):
                    raise SecurityError(f"{__obj!r} is not safely callable")
                return _bounded_join(owner, args[0], strict=True)
            _check_str_method(owner, name, args)
        elif isinstance(owner, int) and getattr(method, "__name__", "") == "to_bytes":
            if args and isinstance(args[0], int):
                _expect(args[0])
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, bytes | bytearray):
            # An SMS is text; bytes would only be one more type whose methods need checks.
            raise SecurityError("a template cannot make bytes")
        return _checked(result)


def bounded_environment(undefined: type[Undefined]) -> BoundedSandbox:
    """A bounded sandbox with the ``date`` and ``time`` filters; render only within
    :func:`budget`."""
    env = BoundedSandbox(autoescape=False, undefined=undefined)
    env.filters["date"] = _fmt_date
    env.filters["time"] = _fmt_time
    env.filters["join"] = _join
    for name, func in list(env.filters.items()):
        env.filters[name] = _bounded_filter(name, func)
    env.globals["range"] = _range
    # lorem ipsum has no place in an SMS, and its paragraph count is a loop no check sees.
    del env.globals["lipsum"]
    return env
