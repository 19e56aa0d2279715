"""Events about notices: what became of each one, with the ids its customer knows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, RowMapping

from reminders.db import in_chunks
from reminders.models import BILL_KEY_PREFIX as BILL_KEY
from reminders.models import EVENT_KEY_PREFIX as EVENT_KEY
from reminders.models import Anchor, AnchorKind, Contact, Notice
from reminders.webhooks.events import NOTICE_EVENTS, iso
from reminders.webhooks.outbox import SUBSCRIPTIONS, Event, enqueue

_N = Notice.__table__.c  # type: ignore[attr-defined]
_A = Anchor.__table__.c  # type: ignore[attr-defined]
_C = Contact.__table__.c  # type: ignore[attr-defined]
# A reason is the customer's business only when something went wrong.
_WITH_ERROR = {"undelivered", "failed", "expired", "suppressed"}


def notice_events(conn: Connection, changed: Mapping[int, tuple[int, str]], at: datetime) -> int:
    """Write the events of notices that reached a status that is one: ``changed`` maps each
    notice id to (its account, its new status). In ``conn``'s transaction, after the notices
    were updated in it. Costs nothing when no account concerned has an endpoint."""
    typed = {i: (a, NOTICE_EVENTS[s]) for i, (a, s) in changed.items() if s in NOTICE_EVENTS}
    if not typed:
        return 0
    wanted = SUBSCRIPTIONS.wanted(conn, {account_id for account_id, _ in typed.values()})
    ids = [
        i
        for i, (a, t) in typed.items()
        if a in wanted and ("*" in wanted[a] or t.value in wanted[a])
    ]
    if not ids:
        return 0
    events: list[Event] = []
    for chunk in in_chunks(sorted(ids)):
        query = (
            select(
                _N.id,
                _N.account_id,
                _N.kind,
                _N.status,
                _N.status_reason,
                _N.phone,
                _N.step,
                _N.message_id,
                _N.anchor_id,
                _N.contact_id,
                _N.send_at,
                _N.sent_at,
                _A.kind.label("anchor_kind"),
                _A.key.label("anchor_key"),
                _C.external_id.label("contact_external_id"),
            )
            .select_from(Notice.__table__)  # type: ignore[attr-defined]
            .outerjoin(Anchor.__table__, _A.id == _N.anchor_id)  # type: ignore[attr-defined]
            .outerjoin(Contact.__table__, _C.id == _N.contact_id)  # type: ignore[attr-defined]
            .where(_N.id.in_(chunk))
        )
        for row in conn.execute(query).mappings():
            event_type = typed[int(row["id"])][1]
            events.append(Event(int(row["account_id"]), event_type, notice_data(row), at))
    return enqueue(conn, events)


def notice_data(row: RowMapping) -> dict[str, Any]:
    """A notice's ``data``: the ids of what it is about, and what became of it."""
    status = str(row["status"])
    data: dict[str, Any] = {
        "notice_id": row["id"],
        "kind": row["kind"],
        "status": status,
        "error": row["status_reason"] if status in _WITH_ERROR else None,
        "phone": row["phone"],
        "send_at": iso(row["send_at"]),
        "sent_at": iso(row["sent_at"]),
        "message_id": row["message_id"],
        "contact_id": row["contact_id"],
        "contact_external_id": row["contact_external_id"],
    }
    key = row["anchor_key"] or ""
    if row["anchor_kind"] == AnchorKind.bill:
        data["bill_id"] = row["anchor_id"]
        data["bill_external_id"] = key.removeprefix(BILL_KEY) if key.startswith(BILL_KEY) else None
    elif row["anchor_id"] is not None:
        data["event_id"] = row["anchor_id"]
        data["event_external_id"] = (
            key.removeprefix(EVENT_KEY) if key.startswith(EVENT_KEY) else None
        )
        data["step"] = row["step"]
    return data
