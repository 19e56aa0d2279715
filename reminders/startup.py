"""What every command needs before it does anything: logging set up, and a database that
answers with its schema up to date, or one sentence saying why not.

Kept apart from ``process.py``, which builds the web app and the scheduler: a command such as
``reminders users create`` needs neither, and importing them costs a CLI call seconds.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError

from reminders.db import make_engine
from reminders.migrate import ensure_schema
from reminders.redaction import REDACT_SECRETS
from reminders.settings import Settings


class StartupError(Exception):
    """The process cannot start; the message is one sentence for the operator."""


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(name).addFilter(REDACT_SECRETS)
    # APScheduler logs every job it adds and runs at INFO: one line per notice is noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # httpx logs each request's URL at INFO, and a gateway's URL holds the recipient's number
    # and the text of the SMS: personal data, one line per message.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def connect(settings: Settings) -> Engine:
    """An engine whose database answers, or ``StartupError`` saying why not."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            encoding = _server_encoding(conn)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StartupError(
            f"Cannot open the database {redacted(settings.database_url)}: {reason}"
        ) from None
    if encoding not in (None, "UTF8"):
        engine.dispose()
        # Names, texts and replies are Bulgarian as often as not: SQL_ASCII would store the
        # bytes but neither compare nor search them, and LATIN1 cannot hold them at all.
        raise StartupError(
            f"The database {redacted(settings.database_url)} uses the encoding {encoding}; "
            "reminders needs UTF8: CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0"
        )
    return engine


def _server_encoding(conn: Connection) -> str | None:
    """PostgreSQL's encoding of the database (None on SQLite, whose text is always Unicode)."""
    if conn.dialect.name != "postgresql":
        return None
    return str(conn.execute(text("SHOW server_encoding")).scalar_one())


def open_database(settings: Settings) -> Engine:
    """Connect and bring the schema up to date, or raise saying why not."""
    engine = connect(settings)
    ensure_schema(engine)
    return engine
