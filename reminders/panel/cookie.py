"""The control panel's session: a signed cookie, nothing kept on the server.

The cookie carries the signed-in user's id, the account they act in, their language and the
CSRF token of their forms. It is signed (itsdangerous, HMAC-SHA256) so it cannot be forged or
edited, ``HttpOnly`` so no script reads it, ``SameSite=Lax`` so another site's form cannot post
with it, and ``Secure`` when the service is served over https (``REMINDERS_PUBLIC_URL``). It
also carries a fingerprint of the user's password hash: a changed password (or a user disabled,
checked on every request) ends every session of that user, wherever it was opened.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE: Final = "reminders_session"
MAX_AGE: Final = 12 * 3600  # a working day; then sign in again
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "X-CSRF-Token"


@dataclass(frozen=True)
class PanelSession:
    csrf: str
    lang: str | None = None  # chosen by the user; None: the browser's Accept-Language
    user_id: int | None = None
    account_id: int | None = None
    password: str | None = None  # the fingerprint of the password hash it was opened with

    @classmethod
    def fresh(cls, lang: str | None = None) -> PanelSession:
        return cls(csrf=secrets.token_urlsafe(24), lang=lang)

    def signed_in(self, user_id: int, account_id: int | None, password_hash: str) -> PanelSession:
        # A new CSRF token with the new identity: one learnt before signing in is worth nothing.
        return PanelSession(
            csrf=secrets.token_urlsafe(24),
            lang=self.lang,
            user_id=user_id,
            account_id=account_id,
            password=fingerprint(password_hash),
        )

    def with_lang(self, lang: str) -> PanelSession:
        return replace(self, lang=lang)

    def acting_for(self, account_id: int) -> PanelSession:
        return replace(self, account_id=account_id)

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), (given or "").encode())


def fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class Cookies:
    """Reads and writes the session cookie with the service's secret."""

    def __init__(self, secret: Callable[[], str], *, secure: bool) -> None:
        # Asked for at the first request, not when the app is built: a service's own secret is
        # read from (or made in) the database, which may not be migrated yet at that point.
        self._secret = secret
        self._made: URLSafeTimedSerializer | None = None
        self.secure = secure

    @property
    def _serializer(self) -> URLSafeTimedSerializer:
        if self._made is None:
            self._made = URLSafeTimedSerializer(self._secret(), salt="reminders panel session")
        return self._made

    def read(self, request: Request) -> PanelSession | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data: dict[str, Any] = self._serializer.loads(raw, max_age=MAX_AGE)
            return PanelSession(
                csrf=str(data["c"]),
                lang=data.get("l"),
                user_id=data.get("u"),
                account_id=data.get("a"),
                password=data.get("p"),
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            return None  # forged, edited, expired or from an older format: start again

    def write(self, response: Response, session: PanelSession) -> None:
        data: dict[str, Any] = {"c": session.csrf, "l": session.lang}
        if session.user_id is not None:
            data |= {"u": session.user_id, "a": session.account_id, "p": session.password}
        response.set_cookie(
            COOKIE,
            self._serializer.dumps(data),
            max_age=MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=self.secure,
            path="/",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=self.secure)
