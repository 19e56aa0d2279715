"""Notices: the indexes by message, contact and event carry the account as a second column.

A scoped look-up (``anchor_id IN (…) AND account_id = ?``) then matches both columns of one
index; with the parent alone, SQLite's planner (which has no statistics on a young database)
took an index that leads with the account and read all of that account's notices.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARENTS = ("message_id", "contact_id", "anchor_id")


def upgrade() -> None:
    for parent in PARENTS:
        op.drop_index(f"ix_notices_{parent}", table_name="notices")
        op.create_index(f"ix_notices_{parent}", "notices", [parent, "account_id"])


def downgrade() -> None:
    for parent in PARENTS:
        op.drop_index(f"ix_notices_{parent}", table_name="notices")
        op.create_index(f"ix_notices_{parent}", "notices", [parent])
