"""What a policy's template can use when its notice fires, and a sample of it to check with.

The names a template may use are the keys of the context built here, taken from a sample built
the same way (``TEMPLATE_VARIABLES``), so the list that saving checks against cannot drift from
what firing provides.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_decimal

from reminders.models import Anchor, Contact, Notice
from reminders.when import when_text

# "15.12.2026" in Bulgarian, "15 Dec 2026" in English: short, and all GSM-7 in English.
DATE_FORMAT = {"bg": "d.MM.y", "en": "d MMM y"}


def template_context(
    notice: Notice, contact: Contact | None, anchor: Anchor | None, zone: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """What a policy's template can use; times are on the recipient's clock (``zone``).

    ``now`` is the moment the notice goes out: ``when`` says "today" or "tomorrow" from it,
    since quiet hours or a late start may send a reminder on another day than its step's.
    """
    return TemplateContexts(now).build(notice, contact, anchor, zone)


class TemplateContexts:
    """``template_context`` for notices that go out at one moment, ``now``, such as a batch.

    What comes from the anchor (its day and time in words, Babel's formats) is worked out once
    per anchor, zone and language rather than once per notice: a burst's notices mostly share
    a few events. The part is shared, not copied: templates run in an immutable sandbox.
    """

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._anchors: dict[tuple[int, str, str], dict[str, Any]] = {}

    def build(
        self, notice: Notice, contact: Contact | None, anchor: Anchor | None, zone: ZoneInfo
    ) -> dict[str, Any]:
        lang = contact.language if contact else "bg"
        context: dict[str, Any] = {
            "phone": notice.phone,
            "lang": lang,
            "name": contact.name if contact else "",
            "first_name": contact.name.split()[0] if contact and contact.name.split() else "",
            "contact": dict(contact.attributes) if contact else {},
        }
        if anchor is None:
            return context
        if anchor.id is None:  # not stored (the sample): nothing to know it by
            context.update(_anchor_context(anchor, zone, lang, self.now))
            return context
        key = (anchor.id, zone.key, lang)
        part = self._anchors.get(key)
        if part is None:
            part = self._anchors[key] = _anchor_context(anchor, zone, lang, self.now)
        context.update(part)
        return context


def _anchor_context(anchor: Anchor, zone: ZoneInfo, lang: str, now: datetime) -> dict[str, Any]:
    start = anchor.at.astimezone(zone)
    data = dict(anchor.data)
    return {
        "title": anchor.title,
        "start": start,
        "date": format_date(start.date(), DATE_FORMAT.get(lang, "d.MM.y"), locale=_locale(lang)),
        "time": "" if anchor.all_day else start.strftime("%H:%M"),
        "when": when_text(start, now, zone, all_day=anchor.all_day, lang=lang),
        "location": data.get("location", ""),
        "amount": _amount_text(data.get("amount"), lang),
        "currency": data.get("currency", ""),
        "data": data,
    }


@lru_cache(maxsize=8)
def _locale(lang: str) -> Locale:
    # Babel looks the locale's data files up on every call given a name; a burst pays for it.
    return Locale.parse(lang)


def _amount_text(amount: Any, lang: str) -> str:
    """84,20 in Bulgarian, 84.20 in English; no grouping separator, since Babel's Bulgarian one
    is a non-breaking space, which alone would turn an English SMS into UCS-2."""
    if amount in (None, ""):
        return ""
    try:
        return format_decimal(Decimal(str(amount)), format="0.00", locale=_locale(lang))
    except (InvalidOperation, ValueError):
        return str(amount)


_SOFIA = ZoneInfo("Europe/Sofia")


def sample_context(lang: str) -> dict[str, Any]:
    """A typical firing context in ``lang``: an appointment with a place, an amount and data
    such as a feed or a bill leaves, read the evening before. Templates are tried on it when
    saved."""
    moment = datetime(2026, 12, 9, 18, 0, tzinfo=_SOFIA)
    notice = Notice(
        key="sample", kind="event_reminder", phone="+359888123456", text="", send_at=moment
    )
    contact = Contact(
        name="Иван Петров" if lang == "bg" else "John Smith",
        name_folded="",
        phone=notice.phone,
        language=lang,
        attributes={"doctor": "д-р Петрова", "account": "12345"},
    )
    start = datetime(2026, 12, 10, 10, 30, tzinfo=_SOFIA)
    data = {
        "location": "кабинет 5",
        "amount": "84.20",
        "currency": "BGN",
        "due": "2026-12-10",
        "reference": "INV-1",
        "description": "Преглед",
    }
    anchor = Anchor(
        key="sample", kind="event", title="Преглед", at=start, policy="appointment", data=data
    )
    return template_context(notice, contact, anchor, _SOFIA, moment)


SAMPLE_CONTEXTS = (sample_context("bg"), sample_context("en"))
# Every name a template can use when its notice fires (some are empty without an anchor).
TEMPLATE_VARIABLES = frozenset(SAMPLE_CONTEXTS[0])


def message_sample(lang: str) -> dict[str, Any]:
    """A message template's context: the recipient alone, no event or bill."""
    full = sample_context(lang)
    return {name: full[name] for name in ("phone", "lang", "name", "first_name", "contact")}


MESSAGE_SAMPLES = (message_sample("bg"), message_sample("en"))
# What a message written as a template can use: the context firing builds without an anchor.
MESSAGE_VARIABLES = frozenset(MESSAGE_SAMPLES[0])
