"""The control panel's languages: English (the templates' own text) and Bulgarian.

Translations live in gettext catalogues in the repository (``locale/<lang>/LC_MESSAGES/
panel.po``), edited as text and reviewed like code. They are compiled with Babel when the
process starts rather than by a separate build step, so a checkout, an editable install and a
wheel all run the catalogue that is in them, and no stale ``.mo`` can be served.
"""

from __future__ import annotations

import datetime as dt
import io
from datetime import tzinfo
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Final

from babel import Locale
from babel.dates import format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

LANGUAGES: Final = ("bg", "en")
DEFAULT: Final = "en"
LOCALE_DIR: Final = Path(__file__).parent / "locale"
DOMAIN: Final = "panel"
# What each language is called in itself, for the switch.
NAMES: Final = {"bg": "Български", "en": "English"}


def catalogue_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalogue of ``lang`` (English needs none: the templates are English)."""
    path = catalogue_path(lang)
    if lang == DEFAULT or not path.exists():
        return NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def negotiate(accept_language: str | None) -> str:
    """The first of our languages the browser asks for (``Accept-Language``), else English."""
    if not accept_language:
        return DEFAULT
    asked: list[tuple[float, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        # Earlier tags win ties: sort by quality, then by where they came.
        asked.append((-quality + position * 1e-6, tag.split("-")[0].strip().lower()))
    for _, lang in sorted(asked):
        if lang in LANGUAGES:
            return lang
    return DEFAULT


def valid(lang: str | None) -> str | None:
    return lang if lang in LANGUAGES else None


class Formats:
    """Dates, times, numbers and money in one language, on one clock (the account's zone)."""

    def __init__(self, lang: str, zone: tzinfo) -> None:
        self.lang = lang
        self.locale = Locale.parse(lang)
        self.zone = zone

    def datetime(self, value: dt.datetime | None, width: str = "medium") -> str:
        if value is None:
            return ""
        return format_datetime(value, width, tzinfo=self.zone, locale=self.locale)

    def time(self, value: dt.datetime | None) -> str:
        if value is None:
            return ""
        return format_time(value, "short", tzinfo=self.zone, locale=self.locale)

    def hour(self, value: dt.datetime) -> str:
        """An hour's label on a chart: 14:00."""
        return format_time(value, "HH:mm", tzinfo=self.zone, locale=self.locale)

    def number(self, value: int | float | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def money(self, value: Decimal, currency: str) -> str:
        return format_currency(value, currency, locale=self.locale)
