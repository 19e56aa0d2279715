"""The service's own refusals in the viewer's language.

The domain (and the API) words what it refuses in English: "'0888' is not a valid phone
number". The panel shows those sentences beside the field; on a Bulgarian page the common ones
are said in Bulgarian. Each is matched by its shape, its values taken out, and said again from
the catalogue (``_`` marks the English sentence, as everywhere in the panel), so a translator
sees them in ``panel.po`` with the rest. A sentence with no match here is shown as the service
wrote it: rare refusals in English are better than none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from reminders.panel.said import Said, _

# The domain's sentence (a regular expression with the values as named groups) -> the panel's.
PHRASES: Final[tuple[tuple[re.Pattern[str], Said], ...]] = tuple(
    (re.compile(pattern + r"\Z", re.DOTALL), said)
    for pattern, said in (
        (
            r"'(?P<value>.*)' is not a valid phone number",
            _("“%(value)s” is not a valid phone number"),
        ),
        (r"'(?P<value>.*)' is not a phone number", _("“%(value)s” is not a phone number")),
        (
            r"'(?P<value>.*)' is not a mobile number, so it cannot receive SMS",
            _("“%(value)s” is not a mobile number, so it cannot receive SMS"),
        ),
        (r"'(?P<value>.*)' is not an email address", _("“%(value)s” is not an email address")),
        (
            r"'(?P<value>.*)' is not an IANA time zone such as Europe/Sofia",
            _("“%(value)s” is not a time zone such as Europe/Sofia"),
        ),
        (
            r"a user with the email '(?P<value>.*)' already exists",
            _("A user with the email “%(value)s” already exists"),
        ),
        (
            r"a policy named '(?P<value>.*)' already exists",
            _("A policy named “%(value)s” already exists"),
        ),
        (r"external_id is already in use", _("This external id is already in use")),
        (
            r"is in the past; leave it out to send now",
            _("is in the past; leave it empty to send now"),
        ),
        (
            r"'(?P<value>.*)' is not one of the account's sender IDs: (?P<allowed>.*)",
            _("“%(value)s” is not one of the account's sender IDs: %(allowed)s"),
        ),
        (
            r"a password needs at least (?P<count>\d+) characters",
            _("A password needs at least %(count)s characters"),
        ),
        (
            r"the message needs (?P<needed>\d+) segments? .* and the account has (?P<left>\d+)"
            r" of its (?P<quota>\d+) monthly segments left for (?P<month>.*)",
            _(
                "The message needs %(needed)s segments and the account has %(left)s of its "
                "%(quota)s monthly segments left for %(month)s"
            ),
        ),
        (
            r"unknown names? (?P<names>.*); a template can use (?P<allowed>.*)",
            _("Unknown names: %(names)s. A template can use %(allowed)s"),
        ),
        (
            r"'(?P<value>.*)' does not name a day; write e\.g\. '15\.12\.2026'",
            _("“%(value)s” does not name a day; write e.g. 15.12.2026"),
        ),
        (r"the groups named have no members", _("The groups chosen have no members")),
        (r"may not be null", _("is required")),
    )
)


def said_for(text: str) -> Said | None:
    """The panel's sentence for one of the service's, with its values; None when unknown."""
    for pattern, said in PHRASES:
        found = pattern.match(text)
        if found:
            return Said(said.msgid, {**found.groupdict()})
    return None


def translator(gettext: Callable[[str], str]) -> Callable[[object], object]:
    """A Jinja filter: one of the service's sentences said through ``gettext``."""

    def in_language(text: object) -> object:
        if not isinstance(text, str):
            return text
        said = said_for(text)
        if said is None:
            return text
        return gettext(said.msgid) % said.params

    return in_language


def params_translator(
    gettext: Callable[[str], str],
) -> Callable[[Mapping[str, object]], dict[str, object]]:
    """A Jinja filter: a Said's values, each of the service's sentences among them said too."""
    one = translator(gettext)

    def in_language(params: Mapping[str, object]) -> dict[str, object]:
        return {name: one(value) for name, value in params.items()}

    return in_language
