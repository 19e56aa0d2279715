"""Bills: due dates pushed by billing systems, one by one or in batches."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from reminders import bills
from reminders.api.deps import ReadKey, SchedulerDep, SessionDep, SettingsDep, WriteKey
from reminders.api.routes.common import DEFAULT_PAGE, Cursor, IdPath, Limit
from reminders.bills import BatchIn, BatchOut, BillIn, BillOut, PaymentFailedIn
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.common import ExternalId, Id, Page
from reminders.schemas.notices import NoticeOut

router = APIRouter(prefix="/bills", tags=["bills"])


@router.post("", status_code=201, responses={200: {"description": "An existing bill, updated."}})
def upsert_bill(
    data: BillIn,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    _: WriteKey,
) -> BillOut:
    """Create the bill (201), or update the one with this external_id and re-plan it (200)."""
    result = bills.upsert_bill(session, scheduler, data, settings=settings)
    commit_and_schedule(session)
    if not result.created:
        response.status_code = 200
    return bills.bill_out(session, result.anchor, created=result.created)


@router.post("/batch")
def upsert_batch(
    data: BatchIn,
    session: SessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    _: WriteKey,
) -> BatchOut:
    """Up to 10,000 bills; each row is created, updated or refused with its reasons."""
    out = bills.upsert_many(session, scheduler, data.bills, settings=settings)
    commit_and_schedule(session)
    return out


@router.get("")
def list_bills(
    session: SessionDep,
    _: ReadKey,
    external_id: Annotated[
        ExternalId | None, Query(description="The billing system's id of the bill.")
    ] = None,
    contact_id: Annotated[Id | None, Query(description="Bills of this customer.")] = None,
    status: Annotated[Literal["paid", "unpaid"] | None, Query()] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Page[BillOut]:
    """Bills, oldest first, each with its notices."""
    rows, next_cursor = bills.list_bills(
        session,
        external_id=external_id,
        contact_id=contact_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return Page[BillOut](items=bills.bills_out(session, rows), next_cursor=next_cursor)


@router.get("/{bill_id}")
def get_bill(bill_id: IdPath, session: SessionDep, _: ReadKey) -> BillOut:
    return bills.bill_out(session, bills.get_bill(session, bill_id))


@router.post("/{bill_id}/paid")
def mark_paid(
    bill_id: IdPath, session: SessionDep, scheduler: SchedulerDep, _: WriteKey
) -> BillOut:
    """The bill was paid: every notice of it that has not gone out is cancelled."""
    anchor = bills.mark_paid(session, scheduler, bill_id)
    commit_and_schedule(session)
    return bills.bill_out(session, anchor)


@router.post("/{bill_id}/payment-failed", status_code=201)
def payment_failed(
    bill_id: IdPath,
    session: SessionDep,
    scheduler: SchedulerDep,
    _: WriteKey,
    data: PaymentFailedIn | None = None,
) -> NoticeOut:
    """Send the customer an immediate, transactional notice that the payment was refused.

    A paid bill is refused (409)."""
    reason = data.reason if data is not None else None
    notice = bills.payment_failed(session, scheduler, bill_id, reason=reason)
    commit_and_schedule(session)
    return NoticeOut.model_validate(notice, from_attributes=True)
