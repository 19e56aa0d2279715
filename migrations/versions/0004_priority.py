"""Messages and notices carry a priority: transactional or bulk.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("messages", "notices"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("priority", sa.String(length=13), nullable=False, server_default="bulk")
            )


def downgrade() -> None:
    for table in ("messages", "notices"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("priority")
