"""The door: which paths are public, and the key check every other path gets first.

Every path of the API (``/api/``, ``/metrics``) needs an API key except those ``is_public``
names: the health checks, the API's documentation and the gateways' callbacks (each checked by
its own signature or secret). The control panel's pages check their own signed session. The key
is checked here, from the Authorization header alone, before anything reads the request's body:
a caller without a valid key is answered 401 at once, and cannot make the service read (and
hold) a body first. The routes then check the key's scope (``deps.require``).

A path or query string holding NUL is refused here too (422): PostgreSQL cannot store or even
compare it, and no name, id or search needs it. Gateways' callbacks are public and not checked:
a Kannel callback carries raw bytes (``%00`` is half of every UCS-2 Latin letter), and what they
bring is cleaned where it is stored (``reminders.storable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import HTTPException
from sqlalchemy.engine import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from reminders import apikeys
from reminders.api.errors import FieldError, send_error
from reminders.models import Account, AccountStatus, ApiKey
from reminders.models import Scope as KeyScope

_PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
_PUBLIC_PREFIXES = ("/webhooks/",)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
NUL_MESSAGE = "must not contain control characters such as NUL"


def is_public(path: str) -> bool:
    """Whether ``path`` is open without an API key: the one place that decides it."""
    return path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES)


_KEYED_PREFIXES = ("/api/",)
_KEYED_PATHS = frozenset({"/metrics"})


def needs_key(path: str) -> bool:
    """Whether ``path`` is the API's: every other path is public (above) or the control
    panel's, whose pages check their own signed-in session (``reminders/panel``)."""
    return not is_public(path) and (path in _KEYED_PATHS or path.startswith(_KEYED_PREFIXES))


ACCOUNT_HEADER = "Reminders-Account"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: its key, and the account it acts in.

    An account's key acts in its own account. A provider key acts above every account, and
    inside one when the request names it in the ``Reminders-Account`` header.
    """

    key: ApiKey
    account: Account | None

    @property
    def account_id(self) -> int | None:
        return self.account.id if self.account is not None else None

    @property
    def is_provider(self) -> bool:
        return self.key.scope == KeyScope.provider


def identify(session: Session, authorization: str | None) -> ApiKey:
    """The live key an ``Authorization: Bearer <key>`` header names, or a 401 saying why not."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise HTTPException(401, "an API key is required: Authorization: Bearer <key>", _CHALLENGE)
    key = apikeys.authenticate(session, secret.strip())
    if key is None:
        raise HTTPException(401, "the API key is not valid or was revoked", _CHALLENGE)
    session.commit()  # its last use, before the route's own work
    return key


def identify_caller(session: Session, authorization: str | None, named: str | None) -> Caller:
    """The key and the account it acts in; 401 for a bad key, 403 for a suspended account's
    key, 404 for a provider key naming an account that does not exist."""
    key = identify(session, authorization)
    if key.scope == KeyScope.provider:
        if not named:
            return Caller(key, None)
        account = session.exec(select(Account).where(Account.slug == named)).first()
        if account is None:
            raise FieldError(404, ACCOUNT_HEADER, f"no account {named!r}", where="header")
        return Caller(key, account)
    account = session.get(Account, key.account_id) if key.account_id is not None else None
    if account is None:
        raise HTTPException(401, "the API key belongs to no account", _CHALLENGE)
    if named and named != account.slug:
        raise FieldError(
            403,
            ACCOUNT_HEADER,
            f"this key belongs to the account {account.slug!r}",
            where="header",
        )
    if account.status == AccountStatus.suspended:
        reason = account.status_reason or "suspended by the provider"
        raise HTTPException(403, f"the account {account.slug!r} is suspended: {reason}")
    return Caller(key, account)


def has_body(scope: Scope) -> bool:
    """Whether the request says a body follows (one the server would have to read or drop)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _nul_in_url(scope: Scope) -> dict[str, str] | None:
    """The error for a path or query parameter holding NUL, naming the parameter."""
    if "\x00" in scope["path"]:
        return {"field": "path", "in": "path", "message": NUL_MESSAGE}
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" not in query:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in value or "\x00" in name:
            return {
                "field": name.replace("\x00", "") or "query",
                "in": "query",
                "message": NUL_MESSAGE,
            }
    return None


class KeyGate:
    """ASGI middleware: a non-public path needs a live key before anything else happens.

    The key found is left in the request's state (``api_key``) for the routes' scope check.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not needs_key(scope["path"]):  # the control panel's: its pages check the session
            nul = _nul_in_url(scope)
            if nul is not None:
                await send_error(send, 422, f"{nul['field']}: {nul['message']}", [nul], close=True)
                return
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        named = headers.get(ACCOUNT_HEADER.lower().encode(), b"").decode("latin-1").strip()
        engine: Engine = scope["app"].state.engine  # the API's own pool
        try:
            caller = await run_in_threadpool(_identify, engine, authorization, named or None)
        except PoolTimeout:
            # No connection came free in time: busy, as admission would say, not a 500.
            busy = scope["app"].state.gates.requests.busy_answer()
            await busy(scope, receive, send)
            return
        except FieldError as exc:
            await send_error(
                send, exc.status_code, str(exc.detail), [exc.error], close=has_body(scope)
            )
            return
        except HTTPException as exc:
            # The body is never read: the connection cannot carry another request after it.
            await send_error(
                send, exc.status_code, str(exc.detail), headers=exc.headers, close=has_body(scope)
            )
            return
        nul = _nul_in_url(scope)
        if nul is not None:
            detail = f"{nul['field']}: {nul['message']}"
            await send_error(send, 422, detail, [nul], close=has_body(scope))
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


def _identify(engine: Engine, authorization: str, named: str | None) -> Caller:
    # Its own short session: the route opens its own, and this one is closed before it runs.
    with Session(engine, expire_on_commit=False) as session:
        return identify_caller(session, authorization, named)
