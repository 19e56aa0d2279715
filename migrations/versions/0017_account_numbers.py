"""Accounts: the gateway numbers each owns (an SMS sent to one is that account's).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inbound_numbers", sa.JSON(), nullable=True))
    accounts = sa.table("accounts", sa.column("inbound_numbers", sa.JSON()))
    op.execute(accounts.update().values(inbound_numbers=[]))
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.alter_column("inbound_numbers", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("inbound_numbers")
