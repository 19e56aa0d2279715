"""Rendering a template is bounded in work and in what it builds, whatever the template."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from reminders.scheduler.context import SAMPLE_CONTEXTS
from reminders.templates import MAX_RENDERED, BudgetExceeded, RenderError, render

STALL = "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}"


def over_bounds(source: str) -> BudgetExceeded:
    with pytest.raises(BudgetExceeded) as caught:
        render(source, SAMPLE_CONTEXTS[0])
    return caught.value


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (STALL, "range of 99999"),
        # Loops within the range bound: the step budget stops them, or the output bound.
        ("{% for i in range(999) %}{% for j in range(999) %}{% endfor %}{% endfor %}.", "steps"),
        ("{% for i in range(999) %}{% for j in range(999) %} {% endfor %}{% endfor %}.", "output"),
        # Loops the for's filter skips, and recursion, count too.
        (
            "{% for i in range(999) %}{% for j in range(999) if 0 %}{% endfor %}{% endfor %}.",
            "steps",
        ),
        (
            "{% macro f(n) %}{% if n %}{% for i in range(9) %}{{ f(n - 1) }}{% endfor %}"
            "{% endif %}{% endmacro %}{{ f(12) }}",
            "steps",
        ),
        (
            "{% for x in range(9) recursive %}{% if loop.depth < 9 %}{{ loop(range(9)) }}"
            "{% endif %}{% endfor %}.",
            "steps",
        ),
        (
            "{% set ns = namespace(n=0) %}{% block b %}{% if ns.n < 30 %}{% set ns.n = ns.n + 1 %}"
            "{{ self.b() }}{{ self.b() }}{% set ns.n = ns.n - 1 %}{% endif %}{% endblock %}.",
            "steps",
        ),
    ],
)
def test_work_is_bounded(source: str, reason: str) -> None:
    started = time.perf_counter()
    assert reason in str(over_bounds(source))
    assert time.perf_counter() - started < 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("source", "reason"),
    [
        # One C-level operation that would build gigabytes.
        ("{{ 'x' * 999999999 }}", "characters"),
        ("{{ [1] * 999999999 }}", "items"),
        ("{{ 9 ** 999999999 }}", "bits"),
        ("{{ '%999999999d' % 1 }}", "width"),
        ("{{ '%*d' % (999999999, 1) }}", "width"),
        ("{{ '%999999999d'|format(1) }}", "width"),
        ("{{ '{:>999999999}'.format(1) }}", "width"),
        ("{{ '{:>{w}}'.format(1, w=999999999) }}", "width"),
        ("{{ 'x'|center(999999999) }}", "characters"),
        ("{{ 'x'.ljust(999999999) }}", "characters"),
        ("{{ 'a\nb'|indent(999999999) }}", "characters"),
        ("{{ ('x' * 5000)|replace('x', 'yyyyyyyyyy') }}", "characters"),
        ("{{ ('x' * 5000).replace('', 'yyyyyyyyyy') }}", "characters"),
        ("{{ range(1000)|join('x' * 5000) }}", "characters"),
        ("{{ ('x' * 5000).join(['a', 'b', 'c']) }}", "characters"),
        ("{{ [1]|batch(999999999, 'x')|list }}", "items"),
        ("{{ [1]|slice(999999999)|list }}", "items"),
        ("{{ range(9)|map('center', 999999999)|list }}", "characters"),
        ("{{ (1).to_bytes(999999999, 'big') }}", "characters"),
        ("{{ ('x\t' * 1000).expandtabs(999999) }}", "characters"),
        ("{{ {'a': 1}|tojson(999999999) }}", "indent"),
        ("{{ 'a b c d e f'|wordwrap(1, wrapstring='x' * 9000) }}", "characters"),
        # Doubling a value step by step: each way of building a string is checked.
        *[
            (
                "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
                + step
                + "{% endfor %}{{ ns.s|length }}",
                "characters",
            )
            for step in (
                "{% set ns.s = ns.s ~ ns.s %}",
                "{% set ns.s = ns.s + ns.s %}",
                "{% set b %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = b %}",
                "{% set ns.s = [ns.s, ns.s]|join %}",
            )
        ],
        (
            "{% macro d(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='x') %}"
            "{% for i in range(60) %}{% set ns.s = d(ns.s) %}{% endfor %}",
            "characters",
        ),
        (
            "{% set ns = namespace(n=3) %}{% for i in range(60) %}{% set ns.n = ns.n * ns.n %}"
            "{% endfor %}{{ ns.n }}",
            "bits",
        ),
        # Output: streamed, and stopped.
        ("{% for i in range(999) %}{{ 'x' * 999 }}{% endfor %}", "output"),
        ("{{ 'x' * 2000 }}", f"at most {MAX_RENDERED}"),
    ],
)
def test_what_a_template_builds_is_bounded(source: str, reason: str) -> None:
    tracemalloc.start()
    try:
        assert reason in str(over_bounds(source))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"{peak / 1e6:.0f} MB"


def test_lorem_ipsum_is_not_available() -> None:
    with pytest.raises(RenderError, match="'lipsum' is undefined"):
        render("{{ lipsum(999999999) }}", {})


def test_ordinary_templates_are_unaffected() -> None:
    source = (
        "{% for w in 'a b c'.split() %}{{ w|upper }}{{ '-' * 3 }}{% endfor %} "
        "{{ '%05.1f' % 3.14159 }} {{ '{:,}'.format(1234567) }} {{ 2 ** 64 }} "
        "{{ range(3)|join(', ') }} {{ name|center(16) }}|{{ ('a' ~ 'b') * 2 }} {{ when }}"
    )
    assert render(source, SAMPLE_CONTEXTS[1]) == (
        "A---B---C--- 003.1 1,234,567 18446744073709551616 0, 1, 2    John Smith   |abab "
        "tomorrow at 10:30"
    )


def test_each_render_has_its_own_budget() -> None:
    # About three quarters of the steps: twice in a row is fine, nested loops of it are not.
    source = "{% for i in range(60) %}{% for j in range(120) %}{% endfor %}{% endfor %}ok"
    assert render(source, {}) == render(source, {}) == "ok"
    with pytest.raises(BudgetExceeded, match="steps"):
        render("{% for k in range(2) %}" + source + "{% endfor %}", {})


def test_a_template_cannot_make_bytes() -> None:
    with pytest.raises(RenderError, match="cannot make bytes"):
        render("{{ name.encode().replace(''.encode(), ('y' * 9000).encode()) }}", {"name": "x"})
