"""The FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from reminders import __version__
from reminders.api.errors import install_error_handlers
from reminders.api.routes import contacts, groups, health, keys, messages, notices, policies
from reminders.runtime import Runtime
from reminders.scheduler.service import NoticeScheduler

log = logging.getLogger(__name__)


def create_app(runtime: Runtime, scheduler: NoticeScheduler | None) -> FastAPI:
    """Build the app. With a scheduler, the app starts it on start-up and stops it on shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if scheduler is not None and not scheduler.running:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            runtime.sender.close()

    app = FastAPI(
        title="reminders",
        version=__version__,
        description="SMS reminders for appointments, bills and scheduled messages.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.scheduler = scheduler
    install_error_handlers(app)
    api = APIRouter(prefix="/api/v1")
    for module in (contacts, groups, messages, notices, policies, keys):
        api.include_router(module.router)
    app.include_router(health.router)
    app.include_router(api)
    return app
