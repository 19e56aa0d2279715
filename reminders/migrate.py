"""Applying the Alembic migrations from code (``reminders db upgrade`` and ``serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine


def _migrations_dir() -> Path:
    # Installed from the wheel they are reminders/migrations; in a checkout (an editable install
    # too) they are the repository's top-level migrations/.
    package = Path(__file__).resolve().parent
    for candidate in (package / "migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError(f"the migrations are missing beside {package}: reinstall reminders")


MIGRATIONS_DIR = _migrations_dir()


class SchemaError(Exception):
    """The database schema is not one this version can run on; the message says what to do."""


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_script_config()).get_current_head()


def _script_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    command.upgrade(alembic_config(engine), "head")


def ensure_schema(engine: Engine) -> str:
    """What ``serve`` does at start: migrate an empty database, refuse an outdated PostgreSQL one.

    SQLite is the single-machine default, so it is brought up to date on the spot; a shared
    PostgreSQL is migrated on purpose with ``reminders db upgrade`` so that several instances
    never race to alter it.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return "current"
    empty = not inspect(engine).get_table_names()
    if empty or engine.dialect.name == "sqlite":
        upgrade(engine)
        return "created" if empty else "upgraded"
    raise SchemaError(
        f"The database schema is at revision {current or 'none'} but this version needs {head}: "
        "run `reminders db upgrade` first."
    )
