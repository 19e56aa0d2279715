"""Accounts: every row belongs to one; existing rows go to the account ``default``. Users.

Natural keys gain the account (two clinics may each have a contact with external id 42), and
the indexes looked up by account lead with it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables whose rows belong to an account, and whether a row may belong to none.
_OWNED = {
    "api_keys": True,  # provider keys
    "contacts": False,
    "groups": False,
    "messages": False,
    "policies": False,
    "sources": False,
    "anchors": False,
    "notices": False,
    "inbound_messages": False,
}
# Unnamed UNIQUE constraints of 0001/0002 that become unique per account: (table, column).
_UNIQUE = [
    ("contacts", "external_id"),
    ("groups", "name"),
    ("policies", "name"),
    ("anchors", "key"),
    ("notices", "key"),
]
# Names SQLite's reflection gives the unnamed constraints, so that batch mode can drop them.
_CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_NOW = sa.func.current_timestamp()


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sender_ids", sa.JSON(), nullable=False),
        sa.Column("default_sender_id", sa.String(length=16), nullable=True),
        sa.Column("rate_share", sa.Integer(), nullable=False),
        sa.Column("monthly_segments", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    accounts = sa.table(
        "accounts",
        sa.column("id", sa.Integer()),
        sa.column("slug", sa.String()),
        sa.column("name", sa.String()),
        sa.column("sender_ids", sa.JSON()),
        sa.column("rate_share", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("created_at", sa.DateTime()),
        sa.column("updated_at", sa.DateTime()),
    )
    op.execute(
        accounts.insert().values(
            slug="default",
            name="Default",
            sender_ids=[],
            rate_share=1,
            status="active",
            created_at=_NOW,
            updated_at=_NOW,
        )
    )
    default_id = sa.select(accounts.c.id).where(accounts.c.slug == "default").scalar_subquery()

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_account_id", ["account_id"], unique=False)

    for table in _OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        owned = sa.table(table, sa.column("account_id", sa.Integer()))
        op.execute(owned.update().values(account_id=default_id))

    for table, nullable in _OWNED.items():
        unique = [
            (column, _unique_name(table, column)) for name, column in _UNIQUE if name == table
        ]
        with op.batch_alter_table(table, schema=None, naming_convention=_CONVENTION) as batch_op:
            if not nullable:
                batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_foreign_key(
                f"fk_{table}_account_id", "accounts", ["account_id"], ["id"]
            )
            for _, name in unique:
                batch_op.drop_constraint(name, type_="unique")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_account_id", ["account_id"], unique=False)
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_phone")
        batch_op.drop_index("ix_contacts_name_folded")
        batch_op.create_index("ix_contacts_phone", ["account_id", "phone"], unique=False)
        batch_op.create_index(
            "ix_contacts_name_folded", ["account_id", "name_folded"], unique=False
        )
        batch_op.create_index("ux_contacts_external_id", ["account_id", "external_id"], unique=True)
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.create_index("ux_groups_name", ["account_id", "name"], unique=True)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_account_id", ["account_id", "id"], unique=False)
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.create_index("ux_policies_name", ["account_id", "name"], unique=True)
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.create_index("ix_sources_account_id", ["account_id", "id"], unique=False)
    with op.batch_alter_table("anchors", schema=None) as batch_op:
        batch_op.create_index("ux_anchors_key", ["account_id", "key"], unique=True)
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_send_at")
        batch_op.create_index("ux_notices_key", ["account_id", "key"], unique=True)
        batch_op.create_index("ix_notices_account_send_at", ["account_id", "send_at"], unique=False)
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_messages_account_id", ["account_id", "id"], unique=False)


def _unique_name(table: str, column: str) -> str:
    """The name of the UNIQUE constraint on ``table.column``, read from the database: PostgreSQL
    named 0001's itself, SQLite's have none (batch mode gives them the convention's), and a
    database that went down to 0014 and up again has the names ``downgrade`` gave them."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if constraint["column_names"] == [column]:
            return constraint["name"] or _CONVENTION["uq"] % {
                "table_name": table,
                "column_0_name": column,
            }
    raise RuntimeError(f"no UNIQUE constraint on {table}.{column} to replace")


def downgrade() -> None:
    # Only a deployment with one account can go back: the old keys are unique across rows.
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_account_id")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_account_send_at")
        batch_op.drop_index("ux_notices_key")
        batch_op.create_index("ix_notices_send_at", ["send_at"], unique=False)
    with op.batch_alter_table("anchors", schema=None) as batch_op:
        batch_op.drop_index("ux_anchors_key")
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_index("ix_sources_account_id")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_index("ux_policies_name")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_account_id")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_index("ux_groups_name")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ux_contacts_external_id")
        batch_op.drop_index("ix_contacts_name_folded")
        batch_op.drop_index("ix_contacts_phone")
        batch_op.create_index("ix_contacts_phone", ["phone"], unique=False)
        batch_op.create_index("ix_contacts_name_folded", ["name_folded"], unique=False)
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_account_id")
    for table in _OWNED:
        unique = [column for name, column in _UNIQUE if name == table]
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_account_id", type_="foreignkey")
            batch_op.drop_column("account_id")
            for column in unique:
                batch_op.create_unique_constraint(f"{table}_{column}_key", [column])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_account_id")
    op.drop_table("users")
    op.drop_table("accounts")
