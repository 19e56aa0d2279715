"""Replies to reminders: a policy's answer words and acknowledgements, each recipient's answer,
the replies read from inbound messages, and an index to find what was last sent to a phone.

The seeded ``appointment`` policy, where its steps are still the ones 0013 left, asks for an
answer: its day-before text says how to give one, in Bulgarian and in English, and a confirmed
or cancelled appointment is acknowledged. A user's edited policy is theirs and is left alone.
Its notices still to go get the new text, as re-planning them would do.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported: a migration must keep meaning what it meant when released.
_WHERE = "{% if location %}, {{ location }}{% endif %}"
TEMPLATE = (
    '{% if lang == "en" %}Reminder: {{ title }} {{ when }}' + _WHERE + ".{% else %}"
    "Напомняне: {{ title }} {{ when }}" + _WHERE + ".{% endif %}"
)
ASKING = (
    '{% if lang == "en" %}Reminder: {{ title }} {{ when }}' + _WHERE + ". Reply 1 to confirm, "
    "2 to cancel.{% else %}Напомняне: {{ title }} {{ when }}" + _WHERE + ". Отговорете 1 за "
    "потвърждение, 2 за отказ.{% endif %}"
)
OLD_STEPS = [
    {"offset": "-P1D", "at": "18:00", "template": TEMPLATE, "kind": None},
    {"offset": "-PT2H", "at": None, "template": TEMPLATE, "kind": None},
]
NEW_STEPS = [
    {"offset": "-P1D", "at": "18:00", "template": ASKING, "kind": None},
    {"offset": "-PT2H", "at": None, "template": TEMPLATE, "kind": None},
]
REPLIES = {
    "confirm": ["1", "ДА", "DA", "YES", "Y", "OK"],
    "cancel": ["2", "НЕ", "NE", "NO", "N"],
}
REPLY_ACK = {
    "confirm": '{% if lang == "en" %}Thank you, {{ title }} {{ when }} is confirmed.{% else %}'
    "Благодарим! {{ title }} {{ when }} е потвърдено.{% endif %}",
    "cancel": '{% if lang == "en" %}{{ title }} {{ when }} is cancelled. Thank you for letting '
    "us know.{% else %}{{ title }} {{ when }} е отменено. Благодарим, че ни уведомихте."
    "{% endif %}",
}

_policies = sa.table(
    "policies",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("steps", sa.JSON),
    sa.column("replies", sa.JSON(none_as_null=True)),
    sa.column("reply_ack", sa.JSON(none_as_null=True)),
    sa.column("updated_at", sa.DateTime),
)
_anchors = sa.table(
    "anchors",
    sa.column("id", sa.Integer),
    sa.column("account_id", sa.Integer),
    sa.column("policy", sa.String),
)
_notices = sa.table(
    "notices",
    sa.column("anchor_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("is_template", sa.Boolean),
    sa.column("step", sa.Integer),
    sa.column("text", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("replies", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("reply_ack", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("anchor_recipients") as batch:
        batch.add_column(sa.Column("answer", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("answered_at", sa.DateTime(), nullable=True))
    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column(
            "inbound_id",
            sa.Integer(),
            sa.ForeignKey("inbound_messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("notice_id", sa.Integer(), sa.ForeignKey("notices.id", ondelete="SET NULL")),
        sa.Column("anchor_id", sa.Integer(), sa.ForeignKey("anchors.id", ondelete="SET NULL")),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("handled", sa.Boolean(), nullable=False),
        sa.Column("handled_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ux_replies_inbound_id", "replies", ["inbound_id"], unique=True)
    op.create_index("ix_replies_account_state", "replies", ["account_id", "state", "id"])
    op.create_index("ix_notices_phone_sent_at", "notices", ["phone", "sent_at"])
    for policy_id, account_id in _seeded(OLD_STEPS):
        _set(policy_id, NEW_STEPS, REPLIES, REPLY_ACK)
        _retext(account_id, TEMPLATE, ASKING, step=0)


def downgrade() -> None:
    for policy_id, account_id in _seeded(NEW_STEPS):
        _set(policy_id, OLD_STEPS, None, None)
        _retext(account_id, ASKING, TEMPLATE, step=0)
    op.drop_index("ix_notices_phone_sent_at", table_name="notices")
    op.drop_index("ix_replies_account_state", table_name="replies")
    op.drop_index("ux_replies_inbound_id", table_name="replies")
    op.drop_table("replies")
    with op.batch_alter_table("anchor_recipients") as batch:
        batch.drop_column("answered_at")
        batch.drop_column("answer")
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("reply_ack")
        batch.drop_column("replies")


def _seeded(steps: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(id, account) of every account's ``appointment`` policy whose steps are exactly ``steps``."""
    # Compared in Python: PostgreSQL's json type has no equality operator.
    rows = op.get_bind().execute(
        sa.text("SELECT id, account_id, steps FROM policies WHERE name = 'appointment'")
    )
    found = []
    for policy_id, account_id, raw in rows:
        if (json.loads(raw) if isinstance(raw, str) else raw) == steps:
            found.append((policy_id, account_id))
    return found


def _set(
    policy_id: int,
    steps: list[dict[str, Any]],
    replies: dict[str, Any] | None,
    reply_ack: dict[str, Any] | None,
) -> None:
    op.get_bind().execute(
        _policies.update()
        .where(_policies.c.id == policy_id)
        .values(
            steps=steps,
            replies=replies,
            reply_ack=reply_ack,
            updated_at=datetime.now(UTC).replace(tzinfo=None),
        )
    )


def _retext(account_id: int, old: str, new: str, step: int) -> None:
    """The account's appointment notices still to go: the text their policy now has."""
    appointments = sa.select(_anchors.c.id).where(
        _anchors.c.policy == "appointment", _anchors.c.account_id == account_id
    )
    op.get_bind().execute(
        _notices.update()
        .where(
            _notices.c.status.in_(("scheduled", "due")),
            _notices.c.is_template.is_(True),
            _notices.c.step == step,
            _notices.c.text == old,
            _notices.c.anchor_id.in_(appointments),
        )
        .values(text=new)
    )
