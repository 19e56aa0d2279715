"""Liveness and readiness, the only routes without a key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from reminders.db import utcnow
from reminders.sender.links import RoutedSender
from reminders.stats import due_now

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The database answers, the scheduler runs (where this process runs one), Redis answers."""
    runtime = request.app.state.runtime
    checks: dict[str, Any] = {}
    body_extra: dict[str, Any] = {}
    try:
        with Session(runtime.engine) as session:
            # The work queue: how many wait to be sent, and for how long (all accounts').
            body_extra["queue"] = due_now(session, utcnow())
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    scheduler = request.app.state.scheduler
    if request.app.state.run_scheduler:
        # "standby": another process holds the scheduler lock, and this one takes over if it
        # dies; both are healthy. A scheduler whose job store keeps failing, or whose thread
        # ended, is not: the reason is the check's value.
        state = scheduler.state
        problem = scheduler.problem()
        if problem is not None:
            checks["scheduler"] = f"error: {problem}"
        else:
            checks["scheduler"] = "ok" if state in ("active", "standby") else state
        body_extra["scheduler_role"] = state
        body_extra["scheduler"] = scheduler.health.snapshot()
        if scheduler.sending is not None and state != "stopped":
            # Every serve and worker sends, leader or not: its lanes' threads must be alive.
            dead = scheduler.sending.dead_threads()
            checks["sending"] = "ok" if not dead else f"error: lane threads ended: {dead}"
        if scheduler.webhooks is not None and state != "stopped":
            # So does every one deliver webhooks.
            dead = scheduler.webhooks.dead_threads()
            checks["webhooks"] = "ok" if not dead else f"error: webhook threads ended: {dead}"
    else:
        body_extra["scheduler_role"] = "off"
    if isinstance(runtime.sender, RoutedSender):
        # This process's gateway links; one held down is reported, not a failed check: its
        # messages take the next link of their route.
        body_extra["links"] = {
            name: {"up": up, "in_flight": busy} for name, busy, up in runtime.sender.states()
        }
    if runtime.settings.redis_url:
        import redis

        try:
            redis.Redis.from_url(runtime.settings.redis_url, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks, **body_extra},
        status_code=200 if ready else 503,
    )
