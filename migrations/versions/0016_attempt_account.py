"""Attempts carry their notice's account, so that an account's segments in a month (its quota,
its usage report) are counted from one index.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
    attempts = sa.table(
        "attempts", sa.column("account_id", sa.Integer()), sa.column("notice_id", sa.Integer())
    )
    notices = sa.table(
        "notices", sa.column("id", sa.Integer()), sa.column("account_id", sa.Integer())
    )
    op.execute(
        attempts.update().values(
            account_id=sa.select(notices.c.account_id)
            .where(notices.c.id == attempts.c.notice_id)
            .scalar_subquery()
        )
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key("fk_attempts_account_id", "accounts", ["account_id"], ["id"])
        batch_op.create_index(
            "ix_attempts_account_submitted_at", ["account_id", "submitted_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_attempts_account_submitted_at")
        batch_op.drop_constraint("fk_attempts_account_id", type_="foreignkey")
        batch_op.drop_column("account_id")
