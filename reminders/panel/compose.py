"""What the compose screen works out before anything is sent: the numbers pasted, what the
text will cost (as written and transliterated, with the characters that make it dear), who
it reaches and when.

Plain functions over the domain's own (``phones``, ``sender.compose``, ``messages``,
``dates``): the panel reads and shows; the rules stay where the API's are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Final, Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlmodel import Session

from reminders.dates import DateParseError, parse_datetime
from reminders.errors import InvalidField
from reminders.field_errors import field_errors
from reminders.messages import Recipient, fill_template, resolve_recipients
from reminders.models import Priority
from reminders.phones import normalize_mobile
from reminders.schemas.messages import MessageCreate, Recipients
from reminders.sender.compose import LOOKALIKES, Composition, compose

# Lines, commas and semicolons always separate numbers; a space separates them only where the
# pieces are numbers each ("0888 123 456" is one number, "0888123456 0899111222" two).
_SEPARATORS: Final = re.compile(r"[\n\r,;]+")
MAX_WHEN: Final = 100  # as long as a message's ``send_at`` may be

Reason = Literal["not_a_number", "invalid", "not_mobile"]


@dataclass(frozen=True)
class BadNumber:
    written: str
    reason: Reason


@dataclass(frozen=True)
class Numbers:
    phones: list[str]  # E.164, each once, in the order pasted
    bad: list[BadNumber]


def _reason(error: InvalidField) -> Reason:
    # normalize_mobile's three refusals, told apart for a translated sentence beside the field.
    if "not a mobile" in error.message:
        return "not_mobile"
    if "not a valid" in error.message:
        return "invalid"
    return "not_a_number"


def read_numbers(text: str, region: str) -> Numbers:
    """The phone numbers in ``text`` in E.164 (as the API normalises ``to.phones``), and the
    pieces that are none, each with the reason."""
    phones: list[str] = []
    bad: list[BadNumber] = []
    for chunk in _SEPARATORS.split(text):
        chunk = chunk.strip()
        if not chunk:
            continue
        try:
            phones.append(normalize_mobile(chunk, region))
            continue
        except InvalidField as whole:
            error = whole
        pieces = chunk.split()
        read: list[str] = []
        if len(pieces) > 1:
            try:
                read = [normalize_mobile(piece, region) for piece in pieces]
            except InvalidField:
                read = []
        if read:
            phones.extend(read)
        else:
            bad.append(BadNumber(chunk, _reason(error)))
    return Numbers(list(dict.fromkeys(phones)), bad)


Mark = Literal["lookalike", "ucs2"]


@dataclass(frozen=True)
class Span:
    text: str
    mark: Mark | None


@dataclass(frozen=True)
class Cost:
    """A text's price both ways: as written and transliterated to Latin."""

    written: Composition
    latin: Composition
    spans: tuple[Span, ...]  # the text as typed, its dear characters marked

    @property
    def replaced(self) -> tuple[tuple[str, str], ...]:
        return self.written.replaced

    @property
    def swaps(self) -> list[tuple[str, str, str]]:
        """The look-alikes replaced: the character, its code point (most of them cannot be
        told from the plain one by eye) and what is sent instead."""
        return [(before, f"U+{ord(before):04X}", after) for before, after in self.replaced]


def cost(text: str) -> Cost:
    """What ``text`` costs as the sender will compose it, both ways.

    Marked: the look-alikes (typographic quotes, dashes, non-breaking spaces...) that alone
    would make it UCS-2 and that the sender replaces, and the characters that keep it UCS-2
    even in Latin letters (an emoji, a letter of another alphabet).
    """
    written = compose(text)
    latin = compose(text, transliterate=True)
    dear = set(latin.ucs2_characters)

    def mark(char: str) -> Mark | None:
        if char in LOOKALIKES:
            return "lookalike"
        return "ucs2" if char in dear else None

    spans = [Span("".join(run), kind) for kind, run in groupby(text, key=mark)]
    return Cost(written, latin, tuple(spans))


@dataclass(frozen=True)
class Audience:
    """Who a message would reach: one recipient per distinct phone, as ``POST /messages``."""

    recipients: list[Recipient]
    numbers: Numbers

    @property
    def count(self) -> int:
        return len(self.recipients)

    @property
    def opted_out(self) -> int:
        return sum(1 for r in self.recipients if r.opted_out)

    @property
    def reached(self) -> int:
        return self.count - self.opted_out


def audience(
    session: Session, *, groups: list[int], contacts: list[int], pasted: str, region: str
) -> Audience:
    """The recipients of these groups, contacts and pasted numbers, de-duplicated by phone.

    A group or contact the session's account does not have raises ``InvalidField`` (the API's
    422 naming ``to.groups`` / ``to.contacts``)."""
    numbers = read_numbers(pasted, region)
    if not (groups or contacts or numbers.phones):
        return Audience([], numbers)
    try:
        to = Recipients(phones=numbers.phones, contacts=contacts, groups=groups)
    except ValidationError as exc:  # past the API's bounds: 10,000 numbers...
        reason = "; ".join(
            f"{e.field}: {e.message}" for e in field_errors(Recipients, exc.errors())
        )
        raise InvalidField(reason, field="to") from None
    return Audience(resolve_recipients(session, to, region=region), numbers)


def read_when(text: str, *, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The instant a "send at" text names (None: empty, now), read as ``POST /messages``
    reads ``send_at`` given ``zone``; ``InvalidField`` naming ``send_at`` when unreadable."""
    if not text.strip():
        return None
    if len(text) > MAX_WHEN:
        raise InvalidField(f"is longer than {MAX_WHEN} characters", field="send_at")
    try:
        return parse_datetime(text, zone=zone, now=now)
    except DateParseError as exc:
        raise InvalidField(str(exc), field="send_at") from None


@dataclass(frozen=True)
class Filled:
    """A template's cost once filled in for each recipient: the fewest and the most segments,
    as written and in Latin letters, and one recipient's text as an example."""

    fewest: int
    most: int
    fewest_latin: int
    most_latin: int
    example: str
    counted: int  # recipients filled in (the first ``FILL_AT_MOST`` of them)
    everyone: int


FILL_AT_MOST: Final = 1000  # the live preview fills in this many: it answers while one types


def filled(
    session: Session, text: str, recipients: list[Recipient], *, now: datetime, limit: int
) -> Filled | None:
    """What ``text``, a template, costs for the first ``limit`` recipients (None: nobody yet);
    ``InvalidField`` naming ``text`` when it cannot be filled in, as the API refuses it."""
    some = recipients[:limit]
    if not some:
        return None
    texts = fill_template(session, text, some, now)
    written = [compose(t).segments for t in texts]
    latin = [compose(t, transliterate=True).segments for t in texts]
    return Filled(
        min(written), max(written), min(latin), max(latin), texts[0], len(some), len(recipients)
    )


@dataclass
class Draft:
    """The compose form as posted: ids already read as ids."""

    groups: list[int] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    numbers: str = ""
    text: str = ""
    transliterate: bool = False
    template: bool = False  # the text is filled in for each recipient
    sender_id: str = ""
    when: str = ""
    test_phone: str = ""
    q: str = ""
    expect: str = ""  # what the confirmation showed: "recipients:segments"

    def message(self, phones: list[str], *, zone: str, priority: Priority) -> MessageCreate:
        """The ``POST /messages`` body this draft is, to ``phones`` (pydantic's
        ``ValidationError`` when a field is refused). Words in "when" are read on ``zone``'s
        clock, the one the page echoed them on."""
        when = self.when.strip() or None
        return MessageCreate.model_validate(
            {
                "to": {"phones": phones, "contacts": self.contacts, "groups": self.groups},
                "text": self.text,
                "send_at": when,
                "timezone": zone if when else None,
                "sender_id": self.sender_id.strip() or None,
                "transliterate": self.transliterate,
                "template": self.template,
                "priority": priority,
            }
        )


# The form's field for each field of POST /messages an error names.
_FORM_FIELDS: Final = {"text": "text", "send_at": "when", "sender_id": "sender_id"}


def form_field(api_field: str | None) -> str:
    """Which field of the form an error about ``api_field`` of the message belongs beside."""
    head = (api_field or "").split(".")[0]
    return _FORM_FIELDS.get(head, "recipients")


def expectation(recipients: int, segments: int) -> str:
    return f"{recipients}:{segments}"
