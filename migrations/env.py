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
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table by copying it and dropping the old one; with foreign
            # keys enforced, that drop would null or delete every row pointing at it (a
            # notice's anchor, a group's members). The pragma only takes effect outside a
            # transaction, so it is set before the migrations' own one begins, and the keys
            # are checked once they are done.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        connection.commit()
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


run_migrations()
