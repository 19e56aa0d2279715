"""Sentences the panel's Python hands to a page, translated there in the viewer's language.

``_("%(n)s numbers were added", n=...)`` in a route or a helper marks the sentence for the
catalogue (tests/test_panel_i18n.py finds it) and keeps its blanks; the page says it with
``{{ _(said.msgid, **said.params) }}``, so the blanks' values are escaped like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Said:
    msgid: str
    params: dict[str, object] = field(default_factory=dict)


def _(msgid: str, **params: object) -> Said:
    return Said(msgid, params)


Errors = dict[str, list[Said]]  # form field -> what is wrong with it


def add(errors: Errors, name: str, said: Said) -> None:
    errors.setdefault(name, []).append(said)
