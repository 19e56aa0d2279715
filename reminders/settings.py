"""The one settings class, read from ``REMINDERS_*`` environment variables and ``.env``.

A bad value stops start-up with one sentence naming the variable (see ``load_settings``).
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from functools import lru_cache
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from reminders import sender_names
from reminders.durations import Offset
from reminders.sender_ids import validate_sender_id
from reminders.wall_clock import QuietHours

LINK_NAME: Final = re.compile(r"[a-z0-9]+")
ROUTED: Final = "links"  # the sender that spreads messages over ``REMINDERS_LINKS``


class SettingsError(Exception):
    """A setting is missing, malformed or contradictory; the message is one sentence."""


def _duration(minimum: timedelta, example: str) -> BeforeValidator:
    """An ISO 8601 duration (``PT2H``) of at least ``minimum``, read once into a timedelta.

    A timedelta given in code (``load_settings(late_grace=timedelta(hours=6))``) is checked
    against the same bound.
    """

    def read(value: Any) -> timedelta:
        span = Offset.parse(value).as_timedelta() if isinstance(value, str) else value
        if not isinstance(span, timedelta) or span < minimum:
            raise ValueError(f"must be a positive ISO 8601 duration such as {example}")
        return span

    return BeforeValidator(read)


def _quiet_hours(value: Any) -> QuietHours | None:
    """``21:00-08:00`` or ``off``, read once; a QuietHours (or None) given in code as it is."""
    return QuietHours.parse(value) if isinstance(value, str) else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REMINDERS_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default="sqlite:///./reminders.db",
        description="SQLAlchemy URL: SQLite by default, postgresql+psycopg://... for several.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset means single-instance mode."
    )
    redis_prefix: str = Field(
        default="reminders:", description="Prefix of this deployment's Redis keys."
    )
    sender: str = Field(
        default="outbox",
        description="Which sender delivers messages; 'links' (implied by REMINDERS_LINKS) "
        "routes them over several gateway links.",
    )
    links: str | None = Field(
        default=None,
        description="Gateway links by name, in the order routes try them (mtel,a1); each is "
        "set by REMINDERS_LINK_<NAME>_* variables (README, 'Several gateway links').",
    )
    default_region: str = Field(
        default="BG", description="Region for phone numbers written without a country code."
    )
    timezone: str = Field(
        default="Europe/Sofia", description="IANA zone used when a contact has none."
    )
    sender_id: str | None = Field(
        default=None, description="Default sender ID (alphanumeric or number)."
    )
    log_level: str = Field(default="INFO", description="Logging level.")
    quiet_hours: Annotated[QuietHours | None, BeforeValidator(_quiet_hours)] = Field(
        default=QuietHours(time(21, 0), time(8, 0)),
        description="Local hours when no reminder is sent (21:00-08:00); 'off' for none.",
    )
    late_grace: Annotated[timedelta, _duration(timedelta(seconds=1), "PT2H")] = Field(
        default=timedelta(hours=2),
        description="How late a notice may still go out after a stop (ISO 8601 duration).",
    )

    public_url: str | None = Field(
        default=None,
        description="Where gateways reach this service for delivery reports, e.g. https://sms.example.bg",
    )
    twilio_account_sid: str | None = Field(default=None, description="Twilio account SID.")
    twilio_auth_token: SecretStr | None = Field(default=None, description="Twilio auth token.")
    twilio_from: str | None = Field(default=None, description="Twilio sender number or ID.")
    twilio_messaging_service_sid: str | None = Field(
        default=None, description="Twilio Messaging Service SID (instead of twilio_from)."
    )
    opt_out_keywords: str = Field(
        default="STOP,СТОП,ОТКАЗ",
        description="Inbound words that opt a number out (comma-separated).",
    )
    opt_in_keywords: str = Field(
        default="START,СТАРТ", description="Inbound words that opt a number back in."
    )
    dlr_timeout: Annotated[timedelta, _duration(timedelta(seconds=1), "PT48H")] = Field(
        default=timedelta(hours=48),
        description="After this, a sent notice without a final report counts as 'no report'.",
    )
    send_rate: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="Messages per second for all instances together, transactional ones "
        "first; unset means as fast as the gateway takes them.",
    )
    reconcile_every: Annotated[timedelta, _duration(timedelta(seconds=1), "PT30S")] = Field(
        default=timedelta(seconds=30),
        description="How often the active scheduler marks due a notice whose time passed "
        "and whose job was lost (ISO 8601 duration).",
    )
    send_concurrency: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Requests in flight to the gateway from each process when REMINDERS_LINKS "
        "is unset (the one link, called default); each link has its own otherwise.",
    )
    send_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Threads per lane (transactional, bulk) in each serve or worker process, "
        "each sending one batch at a time.",
    )
    due_poll: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds an idle lane waits before it looks for due notices again, when "
        "no notification woke it (PostgreSQL wakes it at once).",
    )
    send_attempts: int = Field(
        default=5, ge=1, le=20, description="Tries per SMS when the gateway fails transiently."
    )
    transliterate: bool = Field(
        default=False,
        description="Write Bulgarian Cyrillic in Latin letters by default (160 a segment, not 70).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs the control panel's session cookies; without it the service makes "
        "one and keeps it in the database, shared by its processes.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Kannel's callbacks: the keys that sign each send's dlr-url and make the "
        "inbound get-url's token are derived from it; it never travels itself.",
    )
    kannel_inbound_legacy_secret: bool = Field(
        default=False,
        description="Also take inbound SMS at the old get-url that carries the webhook secret "
        "itself, while kannel.conf is being changed to the token form (logged once).",
    )
    http_sender_url: str | None = Field(
        default=None, description="The in-house gateway the http sender POSTs JSON to."
    )
    http_sender_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key the http sender signs its requests with."
    )
    kannel_url: str | None = Field(
        default=None,
        description="Kannel's sendsms URL, e.g. http://127.0.0.1:13013/cgi-bin/sendsms",
    )
    kannel_username: str | None = Field(default=None, description="Kannel sendsms user.")
    kannel_password: SecretStr | None = Field(default=None, description="Its password.")
    kannel_max_parts: int = Field(
        default=10, ge=1, le=255, description="The sendsms user's max-messages in Kannel."
    )
    api_concurrency: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="API requests worked on at once; one more is answered 503 with Retry-After "
        "at once. The API's own database pool is sized from it.",
    )
    api_streams: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Live statistics streams (GET /api/v1/stats/stream) open at once.",
    )
    horizon: Annotated[timedelta, _duration(timedelta(days=1), "P35D")] = Field(
        default=timedelta(days=35),
        description="How far ahead feeds are expanded (ISO 8601 duration).",
    )
    allow_private_feeds: bool = Field(
        default=False, description="Let feed URLs reach loopback and private networks."
    )
    allow_private_webhooks: bool = Field(
        default=False,
        description="Let webhook URLs reach loopback and private networks (a receiver on "
        "the same host or network).",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, le=60, description="Seconds a webhook endpoint has to answer."
    )
    webhook_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Threads delivering webhooks in each serve or worker process.",
    )
    webhook_batch: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Webhook deliveries a thread claims at once; a claim is held for this "
        "many timeouts, after which another process retries what a dead one had claimed.",
    )
    webhook_retention: Annotated[timedelta, _duration(timedelta(days=1), "P30D")] = Field(
        default=timedelta(days=30),
        description="How long delivered and abandoned webhook deliveries, and their attempts, "
        "are kept in the delivery log (ISO 8601 duration, at least a day).",
    )
    webhook_poll: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds an idle webhook thread waits before it looks for due deliveries.",
    )
    scheduler_stall: Annotated[timedelta, _duration(timedelta(seconds=1), "PT30S")] = Field(
        default=timedelta(seconds=30),
        description="How long the scheduler's job store may keep failing before the process "
        "reports it in /readyz and gives up the scheduler lock (ISO 8601 duration).",
    )
    feed_max_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="Largest feed accepted, in bytes."
    )

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as https://sms.example.bg")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL such as sqlite:///./reminders.db") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("must point to SQLite or PostgreSQL")
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            # Every connection would get a database of its own, empty, lost at exit.
            raise ValueError("must name a SQLite file such as sqlite:///./reminders.db")
        return value

    @field_validator("links")
    @classmethod
    def _check_links(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        names = [name.strip().lower() for name in value.split(",")]
        for name in names:
            # Letters and digits only: a name is read back out of REMINDERS_LINK_<NAME>_<KEY>,
            # where an underscore in it could not be told from the one after it.
            if not LINK_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not a link name (letters and digits, such as mtel or a1)"
                )
        if len(set(names)) != len(names):
            raise ValueError("names a link twice")
        return ",".join(names)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("default_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a two-letter region code such as BG or GB")
        return region

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Sofia") from None
        return value

    @field_validator("sender_id")
    @classmethod
    def _check_sender_id(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        return validate_sender_id(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def link_names(self) -> list[str]:
        """The links of ``REMINDERS_LINKS`` in order; none with a single sender."""
        return self.links.split(",") if self.links else []


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning pydantic's report into one sentence per bad variable."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "REMINDERS_" + str(first["loc"][0]).upper() if first["loc"] else "a setting"
        reason = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
        raise SettingsError(f"Invalid setting {name}: {reason}.") from None
    settings = _with_links(settings)
    # A built-in is found without reading every installed package's entry points (``target``
    # looks at the built-ins first), which took longer than the rest of the settings.
    if sender_names.target(settings.sender) is None:
        known = ", ".join(sorted(sender_names.available()))
        raise SettingsError(
            f"Invalid setting REMINDERS_SENDER: {settings.sender!r} is not a known sender "
            f"({known})."
        )
    return settings


def _with_links(settings: Settings) -> Settings:
    """REMINDERS_LINKS means the routed sender; a different REMINDERS_SENDER beside it is a
    contradiction, said at once rather than one of the two silently ignored."""
    if settings.links:
        if "sender" in settings.model_fields_set and settings.sender != ROUTED:
            raise SettingsError(
                f"Invalid setting REMINDERS_SENDER: {settings.sender!r} contradicts "
                "REMINDERS_LINKS; name each link's sender in REMINDERS_LINK_<NAME>_SENDER and "
                "leave REMINDERS_SENDER unset."
            )
        return settings.model_copy(update={"sender": ROUTED})
    if settings.sender == ROUTED:
        raise SettingsError(
            "Invalid setting REMINDERS_SENDER: 'links' needs REMINDERS_LINKS, the links' names."
        )
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
