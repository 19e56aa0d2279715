"""What an SMS text costs: its encoding, its length in the encoding's units and its segments.

Pure functions, no I/O. The facts (GSM 03.38, 3GPP TS 23.040 concatenation):

* A text is GSM-7 when every character is in the GSM 03.38 default alphabet or its extension
  table; one character outside them makes the whole text UCS-2.
* GSM-7 holds 160 septets in one SMS and 153 per part of a concatenated one; an extension
  character is an escape plus a code, 2 septets.
* UCS-2 holds 70 UTF-16 code units in one SMS and 67 per part; a character outside the Basic
  Multilingual Plane (most emoji) is a surrogate pair, 2 units; extension characters cost 1.
* A part never ends inside an escape pair or a surrogate pair: the character moves whole to the
  next part.

Because one stray character doubles the price, ``compose`` by default replaces the few
characters that word processors and phones slip in for plain ones (typographic quotes and
dashes, non-breaking spaces, ...) with their GSM-7 look-alikes, and reports what it replaced.

An empty text is 0 characters in 1 segment with one empty part: a gateway would still send and
bill one (empty) message, and ``segments == len(parts)`` holds. The service refuses empty texts
before they get here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from reminders.sender.translit import transliterate_bg

__all__ = ["Composition", "Encoding", "compose", "is_gsm7"]

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 default alphabet in code order, less 0x1B (the escape to the extension table).
# 0x09 is capital "Ç": Unicode's old mapping file says small "ç", which handsets do not show.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Sent as escape + code: 2 septets each. "\f" is form feed (shown as a page break, if at all).
GSM7_EXTENSION: Final = frozenset("^{}\\[]~|€\f")

_GSM7: Final = GSM7_BASIC | GSM7_EXTENSION
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153  # 160 less the 7 septets the concatenation header (6 octets) takes
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67  # 140 octets less the 6-octet header, in 2-octet units

# Characters that force UCS-2 but have a GSM-7 look-alike a reader will not miss. Kept small:
# each one is something editors and phones insert on their own, not a letter a writer chose.
LOOKALIKES: Final[dict[str, str]] = {
    # Typographic double quotes, including the Bulgarian „…“ pair and guillemets.
    "\u201e": '"', "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
    # Typographic single quotes and the prime; the spacing acute accent "´" and the backtick
    # are typed as apostrophes ("don´t"). Only the spacing forms: the combining accent U+0301
    # is part of a letter and stays.
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    # Hyphen, non-breaking hyphen, figure dash, en dash, em dash, minus sign.
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...",  # the ellipsis, one character that autocorrect makes of "..."
    "\u2022": "*",  # the bullet of pasted lists
    # Non-breaking, typographic and ideographic spaces: one of them doubles the price of a
    # message and nobody sees it.
    "\u00a0": " ", "\u202f": " ", "\u205f": " ", "\u3000": " ",
    **{chr(code): " " for code in range(0x2000, 0x200B)},
    # Zero-width space and the byte-order mark left by pasting: invisible, so dropped. Not the
    # zero-width joiner U+200D, which glues emoji sequences (🏳️‍🌈) together.
    "\u200b": "", "\ufeff": "",
}  # fmt: skip


@dataclass(frozen=True)
class Composition:
    """A text as it will be sent, with its encoding, length and parts."""

    text: str  # the final text (after replacements / transliteration)
    encoding: Encoding
    characters: int  # septets for GSM-7 (extension chars count 2), UTF-16 code units for UCS-2
    segments: int
    parts: tuple[str, ...]  # the text split as the handset receives it
    # The distinct characters (code points) that forced UCS-2, in order of first appearance.
    ucs2_characters: tuple[str, ...]
    replaced: tuple[tuple[str, str], ...]  # look-alike replacements: (original, replacement)


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM 03.38 alphabet or extension table."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def compose(
    text: str, *, replace_lookalikes: bool = True, transliterate: bool = False
) -> Composition:
    """Work out how ``text`` will be sent: encoding, length, segments and parts.

    ``transliterate`` first writes Bulgarian Cyrillic in Latin (the official system);
    ``replace_lookalikes`` then swaps the characters in ``LOOKALIKES`` for their GSM-7 forms.
    Both only ever make a text cheaper; what was swapped is listed in ``replaced``.
    """
    text = _join_surrogates(text)
    if transliterate:
        text = transliterate_bg(text)
    replaced: tuple[tuple[str, str], ...] = ()
    if replace_lookalikes:
        text, replaced = _replace_lookalikes(text)

    # Each step goes over the text in C (a dict, a set, counts, an encoding), and Python's loop
    # only over what it found: a burst composes every message it sends.
    distinct = dict.fromkeys(text)  # in order of first appearance
    ucs2_characters: tuple[str, ...] = ()
    if not _GSM7.issuperset(distinct):
        ucs2_characters = tuple(char for char in distinct if char not in _GSM7)
    encoding: Encoding = "UCS-2" if ucs2_characters else "GSM-7"
    characters = _length(text, encoding)
    if encoding == "GSM-7":
        single, per_part = GSM7_SINGLE, GSM7_PART
    else:
        single, per_part = UCS2_SINGLE, UCS2_PART
    if characters <= single:
        parts: tuple[str, ...] = (text,)
    else:
        parts = _split(text, [_cost(char, encoding) for char in text], per_part)
    return Composition(
        text=text,
        encoding=encoding,
        characters=characters,
        segments=len(parts),
        parts=parts,
        ucs2_characters=ucs2_characters,
        replaced=replaced,
    )


def _join_surrogates(text: str) -> str:
    """Turn surrogate pairs held as two code points into the one character they encode.

    A Python string normally holds an emoji as one code point, but text decoded with
    ``surrogatepass`` (or built from UTF-16 escapes by hand) can hold the two halves; joined,
    they can never be split across parts. Lone surrogates stay as they are.
    """
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _replace_lookalikes(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Swap look-alikes for their GSM-7 forms; return the text and the distinct swaps made."""
    if LOOKALIKES.keys().isdisjoint(text):
        return text, ()
    out: list[str] = []
    seen: dict[tuple[str, str], None] = {}  # a dict keeps first-appearance order
    for char in text:
        replacement = LOOKALIKES.get(char)
        if replacement is None:
            out.append(char)
        else:
            out.append(replacement)
            seen[(char, replacement)] = None
    return "".join(out), tuple(seen)


def _length(text: str, encoding: Encoding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) the whole text takes: the sum of
    ``_cost`` over its characters."""
    if encoding == "GSM-7":
        return len(text) + sum(text.count(char) for char in GSM7_EXTENSION.intersection(text))
    # A lone surrogate is one unit, as in _cost: "surrogatepass" writes it as one.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _cost(char: str, encoding: Encoding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) one character takes."""
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def _split(text: str, costs: list[int], per_part: int) -> tuple[str, ...]:
    """Cut ``text`` into parts of at most ``per_part`` units, never inside a character.

    Each character (an escape pair, a surrogate pair) is placed whole, so one that does not
    fit moves to the next part and the part before it is left a unit short.
    """
    parts: list[str] = []
    start = used = 0
    for index, cost in enumerate(costs):
        if used + cost > per_part:
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return tuple(parts)
