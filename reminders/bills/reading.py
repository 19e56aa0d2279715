"""Bills as the API shows them: one, a page of them, each with its notices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Literal

from sqlmodel import Session, col, select

from reminders.bills.rules import KEY_PREFIX
from reminders.bills.schemas import BillOut
from reminders.db import in_chunks
from reminders.errors import NotFound
from reminders.models import Anchor, AnchorKind, AnchorRecipient
from reminders.notices import notices_by_anchor
from reminders.paging import page
from reminders.schemas.notices import NoticeOut


def get_bill(session: Session, bill_id: int) -> Anchor:
    anchor = session.get(Anchor, bill_id)
    if anchor is None or anchor.kind != AnchorKind.bill:
        raise NotFound(f"no bill with id {bill_id}", field="id")
    return anchor


def list_bills(
    session: Session,
    *,
    external_id: str | None = None,
    contact_id: int | None = None,
    status: Literal["paid", "unpaid"] | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Anchor], str | None]:
    query = select(Anchor).where(Anchor.kind == AnchorKind.bill)
    if external_id is not None:
        query = query.where(Anchor.key == KEY_PREFIX + external_id)
    if contact_id is not None:
        of_contact = select(AnchorRecipient.anchor_id).where(
            AnchorRecipient.contact_id == contact_id
        )
        query = query.where(col(Anchor.id).in_(of_contact))
    if status is not None:
        # A paid bill is a cancelled anchor: paying it is the only way a bill is cancelled.
        query = query.where(col(Anchor.cancelled) == (status == "paid"))
    return page(session, query, Anchor.id, limit=limit, cursor=cursor)


def bill_out(session: Session, anchor: Anchor, *, created: bool = False) -> BillOut:
    [out] = bills_out(session, [anchor])
    return out.model_copy(update={"created": created})


def bills_out(session: Session, anchors: Sequence[Anchor]) -> list[BillOut]:
    """Bills as the API shows them, with their notices: two queries for the lot."""
    ids = [anchor.id for anchor in anchors if anchor.id is not None]
    notices = notices_by_anchor(session, ids)
    customers: dict[int, int | None] = {}
    for chunk in in_chunks(ids):
        for anchor_id, contact_id in session.exec(
            select(AnchorRecipient.anchor_id, AnchorRecipient.contact_id).where(
                col(AnchorRecipient.anchor_id).in_(chunk)
            )
        ):
            customers.setdefault(anchor_id, contact_id)
    out = []
    for anchor in anchors:
        assert anchor.id is not None
        data = anchor.data
        out.append(
            BillOut(
                id=anchor.id,
                external_id=anchor.key.removeprefix(KEY_PREFIX),
                contact_id=customers.get(anchor.id),
                title=anchor.title,
                amount=data.get("amount", ""),
                currency=data.get("currency", ""),
                due=date.fromisoformat(data["due"]),
                reference=data.get("reference"),
                policy=anchor.policy,
                paid=anchor.cancelled,
                created=False,
                notices=[
                    NoticeOut.model_validate(n, from_attributes=True) for n in notices[anchor.id]
                ],
            )
        )
    return out
