"""Dependencies shared by the routes: the session, the settings, the caller's key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from reminders import apikeys
from reminders.models import ApiKey, Scope
from reminders.notices import JobScheduler
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
    """A dependency that lets through keys whose scope covers ``scope``."""

    def check(
        session: SessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                401, "an API key is required: Authorization: Bearer <key>", challenge
            )
        key = apikeys.authenticate(session, credentials.credentials)
        if key is None:
            raise HTTPException(401, "the API key is not valid or was revoked", challenge)
        if not Scope(key.scope).allows(scope):
            raise HTTPException(403, f"this key has the {key.scope} scope; {scope} is needed")
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(require(Scope.read))]
WriteKey = Annotated[ApiKey, Depends(require(Scope.write))]
AdminKey = Annotated[ApiKey, Depends(require(Scope.admin))]
