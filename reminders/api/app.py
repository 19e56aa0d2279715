"""The FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from fastapi import APIRouter, FastAPI
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute

from reminders import __version__, panel
from reminders.api.admission import install_admission
from reminders.api.errors import install_error_handlers
from reminders.api.gate import KeyGate
from reminders.api.limits import BodyLimits
from reminders.api.live import LiveTotals
from reminders.api.routes import (
    accounts,
    bills,
    contacts,
    events,
    groups,
    health,
    http_webhook,
    inbound,
    kannel_webhook,
    keys,
    messages,
    notices,
    policies,
    replies,
    sms,
    sources,
    stats,
    twilio_webhook,
    usage,
    users,
    webhooks,
)
from reminders.api.stopping import Stopping
from reminders.metrics import LinkGauges, NoticeMetrics, SchedulerMetrics, metrics_registry
from reminders.runtime import Runtime
from reminders.scheduler.leader import Leadership
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.sender.links import RoutedSender

log = logging.getLogger(__name__)


@cache
def shared_routes() -> tuple[BaseRoute, ...]:
    """Every route of the app, made once per process and shared by each app it builds.

    FastAPI reads each route's signature and builds its validators for every app that includes
    it: about 90 ms for ours, paid again by every test, which builds an app of its own. The
    routes hold nothing of an app's own (a route finds its app's runtime, engine and scheduler
    through ``request.app.state``), so one set serves them all. The one thing they cannot
    follow is an app's ``dependency_overrides``, which nothing here uses.
    """
    api = APIRouter(prefix="/api/v1")
    for module in (
        accounts,
        contacts,
        groups,
        messages,
        events,
        bills,
        sources,
        notices,
        policies,
        sms,
        inbound,
        replies,
        stats,
        usage,
        keys,
        users,
        webhooks,
    ):
        api.include_router(module.router)
    root = APIRouter()
    root.include_router(health.router)
    root.include_router(api)
    root.include_router(twilio_webhook.router)
    root.include_router(kannel_webhook.router)
    root.include_router(http_webhook.router)
    root.include_router(stats.metrics_router)
    return tuple(root.routes)


def create_app(
    runtime: Runtime,
    scheduler: NoticeScheduler,
    *,
    run_scheduler: bool = True,
    leadership: Leadership | None = None,
) -> FastAPI:
    """Build the app. With ``run_scheduler`` the app runs the scheduler while it runs: at once,
    or when ``leadership`` elects this process."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_scheduler:
            scheduler.start(leadership)
        try:
            yield
        finally:
            scheduler.shutdown(wait=True)
            runtime.sender.close()
            if runtime.api_engine is not None:
                runtime.api_engine.dispose()

    app = FastAPI(
        title="reminders",
        version=__version__,
        description="SMS reminders for appointments, bills and scheduled messages.",
        lifespan=lifespan,
        routes=list(shared_routes()),
    )
    app.state.runtime = runtime
    app.state.engine = runtime.api_engine or runtime.engine
    app.state.live_totals = LiveTotals(app.state.engine, runtime.settings.dlr_timeout)
    app.state.stopping = Stopping()
    app.state.scheduler = scheduler
    app.state.run_scheduler = run_scheduler
    install_error_handlers(app)
    panel.install(app, runtime)
    # The last added runs first: the key is checked before the body is read.
    app.add_middleware(BodyLimits)
    app.add_middleware(KeyGate)
    # Last, so outermost: a request turned away costs no key check, body read, thread or
    # connection, and the key check's own connection is counted with the request's.
    app.state.gates = install_admission(app, runtime.settings)
    # What every caller of /metrics sees; the notices, counted per account, are added to each
    # scrape for the caller's own (``routes/stats.py``).
    collectors: list[Collector] = [
        SchedulerMetrics(lambda: scheduler.state == "active"),
        runtime.metrics,
        app.state.gates,
    ]
    if isinstance(runtime.sender, RoutedSender):
        collectors.append(LinkGauges(runtime.sender.states))
    app.state.metrics = metrics_registry(*collectors)
    app.state.notice_metrics = NoticeMetrics(app.state.engine)
    return app
