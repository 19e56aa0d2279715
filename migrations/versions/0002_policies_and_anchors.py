"""Reminder policies (with the two defaults), anchors and their recipients; notices gain steps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_WHERE = "{% if location %}, {{ location }}{% endif %}"
APPOINTMENT_DAY_BEFORE = (
    '{% if lang == "en" %}Reminder: {{ title }} tomorrow at {{ time }}' + _WHERE + ".{% else %}"
    "Напомняне: {{ title }} утре в {{ time }} ч." + _WHERE + "{% endif %}"
)
APPOINTMENT_SAME_DAY = (
    '{% if lang == "en" %}Reminder: {{ title }} today at {{ time }}' + _WHERE + ".{% else %}"
    "Напомняне: {{ title }} днес в {{ time }} ч." + _WHERE + "{% endif %}"
)
_BILL = "{{ title }}{% if amount %} ({{ amount }} {{ currency }}){% endif %}"
BILL_SOON = (
    '{% if lang == "en" %}'
    + _BILL
    + " is due on {{ date }}.{% else %}"
    + _BILL
    + " е с падеж {{ date }}.{% endif %}"
)
BILL_TODAY = (
    '{% if lang == "en" %}'
    + _BILL
    + " is due today.{% else %}"
    + _BILL
    + " е с падеж днес.{% endif %}"
)
BILL_OVERDUE = (
    '{% if lang == "en" %}'
    + _BILL
    + " was due on {{ date }} and is still unpaid.{% else %}"
    + _BILL
    + " беше с падеж {{ date }} и все още не е платена.{% endif %}"
)
DEFAULT_POLICIES = [
    (
        "appointment",
        "The day before at 18:00, and 2 hours before.",
        [
            {"offset": "-P1D", "at": "18:00", "template": APPOINTMENT_DAY_BEFORE, "kind": None},
            {"offset": "-PT2H", "at": None, "template": APPOINTMENT_SAME_DAY, "kind": None},
        ],
    ),
    (
        "bill",
        "3 days before and on the due day at 10:00; overdue notices 3 and 10 days after.",
        [
            {"offset": "-P3D", "at": "10:00", "template": BILL_SOON, "kind": "bill_due"},
            {"offset": "P0D", "at": "10:00", "template": BILL_TODAY, "kind": "bill_due"},
            {"offset": "P3D", "at": "10:00", "template": BILL_OVERDUE, "kind": "bill_overdue"},
            {"offset": "P10D", "at": "10:00", "template": BILL_OVERDUE, "kind": "bill_overdue"},
        ],
    ),
]


def upgrade() -> None:
    op.create_table(
        "anchors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "anchor_recipients",
        sa.Column("anchor_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["anchor_id"], ["anchors.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("anchor_id", "phone"),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("anchor_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("step", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("is_template", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_notices_anchor_id", ["anchor_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_notices_anchor_id_anchors", "anchors", ["anchor_id"], ["id"], ondelete="SET NULL"
        )

    policies = sa.table(
        "policies",
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("steps", sa.JSON),
        sa.column("created_at", sa.DateTime),
        sa.column("updated_at", sa.DateTime),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(
        policies,
        [
            {
                "name": name,
                "description": description,
                "steps": steps,
                "created_at": now,
                "updated_at": now,
            }
            for name, description, steps in DEFAULT_POLICIES
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_constraint("fk_notices_anchor_id_anchors", type_="foreignkey")
        batch_op.drop_index("ix_notices_anchor_id")
        batch_op.drop_column("is_template")
        batch_op.drop_column("step")
        batch_op.drop_column("anchor_id")

    op.drop_table("anchor_recipients")
    op.drop_table("policies")
    op.drop_table("anchors")
