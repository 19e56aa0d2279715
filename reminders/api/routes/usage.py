"""Usage: what each account used in a month, as JSON and as CSV (what a provider bills from)."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from reminders.accounts import crud
from reminders.accounts.months import Month
from reminders.accounts.usage import CSV_COLUMNS, AccountUsage, Tally, csv_rows, usage
from reminders.api.deps import CallerDep, ReadKey, SettingsDep, UnscopedSessionDep
from reminders.api.gate import Caller
from reminders.db import utcnow
from reminders.errors import InvalidField
from reminders.models import Account
from reminders.schemas.usage import AccountUsageOut, TallyOut, UsageOut, UsageRowOut
from reminders.settings import Settings

router = APIRouter(tags=["usage"])
MonthQuery = Annotated[
    str | None,
    Query(max_length=20, description="YYYY-MM on REMINDERS_TIMEZONE's clock; default this month."),
]


def _month(text: str | None, settings: Settings) -> Month:
    if text is None:
        return Month.of(utcnow(), settings.zone)
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise InvalidField(str(exc), field="month") from None


def _accounts(session: Session, caller: Caller) -> list[Account]:
    """The caller's account; for a provider key that names none, every account."""
    if caller.account is not None:
        return [caller.account]
    return sorted(crud.list_accounts(session), key=lambda a: a.slug)


def _tally(tally: Tally) -> TallyOut:
    return TallyOut(messages=tally.messages, segments=tally.segments)


def _out(entry: AccountUsage) -> AccountUsageOut:
    total = entry.total
    return AccountUsageOut(
        account=entry.slug,
        name=entry.name,
        messages=total.messages,
        segments=total.segments,
        received=entry.received,
        monthly_segments=entry.monthly_segments,
        segments_left=entry.segments_left,
        by_status={k: _tally(t) for k, t in entry.by(0).items()},
        by_lane={k: _tally(t) for k, t in entry.by(1).items()},
        rows=[
            UsageRowOut(status=status, lane=lane, messages=t.messages, segments=t.segments)
            for (status, lane), t in sorted(entry.cells.items())
        ],
    )


@router.get("/usage")
def get_usage(
    session: UnscopedSessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    _: ReadKey,
    month: MonthQuery = None,
) -> UsageOut:
    """Messages and segments by status and lane, and messages received, in a month: the
    caller's account, or for a provider key every account (one, with `Reminders-Account`)."""
    wanted = _month(month, settings)
    start, end = wanted.bounds(settings.zone)
    entries = usage(session, _accounts(session, caller), wanted, settings.zone)
    return UsageOut(
        month=str(wanted),
        timezone=settings.timezone,
        start=start.astimezone(settings.zone),
        end=end.astimezone(settings.zone),
        accounts=[_out(e) for e in entries],
    )


@router.get("/reports/usage.csv", response_class=StreamingResponse)
def usage_csv(
    session: UnscopedSessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    _: ReadKey,
    month: MonthQuery = None,
) -> StreamingResponse:
    """The same as CSV: one row per account, status and lane, and one of messages received."""
    wanted = _month(month, settings)
    entries = usage(session, _accounts(session, caller), wanted, settings.zone)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(wanted, entries))
    return StreamingResponse(
        iter([buffer.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="usage-{wanted}.csv"'},
    )
