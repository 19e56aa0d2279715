"""Reading a reply's words the way people type them on a phone.

Case, punctuation and spacing do not matter, and Cyrillic is read through Bulgarian
transliteration, so "DA", "da" and "ДА" are one word (and so are look-alikes typed in the other
alphabet). The whole message is tried first, then its first word: "да, ще дойда" confirms,
"не мога" cancels.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

from reminders.models import ReplyState
from reminders.sender.translit import transliterate_bg

# Kinds of answer a policy lists words for, and the state each leads to.
ANSWERS: Mapping[str, ReplyState] = {
    "confirm": ReplyState.confirmed,
    "cancel": ReplyState.cancelled,
}
_NOT_WORD = re.compile(r"[^\w]+")


def normalized(text: str) -> str:
    """``text`` as answers are compared: Latin letters, case folded, words split by spaces."""
    latin = transliterate_bg(unicodedata.normalize("NFKC", text))
    return " ".join(_NOT_WORD.sub(" ", latin.casefold()).replace("_", " ").split())


def read_answer(text: str, replies: Mapping[str, Sequence[str]]) -> ReplyState:
    """What ``text`` answers, by the policy's ``replies`` words."""
    words = {kind: {normalized(w) for w in replies.get(kind, ())} for kind in ANSWERS}
    said = normalized(text)
    if not said:
        return ReplyState.unclear
    for candidate in (said, said.split()[0]):
        for kind, state in ANSWERS.items():
            if candidate in words[kind]:
                return state
    return ReplyState.unclear
