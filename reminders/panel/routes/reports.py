"""Reports: the account's usage in a month, by status and lane and day by day, and the CSV
that ``GET /api/v1/reports/usage.csv`` gives (the same function, the same columns)."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from reminders.accounts.months import Month
from reminders.accounts.usage import (
    CSV_COLUMNS,
    AccountUsage,
    DayUsage,
    csv_rows,
    usage,
    usage_by_day,
)
from reminders.db import utcnow
from reminders.panel.calendar import DayNames
from reminders.panel.pages import Reader, account_session, render, state_of

router = APIRouter(include_in_schema=False)
MonthQuery = Annotated[str | None, Query(max_length=20)]


def _month(text: str | None, request: Request) -> Month | None:
    """The month asked for (this month on the service's clock by default); None if it is not
    one. The service's clock, as the API's usage and the quota count months."""
    if not text:
        return Month.of(utcnow(), state_of(request).settings.zone)
    try:
        return Month.parse(text)
    except ValueError:
        return None


@router.get("/reports")
def reports(request: Request, who: Reader, month: MonthQuery = None) -> Response:
    zone = state_of(request).settings.zone
    wanted = _month(month, request)
    status_code = 200
    if wanted is None:
        status_code = 422
        wanted = Month.of(utcnow(), zone)
    account_id = who.account.id
    assert account_id is not None

    def count() -> tuple[AccountUsage, list[DayUsage]]:
        with account_session(request, who) as db:
            (entry,) = usage(db, [who.account], wanted, zone)
            return entry, usage_by_day(db, account_id, wanted, zone)

    # Counted again at most once a minute (``recent.py``); the CSV below is always counted anew.
    entry, days = state_of(request).reports.get((account_id, str(wanted)), count)
    first = wanted.start(zone).astimezone(zone).date()
    context = {
        "month": wanted,
        "first_day": first,
        "asked": month if status_code == 422 else str(wanted),
        "month_error": status_code == 422,
        "entry": entry,
        "days": days,
        "previous": _previous(wanted),
        "following": str(wanted.next()),
        "names": DayNames(who.formats.locale),
    }
    return render(request, "reports.html", who, context, status_code=status_code)


def _previous(month: Month) -> str:
    if month.month == 1:
        return str(Month(month.year - 1, 12))
    return str(Month(month.year, month.month - 1))


@router.get("/reports/usage.csv")
def usage_csv(request: Request, who: Reader, month: MonthQuery = None) -> Response:
    """The account's month as ``GET /api/v1/reports/usage.csv`` writes it."""
    wanted = _month(month, request)
    if wanted is None:
        return reports(request, who, month)
    with account_session(request, who) as db:
        entries = usage(db, [who.account], wanted, state_of(request).settings.zone)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(wanted, entries))
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="usage-{wanted}.csv"'},
    )
