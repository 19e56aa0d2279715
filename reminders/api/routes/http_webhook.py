"""The in-house gateway's callbacks: delivery reports and inbound SMS, signed as we sign.

The ``http`` sender signs what it posts with ``REMINDERS_HTTP_SENDER_SECRET``; the gateway
signs its callbacks the same way: ``X-Reminders-Timestamp`` (Unix seconds) and
``X-Reminders-Signature: sha256=HMAC(secret, timestamp + "." + body)``. A timestamp more than
five minutes off is refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlmodel import col, select

from reminders.api.delivery_reports import refuse_while_sending
from reminders.api.deps import SchedulerDep, SettingsDep, UnscopedSessionDep
from reminders.inbound import receive
from reminders.models import Attempt
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.common import as_id
from reminders.schemas.http_webhook import Callback, CallbackOut, InboundIn, StatusIn
from reminders.sender.http import sign
from reminders.sender.reports import DeliveryReport, apply_report
from reminders.settings import Settings

router = APIRouter(prefix="/webhooks/http", tags=["webhooks"])

MAX_SKEW: Final = 300  # seconds between the gateway's clock and ours
_OUR_ID = "notice-"  # the "id" the http sender posts: "notice-<our notice id>"


async def _signed_body(request: Request, settings: Settings) -> bytes:
    """The body, once its signature proves the gateway sent it.

    What the headers alone can tell is checked before the body is read: a caller without a
    fresh timestamp and a signature never gets to send one.
    """
    secret = settings.http_sender_secret
    if secret is None or not secret.get_secret_value():
        raise HTTPException(404, "the http gateway's callbacks are not configured")
    stamp = request.headers.get("X-Reminders-Timestamp", "")
    given = request.headers.get("X-Reminders-Signature", "")
    if not given.startswith("sha256="):
        raise HTTPException(403, "the X-Reminders-Signature does not match")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_SKEW:
        raise HTTPException(403, "the X-Reminders-Timestamp is more than 5 minutes off")
    body = await request.body()
    expected = sign(secret.get_secret_value(), stamp, body)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "the X-Reminders-Signature does not match")
    return body


def _parse(model: type[Callback], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        # Shown as every other 422: which field, and why.
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """The body in the API docs: it is read raw, since the signature covers its bytes."""
    schema = {"schema": model.model_json_schema(by_alias=True)}
    return {"requestBody": {"required": True, "content": {"application/json": schema}}}


@router.post("/status", openapi_extra=_documented(StatusIn))
async def http_status(
    request: Request, session: UnscopedSessionDep, settings: SettingsDep
) -> CallbackOut:
    """A delivery report for a message the ``http`` sender posted; applied once, forward only."""
    report: StatusIn = _parse(StatusIn, await _signed_body(request, settings))
    notice_id = as_id(report.id.removeprefix(_OUR_ID))
    if not report.id.startswith(_OUR_ID) or notice_id is None:
        raise HTTPException(422, f"id: {report.id!r} is not an id we sent (notice-<number>)")
    refuse_while_sending(session, notice_id)
    attempt = session.exec(
        select(Attempt)
        .where(Attempt.notice_id == notice_id, Attempt.provider == "http")
        .order_by(col(Attempt.id).desc())
    ).first()
    if attempt is None or attempt.provider_message_id is None:
        return CallbackOut(result="unknown")
    failed = report.status in ("undelivered", "failed")
    applied = apply_report(
        session,
        DeliveryReport(
            provider="http",
            provider_message_id=attempt.provider_message_id,
            status=report.status,
            notice_id=notice_id,
            error_code=report.error_code if failed else None,
            error=(report.error or f"the gateway says {report.status}") if failed else None,
        ),
    )
    session.commit()
    return CallbackOut(result=applied)


@router.post("/inbound", openapi_extra=_documented(InboundIn))
async def http_inbound(
    request: Request, session: UnscopedSessionDep, settings: SettingsDep, scheduler: SchedulerDep
) -> CallbackOut:
    """An SMS a customer sent to the gateway's number: kept; STOP / СТОП / ОТКАЗ opt out,
    START opts back in."""
    message: InboundIn = _parse(InboundIn, await _signed_body(request, settings))
    kept = receive(
        session,
        scheduler,
        provider="http",
        from_phone=message.from_,
        to=message.to,
        text=message.text,
        provider_message_id=message.id,
        settings=settings,
    )
    commit_and_schedule(session)
    return CallbackOut(result="kept", action=kept.action)
