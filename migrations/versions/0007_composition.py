"""Attempts record segments and encoding; notices and policies may be transliterated.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("segments", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("encoding", sa.String(length=5), nullable=True))
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("transliterate", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transliterate", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_column("transliterate")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_column("transliterate")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("encoding")
        batch_op.drop_column("segments")
