"""Dependencies shared by the routes: the session, the settings, the caller's key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from reminders.accounts.scoping import scoped_session
from reminders.api.errors import FieldError
from reminders.api.gate import ACCOUNT_HEADER, Caller, identify_caller
from reminders.models import ApiKey, Scope
from reminders.pending_jobs import JobScheduler
from reminders.runtime import Runtime
from reminders.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API key from `reminders apikey create`.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_caller(request: Request) -> Caller:
    """Who calls: found at the door (``gate.KeyGate``) before the body was read."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None:  # a route on a public path that still asks for a key
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            caller = identify_caller(
                session,
                request.headers.get("authorization"),
                request.headers.get(ACCOUNT_HEADER),
            )
        request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def get_account_id(caller: CallerDep) -> int:
    """The account the request acts in, for routes that open their own sessions."""
    if caller.account_id is None:
        raise FieldError(422, ACCOUNT_HEADER, PROVIDER_NAMES_ACCOUNT, where="header")
    return caller.account_id


AccountIdDep = Annotated[int, Depends(get_account_id)]
PROVIDER_NAMES_ACCOUNT = (
    "a provider key acts in an account only when the request names it in this header"
)


def get_session(request: Request) -> Iterator[Session]:
    """A session on the API's own pool acting for the caller's account (it sees and writes
    that account's rows alone), closed when the route returns: before the answer is sent, so
    that a streamed answer holds no connection while it streams.

    A provider key must name the account it acts in.
    """
    account_id = get_account_id(get_caller(request))
    with scoped_session(request.app.state.engine, account_id, expire_on_commit=False) as session:
        yield session


def get_unscoped_session(request: Request) -> Iterator[Session]:
    """A session that sees every account: for the routes above accounts (they check the
    caller themselves) and the gateways' callbacks (they find the account through the notice
    or the number)."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def get_scheduler(request: Request) -> JobScheduler | None:
    scheduler: JobScheduler | None = request.app.state.scheduler
    return scheduler


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
UnscopedSessionDep = Annotated[Session, Depends(get_unscoped_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SchedulerDep = Annotated[JobScheduler | None, Depends(get_scheduler)]


def require(scope: Scope) -> Callable[..., ApiKey]:
    """A dependency that lets through keys whose scope covers ``scope``.

    The key itself was checked at the door (``gate.KeyGate``), before the body was read.
    """

    def check(
        caller: CallerDep,
        # Not read: it puts the bearer scheme in the API's documentation.
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        key = caller.key
        if not Scope(key.scope).allows(scope):
            raise HTTPException(403, f"this key has the {key.scope} scope; {scope} is needed")
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(require(Scope.read))]
WriteKey = Annotated[ApiKey, Depends(require(Scope.write))]
AdminKey = Annotated[ApiKey, Depends(require(Scope.admin))]
ProviderKey = Annotated[ApiKey, Depends(require(Scope.provider))]
