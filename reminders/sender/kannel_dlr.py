"""Kannel's delivery reports: the signed dlr-url each send carries, and what a report may change.

Kannel cannot sign its callbacks, so the dlr-url it calls is the credential, and smsbox logs
it whole (at ERROR whenever a callback fails). So it holds no secret: each send of a notice
(each attempt) gets an id of its own, and its dlr-url carries the notice id, that attempt id
and ``sig``, an HMAC-SHA256 of the two under a key derived from ``REMINDERS_WEBHOOK_SECRET``
for this purpose alone (``reminders.webhook_keys``). A leaked URL names one send of one
notice: it can move that notice forward only, once to a final status, and a report about any
other send of it moves nothing.

Before signed URLs the dlr-url carried the secret itself, and the send was recorded as
``notice-{id}``. Such reports are still taken, with the secret, for those sends alone and
only within ``REMINDERS_DLR_TIMEOUT`` of them: the notices that were in flight during the
upgrade.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlmodel import Session, col, select

from reminders.models import Attempt
from reminders.sender.reports import ReportStatus
from reminders.webhook_keys import DLR_URL, derived_key

DLR_PATH: Final = "/webhooks/kannel/dlr"
# 1 delivered, 2 undelivered, 4 buffered, 8 accepted by the SMSC, 16 rejected by the SMSC.
DLR_MASK: Final = 1 | 2 | 4 | 8 | 16
# Kannel's escapes, filled in when it calls: %d the DLR type, %i the SMSC, %A the SMSC's
# reply, %F the SMSC's own id for the message, %I Kannel's.
KANNEL_ESCAPES: Final = "&type=%d&smsc=%i&reply=%A&fid=%F&kid=%I"
_SIGNATURE_BYTES: Final = 16  # 128 bits: a guess is hopeless, and the URL stays short


def new_attempt() -> str:
    """An id for one send of a notice, unique among its sends (16 hex digits)."""
    return secrets.token_hex(8)


def message_id(notice_id: int, attempt: str) -> str:
    """The provider message id recorded for one send (Kannel gives none of its own)."""
    return f"notice-{notice_id}.{attempt}"


def unsigned_message_id(notice_id: int) -> str:
    """What a send recorded before dlr-urls were signed: the notice alone."""
    return f"notice-{notice_id}"


def signature(secret: str, notice_id: int, attempt: str) -> str:
    """``sig`` for one send's dlr-url: URL-safe base64 of a truncated HMAC-SHA256."""
    # The key signs dlr-urls and nothing else: the same secret serves other purposes.
    key = derived_key(secret, DLR_URL)
    mac = hmac.new(key, f"{notice_id}.{attempt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:_SIGNATURE_BYTES]).rstrip(b"=").decode()


def signature_valid(secret: str, notice_id: int, attempt: str, given: str) -> bool:
    return hmac.compare_digest(signature(secret, notice_id, attempt).encode(), given.encode())


def dlr_url(public_url: str, secret: str, notice_id: int, attempt: str) -> str:
    """The signed dlr-url for one send, in Kannel's own syntax.

    Kannel expands %-escapes in the URL before calling it, so every "%" of ours (a
    percent-encoded public URL) is doubled: Kannel turns "%%" back into "%".
    """
    sig = signature(secret, notice_id, attempt)
    ours = f"{public_url}{DLR_PATH}?notice={notice_id}&attempt={attempt}&sig={sig}"
    return ours.replace("%", "%%") + KANNEL_ESCAPES


def report_status(dlr_type: int) -> ReportStatus | None:
    """What a Kannel DLR type says, or None for nothing a notice can record.

    Kannel's types are bits: 1 delivered, 2 undelivered (both final, from the handset's
    network), 16 rejected by the SMSC (final), 8 accepted by the SMSC and 4 buffered (the
    gateway holds it: "sent"). Should several come together, a failure outranks a delivery.
    Reports only ever move a notice forward (``reports.apply_report``): "sent" never undoes
    a final status, and a final status is never changed, whichever way.
    """
    if not 0 < dlr_type < 32:
        return None
    if dlr_type & 16:
        return "failed"
    if dlr_type & 2:
        return "undelivered"
    if dlr_type & 1:
        return "delivered"
    if dlr_type & (4 | 8):
        return "sent"
    return None


UnsignedVerdict = Literal["accept", "expired", "signed", "unknown"]


def unsigned_verdict(
    session: Session, notice_id: int, *, now: datetime, window: timedelta
) -> UnsignedVerdict:
    """Whether a report in the old form (the secret, no signature) may move this notice.

    "accept" when its latest send was made unsigned, less than ``window`` ago; "expired" when
    longer ago (answered 2xx, so Kannel stops calling); "signed" when its latest send has a
    signed dlr-url (Kannel never calls that send's old form: refuse it); "unknown" without a
    send.
    """
    latest = session.exec(
        select(Attempt).where(Attempt.notice_id == notice_id).order_by(col(Attempt.id).desc())
    ).first()
    if latest is None:
        return "unknown"
    if latest.provider != "kannel" or latest.provider_message_id != unsigned_message_id(notice_id):
        return "signed"
    return "accept" if latest.submitted_at >= now - window else "expired"
