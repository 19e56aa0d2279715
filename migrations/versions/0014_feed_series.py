"""Feeds remember what each series read at the last sync, so a re-sync parses only changes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_series",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.Unicode(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("volatile", sa.Boolean(), nullable=False),
        sa.Column("starts", sa.Unicode(), nullable=False),
        sa.Column("keys", sa.Unicode(), nullable=False),
        sa.Column("phones", sa.Unicode(), nullable=False),
        sa.Column("emails", sa.Unicode(), nullable=False),
        sa.Column("who", sa.Unicode(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("source_id", "uid"),
    )
    # Sources synced before have no series yet: their next sync reads the whole feed.
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_basis", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("series_basis")
    op.drop_table("feed_series")
