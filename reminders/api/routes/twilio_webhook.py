"""Twilio's callbacks: status reports and inbound SMS, authenticated by X-Twilio-Signature."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from reminders.api.deps import SchedulerDep, SettingsDep, UnscopedSessionDep
from reminders.inbound import receive
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.common import as_id
from reminders.sender.reports import apply_report
from reminders.sender.twilio import CALLBACK_PATH, report_from_callback, signature_valid
from reminders.settings import Settings

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


async def _signed_twilio_params(request: Request, settings: Settings) -> dict[str, str]:
    """The callback's form parameters, once X-Twilio-Signature proves Twilio sent them.

    The signature covers the body, so it is read, but not for a request that has none.
    """
    token = settings.twilio_auth_token
    if token is None or settings.public_url is None:
        raise HTTPException(404, "the twilio sender is not configured")
    given = request.headers.get("X-Twilio-Signature", "")
    if not given:
        raise HTTPException(403, "the X-Twilio-Signature does not match")
    body = (await request.body()).decode("utf-8", errors="replace")
    params = dict(parse_qsl(body, keep_blank_values=True))
    url = settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not signature_valid(token.get_secret_value(), url, params, given):
        raise HTTPException(403, "the X-Twilio-Signature does not match")
    return params


@router.post(CALLBACK_PATH.removeprefix("/webhooks"), status_code=204)
async def twilio_status(
    request: Request, session: UnscopedSessionDep, settings: SettingsDep
) -> Response:
    """Twilio's status callback: checked against X-Twilio-Signature, then applied once."""
    params = await _signed_twilio_params(request, settings)
    report = report_from_callback(params, as_id(request.query_params.get("notice", "")))
    if report is not None:
        apply_report(session, report)
        session.commit()
    return Response(status_code=204)


@router.post("/twilio/inbound")
async def twilio_inbound(
    request: Request, session: UnscopedSessionDep, settings: SettingsDep, scheduler: SchedulerDep
) -> Response:
    """An SMS to our Twilio number: kept; STOP / СТОП / ОТКАЗ opt out, START opts back in."""
    params = await _signed_twilio_params(request, settings)
    receive(
        session,
        scheduler,
        provider="twilio",
        from_phone=params.get("From", ""),
        to=params.get("To"),
        text=params.get("Body", ""),
        provider_message_id=params.get("MessageSid"),
        settings=settings,
    )
    commit_and_schedule(session)
    # An empty TwiML answer: no automatic reply.
    return Response("<Response/>", media_type="text/xml")
