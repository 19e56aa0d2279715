"""Dependencies shared by the routes: the session, the settings, the caller's key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from reminders.api.gate import identify
from reminders.models import ApiKey, Scope
from reminders.pending_jobs import JobScheduler
from reminders.runtime import Runtime
from reminders.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API key from `reminders apikey create`.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> Iterator[Session]:
    """A session on the API's own pool, closed when the route returns: before the answer is
    sent, so that a streamed answer holds no connection while it streams."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def get_scheduler(request: Request) -> JobScheduler | None:
    scheduler: JobScheduler | None = request.app.state.scheduler
    return scheduler


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SchedulerDep = Annotated[JobScheduler | None, Depends(get_scheduler)]


def require(scope: Scope) -> Callable[..., ApiKey]:
    """A dependency that lets through keys whose scope covers ``scope``.

    The key itself was checked at the door (``gate.KeyGate``), before the body was read.
    """

    def check(
        request: Request,
        session: SessionDep,
        # Not read: it puts the bearer scheme in the API's documentation.
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        key: ApiKey | None = getattr(request.state, "api_key", None)
        if key is None:  # a route on a public path that still asks for a key
            key = identify(session, request.headers.get("authorization"))
        if not Scope(key.scope).allows(scope):
            raise HTTPException(403, f"this key has the {key.scope} scope; {scope} is needed")
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(require(Scope.read))]
WriteKey = Annotated[ApiKey, Depends(require(Scope.write))]
AdminKey = Annotated[ApiKey, Depends(require(Scope.admin))]
