"""Putting a process together: settings, engine, schema, sender, scheduler, app."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders import apikeys, keylocks
from reminders.accounts import crud as accounts_crud
from reminders.api import create_app
from reminders.api.admission import API_POOL_TIMEOUT, api_pool_size
from reminders.db import make_engine
from reminders.metrics import make_metrics
from reminders.models import Scope
from reminders.runtime import Runtime
from reminders.scheduler.leader import Leadership, process_token
from reminders.scheduler.notice_scheduler import NoticeScheduler
from reminders.sender import registry
from reminders.sender.links import Link, RoutedSender
from reminders.sender.rate import make_rate
from reminders.settings import Settings, SettingsError
from reminders.startup import (  # noqa: F401  (their home was here: imported from here too)
    StartupError,
    configure_logging,
    connect,
    open_database,
    redacted,
)

log = logging.getLogger(__name__)


FIRST_KEY_LOCK = "apikeys:first"


def ensure_first_key(engine: Engine) -> str | None:
    """Create an admin key if the database has none; return its secret to show once.

    Several web processes or containers may start together on a new database: the first one
    to take the lock makes the key, and the others find it.
    """
    with Session(engine) as session:
        keylocks.lock_keys(session, [FIRST_KEY_LOCK])
        if apikeys.count_live_keys(session):
            return None
        # The migrations made the account ``default``: a single-organisation install needs no
        # other, and its first key is that account's admin key, as before accounts existed.
        account = accounts_crud.get_account(session, accounts_crud.DEFAULT_SLUG)
        new = apikeys.create_key(
            session, name="first admin key", scope=Scope.admin, account_id=account.id
        )
        session.commit()
        return new.secret


@dataclass
class Process:
    runtime: Runtime
    scheduler: NoticeScheduler
    leadership: Leadership | None
    app: FastAPI


def build(settings: Settings, engine: Engine, *, run_scheduler: bool = True) -> Process:
    """Assemble a process. Without ``run_scheduler`` it still writes jobs, for another to fire.

    ``engine`` is the scheduler's and the sender's; the API gets an engine of its own, its pool
    sized for what admission lets in, so that no number of API callers can take the
    connections sending needs.
    """
    try:
        sender = registry.load(settings.sender)(settings, engine)
    except SettingsError:
        raise
    except Exception as exc:
        raise StartupError(f"The sender {settings.sender!r} cannot start: {exc}") from None
    if not isinstance(sender, RoutedSender) and settings.send_concurrency > 1:
        # One sender, several requests in flight: the one link, "default". (At 1, the sender
        # is used as it is, its own batching kept: the outbox writes a batch in one go.)
        sender = RoutedSender(
            settings,
            engine,
            links=[Link(name="default", sender=sender, concurrency=settings.send_concurrency)],
        )
    token = process_token()
    client = (
        redis.Redis.from_url(settings.redis_url, socket_timeout=5) if settings.redis_url else None
    )
    rate = make_rate(settings.send_rate, client, prefix=settings.redis_prefix)
    rt = Runtime(
        settings=settings,
        engine=engine,
        sender=sender,
        token=token,
        rate=rate,
        metrics=make_metrics(client, prefix=settings.redis_prefix),
        api_engine=make_engine(
            settings.database_url,
            pool_size=api_pool_size(settings),
            max_overflow=0,
            pool_timeout=API_POOL_TIMEOUT,
        ),
        redis=client,
    )
    if isinstance(sender, RoutedSender):
        sender.metrics = rt.metrics  # its per-link counts, in /metrics beside the rest
    scheduler = NoticeScheduler(
        engine,
        runtime=rt,
        stall_after=settings.scheduler_stall.total_seconds(),
        reconcile_every=settings.reconcile_every,
    )
    leadership = None
    if run_scheduler and client is not None:
        leadership = Leadership(
            client,
            prefix=settings.redis_prefix,
            token=token,
            on_elected=scheduler.activate,
            on_deposed=scheduler.deactivate,
            cannot_lead=scheduler.cannot_lead,
        )
    app = create_app(rt, scheduler, run_scheduler=run_scheduler, leadership=leadership)
    return Process(runtime=rt, scheduler=scheduler, leadership=leadership, app=app)
