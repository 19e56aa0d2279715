"""The work queue: notices whose time has come wait ``due`` for any sending process to claim.

Two partial indexes hold only the ``due`` rows: however many notices are scheduled, a claim
reads a small index (by lane and send time, and by lane, account and send time for the bulk
lane's turns between accounts).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DUE = sa.text("status = 'due'")


def upgrade() -> None:
    op.create_index(
        "ix_notices_due_lane",
        "notices",
        ["priority", "send_at", "id"],
        postgresql_where=_DUE,
        sqlite_where=_DUE,
    )
    op.create_index(
        "ix_notices_due_account",
        "notices",
        ["priority", "account_id", "send_at", "id"],
        postgresql_where=_DUE,
        sqlite_where=_DUE,
    )


def downgrade() -> None:
    # A notice left due goes back to scheduled: the scheduler's periodic check marks it due
    # again only where the code knows the state.
    op.execute("UPDATE notices SET status = 'scheduled' WHERE status = 'due'")
    op.drop_index("ix_notices_due_account", table_name="notices")
    op.drop_index("ix_notices_due_lane", table_name="notices")
