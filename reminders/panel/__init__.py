"""The control panel: the service for people, in Bulgarian and English.

Server-rendered pages (Jinja2, htmx for partial updates, both vendored with Pico CSS under
``static/``: nothing is fetched from elsewhere at run time) served by the same process as the
API, at ``/``. People sign in with the users of their account (``accounts/users.py``); API keys
stay for programs. ``pages.py`` holds what every page shares, ``routes/`` one module per screen.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from reminders.api.gate import is_public, needs_key
from reminders.api.live import LiveTotals
from reminders.panel.cookie import Cookies
from reminders.panel.dashboard import today_span
from reminders.panel.pages import (
    STATIC_PREFIX,
    Forbidden,
    PanelState,
    SignInNeeded,
    render,
    sign_in_redirect,
    viewer,
)
from reminders.panel.routes import (
    admin,
    compose,
    contacts,
    dashboard,
    groups,
    inbox,
    notices,
    policies,
    reports,
    signin,
    sources,
    upcoming,
)
from reminders.panel.throttle import LoginThrottle, RedisLoginThrottle
from reminders.runtime import Runtime
from reminders.service_secrets import PANEL_SESSIONS, shared_secret

# One module per screen (routes/), in the order of the menu.
ROUTERS = tuple(
    module.router
    for module in (
        signin,
        dashboard,
        notices,
        compose,
        contacts,
        groups,
        policies,
        upcoming,
        sources,
        inbox,
        reports,
        admin,
    )
)


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add the panel's pages to ``app``, with its state in ``app.state.panel``."""
    settings = runtime.settings
    engine = runtime.api_engine or runtime.engine
    given = settings.secret_key.get_secret_value() if settings.secret_key else None
    secure = bool(settings.public_url and settings.public_url.startswith("https://"))
    throttle = LoginThrottle()
    if runtime.redis is not None:
        throttle = RedisLoginThrottle(runtime.redis)
    panel = PanelState(
        cookies=Cookies(lambda: given or shared_secret(engine, PANEL_SESSIONS), secure=secure),
        throttle=throttle,
        settings=settings,
        engine=engine,
    )
    zone = settings.zone
    panel.live_today = LiveTotals(
        engine, settings.dlr_timeout, window=lambda now: today_span(now, zone)
    )
    app.state.panel = panel
    app.mount(STATIC_PREFIX, StaticFiles(packages=[("reminders.panel", "static")]), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, _: SignInNeeded) -> Response:
        return sign_in_redirect(request)

    _pages_for_the_panels_errors(app)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _: Forbidden) -> Response:
        # Drawn for whoever is signed in (their menu, their language, a way out), if anyone.
        try:
            who = await run_in_threadpool(viewer, request)
        except SignInNeeded:
            who = None
        return render(request, "forbidden.html", who, status_code=403)


def _pages_for_the_panels_errors(app: FastAPI) -> None:
    """FastAPI's own refusals (a query value it cannot read, an unknown path) answer a person
    on a panel path with a page; the API's paths keep their JSON."""
    for kind in (RequestValidationError, StarletteHTTPException):
        answer_as_api = app.exception_handlers[kind]

        async def handler(request: Request, exc: Exception, api: Any = answer_as_api) -> Response:
            path = request.url.path
            if needs_key(path) or is_public(path) or path.startswith(STATIC_PREFIX + "/"):
                return cast(Response, await api(request, exc))
            try:
                who = await run_in_threadpool(viewer, request)
            except SignInNeeded:
                who = None
            status = getattr(exc, "status_code", 422)
            if status == 404:
                return render(request, "not_found.html", who, status_code=404)
            if isinstance(exc, RequestValidationError):
                detail = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}"
                    for e in exc.errors()[:3]
                )
            else:
                detail = str(getattr(exc, "detail", ""))
            page = render(request, "problem.html", who, {"detail": detail}, status_code=status)
            for name, value in (getattr(exc, "headers", None) or {}).items():
                page.headers[name] = value
            return page

        app.exception_handlers[kind] = handler
