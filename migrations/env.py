"""Alembic environment on the SQLModel metadata.

``reminders db upgrade`` passes its engine in ``config.attributes["engine"]``; plain ``alembic``
commands (for writing a new revision) read ``REMINDERS_DATABASE_URL`` like the service does.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import reminders.models  # noqa: F401  (registers the tables on the metadata)
from reminders.db import make_engine
from reminders.settings import load_settings

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = make_engine(load_settings().database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
