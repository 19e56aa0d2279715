"""The seeded `appointment` texts say when with `{{ when }}`, true on the day they are sent.

The old texts said "днес"/"today" in the 2-hours-before step, also when quiet hours moved it to
the evening before, and "в  ч." for an all-day event. Only a policy whose steps are still the
seeded ones is changed: a user's edit is theirs. Its notices still to go that carry an old text
get the new one, as re-planning them would do.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported: a migration must keep meaning what it meant when released.
_WHERE = "{% if location %}, {{ location }}{% endif %}"
OLD_DAY_BEFORE = (
    '{% if lang == "en" %}Reminder: {{ title }} tomorrow at {{ time }}' + _WHERE + ".{% else %}"
    "Напомняне: {{ title }} утре в {{ time }} ч." + _WHERE + "{% endif %}"
)
OLD_SAME_DAY = (
    '{% if lang == "en" %}Reminder: {{ title }} today at {{ time }}' + _WHERE + ".{% else %}"
    "Напомняне: {{ title }} днес в {{ time }} ч." + _WHERE + "{% endif %}"
)
NEW_TEMPLATE = (
    '{% if lang == "en" %}Reminder: {{ title }} {{ when }}' + _WHERE + ".{% else %}"
    "Напомняне: {{ title }} {{ when }}" + _WHERE + ".{% endif %}"
)
OLD_STEPS = [
    {"offset": "-P1D", "at": "18:00", "template": OLD_DAY_BEFORE, "kind": None},
    {"offset": "-PT2H", "at": None, "template": OLD_SAME_DAY, "kind": None},
]
NEW_STEPS = [
    {"offset": "-P1D", "at": "18:00", "template": NEW_TEMPLATE, "kind": None},
    {"offset": "-PT2H", "at": None, "template": NEW_TEMPLATE, "kind": None},
]

_policies = sa.table(
    "policies",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("steps", sa.JSON),
    sa.column("updated_at", sa.DateTime),
)
_anchors = sa.table("anchors", sa.column("id", sa.Integer), sa.column("policy", sa.String))
_notices = sa.table(
    "notices",
    sa.column("anchor_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("is_template", sa.Boolean),
    sa.column("step", sa.Integer),
    sa.column("text", sa.String),
)


def _replace(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    """Give the appointment policy the ``new`` steps if it has exactly the ``old`` ones."""
    # Compared in Python: PostgreSQL's json type has no equality operator.
    conn = op.get_bind()
    row = conn.execute(
        sa.select(_policies.c.id, _policies.c.steps).where(_policies.c.name == "appointment")
    ).first()
    if row is None:
        return False
    steps = json.loads(row.steps) if isinstance(row.steps, str) else row.steps
    if steps != old:
        return False
    conn.execute(
        _policies.update()
        .where(_policies.c.id == row.id)
        .values(steps=new, updated_at=datetime.now(UTC).replace(tzinfo=None))
    )
    return True


def _retext(old: str, new: str, step: int) -> None:
    """The appointment notices still to go: the text their policy now has."""
    appointments = sa.select(_anchors.c.id).where(_anchors.c.policy == "appointment")
    op.get_bind().execute(
        _notices.update()
        .where(
            _notices.c.status == "scheduled",
            _notices.c.is_template.is_(True),
            _notices.c.step == step,
            _notices.c.text == old,
            _notices.c.anchor_id.in_(appointments),
        )
        .values(text=new)
    )


def upgrade() -> None:
    if _replace(OLD_STEPS, NEW_STEPS):
        _retext(OLD_DAY_BEFORE, NEW_TEMPLATE, step=0)
        _retext(OLD_SAME_DAY, NEW_TEMPLATE, step=1)


def downgrade() -> None:
    if _replace(NEW_STEPS, OLD_STEPS):
        _retext(NEW_TEMPLATE, OLD_DAY_BEFORE, step=0)
        _retext(NEW_TEMPLATE, OLD_SAME_DAY, step=1)
