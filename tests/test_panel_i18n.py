"""Every message of the control panel has its Bulgarian translation, with the same blanks."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from reminders.panel import i18n

PANEL = Path(i18n.__file__).parent
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def messages() -> dict[str, str]:
    """msgid -> where it is used, from the templates and the panel's Python. A message with
    plural forms is known by its singular (the catalogue's key)."""
    found: dict[str, str] = {}
    for filename, lineno, message, _, _ in extract_from_dir(
        PANEL,
        METHODS,
        options_map=OPTIONS,
        keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def test_the_templates_have_messages_to_translate() -> None:
    found = messages()
    assert "Sign in" in found and "Dashboard" in found, found


def test_every_message_has_a_bulgarian_translation() -> None:
    with i18n.catalogue_path("bg").open("rb") as po:
        catalog = read_po(po, locale="bg")
    missing = []
    for msgid, where in messages().items():
        entry = catalog.get(msgid)
        forms = entry.string if entry is not None and isinstance(entry.string, tuple) else None
        strings = list(forms) if forms else [entry.string if entry is not None else ""]
        if entry is None or not all(strings) or entry.fuzzy:
            missing.append(f"{where}: {msgid!r}")
            continue
        blanks = sorted(re.findall(r"%\(\w+\)s", msgid))
        for string in strings:
            assert sorted(re.findall(r"%\(\w+\)s", str(string))) == blanks, msgid
    assert not missing, "untranslated:\n" + "\n".join(missing)


def test_the_catalogue_compiles_and_is_used() -> None:
    bg = i18n.translations("bg")
    assert bg.gettext("Sign in") == "Вход"
    one, many = "Try again in %(count)s second.", "Try again in %(count)s seconds."
    prefix = "Too many failed attempts. "
    assert bg.ngettext(prefix + one, prefix + many, 1).endswith("%(count)s секунда.")
    assert bg.ngettext(prefix + one, prefix + many, 5).endswith("%(count)s секунди.")
    assert i18n.translations("en").gettext("Sign in") == "Sign in"


def test_the_browser_language_is_negotiated() -> None:
    assert i18n.negotiate("bg-BG,bg;q=0.9,en;q=0.8") == "bg"
    assert i18n.negotiate("en-GB,bg;q=0.5") == "en"
    assert i18n.negotiate("de;q=1,bg;q=0.3") == "bg"
    assert i18n.negotiate("de, fr") == "en"
    assert i18n.negotiate("bg;q=nonsense, en") == "en"
    assert i18n.negotiate(None) == "en"


def test_the_services_own_refusals_are_said_in_bulgarian() -> None:
    from reminders.errors import InvalidField
    from reminders.panel.domain_words import translator
    from reminders.phones import normalize_mobile

    bg = translator(i18n.translations("bg").gettext)
    en = translator(i18n.translations("en").gettext)
    try:
        normalize_mobile("0888 12", "BG")
    except InvalidField as exc:
        refused = exc.message
    assert bg(refused) == f"„{refused.split(chr(39))[1]}“ не е валиден телефонен номер", refused
    assert en(refused) == f"“{refused.split(chr(39))[1]}” is not a valid phone number"
    quota = (
        "the message needs 4 segments (2 per SMS to 2 recipients) and the account has 3 of its "
        "10 monthly segments left for 2026-12"
    )
    assert bg(quota) == (
        "Съобщението изисква 4 части, а на клиента са му останали 3 от месечните 10 за 2026-12"
    )
    # What is not known is shown as the service wrote it.
    assert bg("something nobody translated") == "something nobody translated"
    assert bg(42) == 42


def test_the_catalogue_says_each_message_once() -> None:
    """Two entries for one message (merged branches both added it) would leave which
    translation wins to the order of the file."""
    text = i18n.catalogue_path("bg").read_text(encoding="utf-8")
    ids = re.findall(r'^msgid (".*")$', text, re.MULTILINE)
    assert [i for i in set(ids) if ids.count(i) > 1] == []
