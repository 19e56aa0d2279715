"""Reading the gateway links from ``REMINDERS_LINKS`` and ``REMINDERS_LINK_<NAME>_*`` variables.

Each link gets a copy of the settings with its own values in place (``..._KANNEL_URL`` replaces
``kannel_url``), validated by the ``Settings`` model itself, so a bad value stops start-up with
the same one sentence a top-level setting gets, naming the link's variable. Besides the
settings, a link has keys of its own: ``SENDER`` (required), ``RATE`` (messages per second,
shared by every process through Redis when there is one), ``CONCURRENCY`` (requests in flight,
default 4), ``LANES`` (default both), ``PREFIXES`` (default: any number), and when it counts as
down: ``DOWN_AFTER`` transient failures in a row (default 3), for ``COOL_OFF`` seconds (30).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from dotenv import dotenv_values
from pydantic import ValidationError

from reminders import sender_names
from reminders.models import Priority
from reminders.settings import ROUTED, Settings, SettingsError

VARIABLE: Final = "REMINDERS_LINK_"
DEFAULT_CONCURRENCY: Final = 4
MAX_CONCURRENCY: Final = 512
PREFIX: Final = re.compile(r"\+[0-9]{1,15}")
OWN_KEYS: Final = frozenset(
    {"sender", "rate", "concurrency", "lanes", "prefixes", "down_after", "cool_off"}
)
DEFAULT_DOWN_AFTER: Final = 3  # consecutive transient failures
DEFAULT_COOL_OFF: Final = 30.0  # seconds a down link is left alone
MAX_DOWN_AFTER: Final = 1000
MAX_COOL_OFF: Final = 3600.0
# Settings of the deployment, not of a gateway: one link cannot have its own (its rate is
# ``RATE``).
NOT_PER_LINK: Final = frozenset({"links", "database_url", "redis_url", "redis_prefix", "send_rate"})


@dataclass(frozen=True)
class LinkSpec:
    """One link as configured; ``settings`` is what its sender is built from."""

    name: str
    settings: Settings
    concurrency: int
    rate: float | None
    lanes: frozenset[str]
    prefixes: tuple[str, ...]
    down_after: int = DEFAULT_DOWN_AFTER
    cool_off: float = DEFAULT_COOL_OFF

    @property
    def sender(self) -> str:
        return self.settings.sender


def link_environ() -> dict[str, str]:
    """The ``REMINDERS_LINK_*`` variables of ``.env`` and of the environment (which wins), as
    the settings read theirs: the per-link names are not fields, so pydantic skips them."""
    found: dict[str, str] = {}
    if Path(".env").is_file():
        found.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
    found.update(os.environ)
    return {k.upper(): v for k, v in found.items() if k.upper().startswith(VARIABLE)}


def read_links(settings: Settings, environ: Mapping[str, str] | None = None) -> list[LinkSpec]:
    """The links of ``settings.links`` in route order, or ``SettingsError`` naming the variable
    that is missing, unknown or wrong."""
    names = settings.link_names
    if not names:
        raise SettingsError("Invalid setting REMINDERS_LINKS: the links sender needs it.")
    values: dict[str, dict[str, str]] = {name: {} for name in names}
    source = link_environ() if environ is None else environ
    for variable, value in sorted(source.items()):
        variable = variable.upper()
        if not variable.startswith(VARIABLE):
            continue
        name, _, key = variable.removeprefix(VARIABLE).partition("_")
        if name.lower() not in values:
            raise SettingsError(
                f"Invalid setting {variable}: {name.lower()!r} is not a link of REMINDERS_LINKS "
                f"({', '.join(names)})."
            )
        key = key.lower()
        if key in NOT_PER_LINK or (key not in OWN_KEYS and key not in Settings.model_fields):
            raise SettingsError(f"Invalid setting {variable}: a link has no setting {key!r}.")
        values[name.lower()][key] = value
    links = [_link(settings, name, values[name]) for name in names]
    for lane in Priority:
        if not any(lane.value in link.lanes for link in links):
            raise SettingsError(
                f"Invalid setting REMINDERS_LINKS: no link serves the {lane.value} lane; add it "
                "to one link's REMINDERS_LINK_<NAME>_LANES."
            )
    return links


def variable_of(link: str, field: str) -> str:
    """The variable that sets ``field`` of the settings of ``link``."""
    key = "RATE" if field == "send_rate" else field.upper()
    return f"{VARIABLE}{link.upper()}_{key}"


def _link(base: Settings, name: str, values: dict[str, str]) -> LinkSpec:
    sender = values.pop("sender", "").strip().lower()
    if not sender:
        raise SettingsError(
            f"Invalid setting {variable_of(name, 'sender')}: the link {name} needs a sender, "
            "such as kannel."
        )
    if sender == ROUTED or sender_names.target(sender) is None:
        known = ", ".join(sorted(sender_names.available() - {ROUTED}))
        raise SettingsError(
            f"Invalid setting {variable_of(name, 'sender')}: {sender!r} is not a known sender "
            f"({known})."
        )
    concurrency = _concurrency(name, values.pop("concurrency", None))
    lanes = _lanes(name, values.pop("lanes", None))
    prefixes = _prefixes(name, values.pop("prefixes", None))
    down_after = _down_after(name, values.pop("down_after", None))
    cool_off = _cool_off(name, values.pop("cool_off", None))
    fields: dict[str, Any] = {**base.model_dump(), **values, "sender": sender, "links": None}
    if "rate" in values:
        fields["send_rate"] = fields.pop("rate")
    else:
        fields["send_rate"] = None  # the deployment's rate is not each link's
    try:
        settings = Settings.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "sender"
        reason = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
        raise SettingsError(f"Invalid setting {variable_of(name, field)}: {reason}.") from None
    return LinkSpec(
        name, settings, concurrency, settings.send_rate, lanes, prefixes, down_after, cool_off
    )


def _concurrency(name: str, value: str | None) -> int:
    if value is None:
        return DEFAULT_CONCURRENCY
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_CONCURRENCY:
        raise SettingsError(
            f"Invalid setting {variable_of(name, 'concurrency')}: must be a whole number of "
            f"requests in flight, 1 to {MAX_CONCURRENCY}."
        )
    return number


def _down_after(name: str, value: str | None) -> int:
    if value is None:
        return DEFAULT_DOWN_AFTER
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_DOWN_AFTER:
        raise SettingsError(
            f"Invalid setting {variable_of(name, 'down_after')}: must be a whole number of "
            f"transient failures in a row, 1 to {MAX_DOWN_AFTER}."
        )
    return number


def _cool_off(name: str, value: str | None) -> float:
    if value is None:
        return DEFAULT_COOL_OFF
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    # Not 0: a link that is never left alone is tried by every message, as if never down.
    if not 0 < seconds <= MAX_COOL_OFF:
        raise SettingsError(
            f"Invalid setting {variable_of(name, 'cool_off')}: must be seconds a down link is "
            f"left alone, above 0 and at most {MAX_COOL_OFF:g}."
        )
    return seconds


def _lanes(name: str, value: str | None) -> frozenset[str]:
    if value is None:
        return frozenset(lane.value for lane in Priority)
    lanes = {part.strip().lower() for part in value.split(",") if part.strip()}
    known = {lane.value for lane in Priority}
    if not lanes or not lanes <= known:
        # A link that serves no lane would be in no route: never used, surely a mistake.
        raise SettingsError(
            f"Invalid setting {variable_of(name, 'lanes')}: must name lanes among "
            f"{', '.join(sorted(known))}."
        )
    return frozenset(lanes)


def _prefixes(name: str, value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    prefixes = tuple(part.strip() for part in value.split(",") if part.strip())
    for prefix in prefixes:
        if not PREFIX.fullmatch(prefix):
            raise SettingsError(
                f"Invalid setting {variable_of(name, 'prefixes')}: {prefix!r} is not the start "
                "of an E.164 number such as +35988."
            )
    if not prefixes:
        raise SettingsError(
            f"Invalid setting {variable_of(name, 'prefixes')}: names no prefix; leave it unset "
            "for a link that takes any number."
        )
    return prefixes
