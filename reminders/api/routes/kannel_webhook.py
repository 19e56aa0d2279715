"""Kannel's callbacks: delivery reports, and SMS our customers send us (mobile-originated).

Kannel cannot sign a request, so the URLs it calls are the credentials. A delivery report comes
to the dlr-url the Kannel sender gives with each send, signed for that send alone (see
``reminders.sender.kannel_dlr``); Kannel fills in ``type`` (%d), ``smsc`` (%i) and ``reply``
(%A, the SMSC's words). An inbound SMS comes to the get-url of an ``sms-service`` in
kannel.conf (``inbound_get_url``, printed by ``reminders kannel get-url``), which carries a
token derived from ``settings.webhook_secret`` for that use alone: smsbox logs the URL whole,
and the token it shows can neither sign a delivery report nor give the secret away.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse

from reminders.api.delivery_reports import refuse_while_sending
from reminders.api.deps import SchedulerDep, SettingsDep, UnscopedSessionDep
from reminders.db import utcnow
from reminders.errors import InvalidField
from reminders.inbound import receive
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.common import MAX_ID
from reminders.sender.kannel_dlr import (
    DLR_PATH,
    message_id,
    report_status,
    signature_valid,
    unsigned_message_id,
    unsigned_verdict,
)
from reminders.sender.reports import DeliveryReport, apply_report
from reminders.settings import Settings
from reminders.webhook_keys import inbound_token, inbound_token_valid

log = logging.getLogger(__name__)

router = APIRouter(prefix=DLR_PATH.removesuffix("/dlr"), tags=["webhooks"])

INBOUND_PATH: Final = DLR_PATH.removesuffix("/dlr") + "/inbound"
# What the sms-service's get-url asks Kannel for. %b is the message as Kannel holds it, byte
# for byte: UTF-8 for GSM-7 text, UTF-16BE for UCS-2 (%c = 2), so Cyrillic arrives intact and
# the text keeps its own spacing (%a would re-join the words with single spaces). %c and %C
# say how to read the bytes; %p is the sender, %P our number, %I Kannel's id for the message.
INBOUND_ESCAPES: Final = "&from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I"

# Kannel's data codings (%c): -1 undefined, 0 GSM-7, 1 8-bit data, 2 UCS-2.
UCS2: Final = 2
EIGHT_BIT: Final = 1


def inbound_get_url(public_url: str, secret: str) -> str:
    """The ``get-url`` of the sms-service in kannel.conf that sends inbound SMS here.

    It carries the token derived from ``secret``, never the secret. As with the dlr-url, Kannel
    expands %-escapes in it, so each "%" of ours (a percent-encoded public URL) is doubled
    ("%%" comes back as "%") before Kannel's own escapes are added.
    """
    ours = f"{public_url}{INBOUND_PATH}?token={inbound_token(secret)}"
    return ours.replace("%", "%%") + INBOUND_ESCAPES


def mo_text(data: bytes, coding: int, charset: str) -> str:
    """The text of an inbound SMS from Kannel's %b bytes, its coding (%c) and charset (%C).

    UCS-2 is read as UTF-16BE whatever the charset says (a phone's emoji are surrogate pairs).
    Otherwise the charset decides; Kannel says "UTF-8" for GSM-7 text, its internal form, and
    "8-BIT" for binary data, kept byte for byte as Latin-1. Bytes that do not decode become
    U+FFFD: a customer's message is kept even when it is garbled.
    """
    if coding == UCS2:
        return data.decode("utf-16-be", errors="replace")
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except (LookupError, ValueError):  # "8-BIT", or a name Python has no text codec for
        return data.decode("latin-1" if coding == EIGHT_BIT else "utf-8", errors="replace")


def _raw_query_value(request: Request, name: str) -> bytes:
    """A query parameter as the bytes it encodes (the last one, as FastAPI's are).

    FastAPI decodes every parameter as UTF-8, which turns UTF-16BE into U+FFFD; Latin-1 maps
    each byte to one code point and back, so nothing is lost on the way.
    """
    query = request.scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(query, keep_blank_values=True, encoding="latin-1")
    values = [value for key, value in pairs if key == name]
    return values[-1].encode("latin-1") if values else b""


def _configured_secret(settings: Settings, what: str) -> str:
    expected = settings.webhook_secret
    if expected is None or not expected.get_secret_value():
        raise HTTPException(404, f"the kannel {what} are not configured")
    return expected.get_secret_value()


def _require_secret(given: str, settings: Settings, what: str) -> None:
    expected = _configured_secret(settings, what)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "the secret does not match")


_OLD_GET_URL: Final = (
    "kannel.conf's inbound get-url still carries REMINDERS_WEBHOOK_SECRET itself (smsbox logs "
    "it): put the one `reminders kannel get-url` prints in its place"
)
_old_get_url_noted = False  # once per process: smsbox would fill the log with it otherwise


def _note_old_get_url(accepted: bool) -> None:
    global _old_get_url_noted
    if not _old_get_url_noted:
        _old_get_url_noted = True
        if accepted:
            log.warning("%s, then unset REMINDERS_KANNEL_INBOUND_LEGACY_SECRET", _OLD_GET_URL)
        else:
            log.warning("%s; refused until then", _OLD_GET_URL)


def _require_inbound_credential(token: str | None, secret: str | None, settings: Settings) -> None:
    """The get-url's token; or, before kannel.conf is changed, the secret itself if allowed.

    The old form is refused with the same answer whatever secret it carries, unless
    REMINDERS_KANNEL_INBOUND_LEGACY_SECRET allows it: a secret read from an old smsbox log then
    learns nothing, and the log says so (once) only when it really is kannel.conf's.
    """
    expected = _configured_secret(settings, "inbound messages")
    if token is not None:
        if not inbound_token_valid(expected, token):
            raise HTTPException(403, "the token does not match")
        return
    if secret is None:
        raise InvalidField(
            "is required: the get-url `reminders kannel get-url` prints carries it", field="token"
        )
    genuine = hmac.compare_digest(secret.encode(), expected.encode())
    allowed = settings.kannel_inbound_legacy_secret
    if genuine:
        _note_old_get_url(accepted=allowed)
    if not allowed:
        raise HTTPException(
            403,
            "the secret itself is no longer taken: the get-url carries a token "
            "(`reminders kannel get-url` prints it)",
        )
    if not genuine:
        raise HTTPException(403, "the secret does not match")


@router.get("/dlr", response_class=PlainTextResponse)
def kannel_dlr(
    session: UnscopedSessionDep,
    settings: SettingsDep,
    notice: Annotated[int, Query(gt=0, le=MAX_ID, description="Our notice id, from the dlr-url.")],
    type: Annotated[int, Query(description="Kannel's DLR type (%d).")],  # noqa: A002
    attempt: Annotated[
        str | None, Query(max_length=64, description="The send, from the signed dlr-url.")
    ] = None,
    sig: Annotated[
        str | None,
        Query(max_length=64, description="The dlr-url's signature of the notice and the send."),
    ] = None,
    secret: Annotated[
        str | None,
        Query(
            description="REMINDERS_WEBHOOK_SECRET, in the unsigned dlr-urls of sends made "
            "before signing; taken for those alone."
        ),
    ] = None,
    smsc: Annotated[str, Query(description="The SMSC id (%i).")] = "",
    reply: Annotated[str, Query(description="The SMSC's reply (%A).")] = "",
    fid: Annotated[
        str, Query(max_length=200, description="The SMSC's own id for the message (%F).")
    ] = "",
    kid: Annotated[str, Query(max_length=200, description="Kannel's id for it (%I).")] = "",
) -> PlainTextResponse:
    """Apply one delivery report; the body is for Kannel's log only.

    Whatever moves nothing (a repeated or stale report, one about an earlier send) is answered
    200 "ignored": any other answer makes Kannel call again (http-request-retry).
    """
    key = _configured_secret(settings, "delivery reports")
    unsigned = secret is not None and attempt is None and sig is None
    if unsigned:
        _require_secret(secret or "", settings, "delivery reports")
        provider_message_id = unsigned_message_id(notice)
    elif attempt and sig and signature_valid(key, notice, attempt, sig):
        provider_message_id = message_id(notice, attempt)
    else:
        raise HTTPException(403, "the signature does not match")
    status = report_status(type)
    if status is None:
        return PlainTextResponse("ignored")
    refuse_while_sending(session, notice)  # Kannel calls again (http-request-retry)
    if unsigned:
        verdict = unsigned_verdict(session, notice, now=utcnow(), window=settings.dlr_timeout)
        if verdict == "signed":
            raise HTTPException(
                403, "this notice was sent with a signed dlr-url: the secret alone does not move it"
            )
        if verdict != "accept":
            return PlainTextResponse("ignored" if verdict == "expired" else "unknown")
    failed = status in ("undelivered", "failed")
    report = DeliveryReport(
        provider="kannel",
        provider_message_id=provider_message_id,
        status=status,
        notice_id=notice,
        error_code=str(type) if failed else None,
        error=(reply or f"Kannel DLR type {type} from {smsc or 'the SMSC'}") if failed else None,
        reference=fid or kid or None,
    )
    result = apply_report(session, report)
    session.commit()
    return PlainTextResponse(result)


@router.get("/inbound", response_class=PlainTextResponse)
def kannel_inbound(
    request: Request,
    session: UnscopedSessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    sender: Annotated[
        str, Query(alias="from", min_length=1, max_length=40, description="The sender (%p).")
    ],
    # Declared for validation and the docs; the value is read again as bytes (see mo_text).
    text: Annotated[str, Query(description="The message as Kannel holds it (%b).")],
    coding: Annotated[int, Query(ge=-1, le=2, description="0 GSM-7, 1 8-bit, 2 UCS-2 (%c).")],
    token: Annotated[
        str | None,
        Query(max_length=100, description="From the get-url: derived from the webhook secret."),
    ] = None,
    secret: Annotated[
        str | None,
        Query(
            description="REMINDERS_WEBHOOK_SECRET itself, in get-urls made before tokens; "
            "taken only with REMINDERS_KANNEL_INBOUND_LEGACY_SECRET=true."
        ),
    ] = None,
    charset: Annotated[str, Query(max_length=40, description="The bytes' charset (%C).")] = "",
    to: Annotated[str, Query(max_length=40, description="Our number it was sent to (%P).")] = "",
    id: Annotated[  # noqa: A002
        str, Query(max_length=200, description="Kannel's id for the message (%I).")
    ] = "",
) -> PlainTextResponse:
    """An SMS to our Kannel number: kept; STOP / СТОП / ОТКАЗ opt out, START opts back in.

    The answer is empty: whatever it held, smsbox would send it to the customer as a reply
    (kannel.conf's sms-service also has max-messages = 0, so that nothing ever goes back).
    """
    _require_inbound_credential(token, secret, settings)
    receive(
        session,
        scheduler,
        provider="kannel",
        from_phone=sender,
        to=to or None,
        text=mo_text(_raw_query_value(request, "text"), coding, charset),
        provider_message_id=id or None,
        settings=settings,
    )
    commit_and_schedule(session)
    return PlainTextResponse("")
