"""The ``reminders`` command line."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from sqlmodel import Session

from reminders import apikeys
from reminders.errors import Conflict, DomainError
from reminders.migrate import SchemaError, current_revision, head_revision, upgrade
from reminders.models import Scope
from reminders.schemas.common import MAX_ID
from reminders.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Self-hosted SMS reminders.", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
contacts_app = typer.Typer(help="Contacts.", no_args_is_help=True)
sources_app = typer.Typer(help="iCalendar feed sources.", no_args_is_help=True)
kannel_app = typer.Typer(help="The Kannel gateway's configuration.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts: the organisations served.", no_args_is_help=True)
users_app = typer.Typer(help="Users: the people who sign in.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(users_app, name="users")
app.add_typer(key_app, name="apikey")
app.add_typer(contacts_app, name="contacts")
app.add_typer(sources_app, name="sources")
app.add_typer(kannel_app, name="kannel")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def one_line_errors(func: F) -> F:
    """A user's mistake ends the command with one line on stderr and a non-zero exit."""
    from reminders.startup import StartupError

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SettingsError, StartupError, SchemaError) as exc:
            fail(str(exc))
        except DomainError as exc:
            fail(f"{exc.field}: {exc.message}" if exc.field else exc.message)

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    return load_settings()


HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)]


def _leave_now(engines: list[Any]) -> NoReturn:
    """End a process that has stopped in order, without the interpreter's teardown.

    Once the server and the scheduler have stopped, the teardown only frees memory, and its
    garbage collection walks pydantic-core's schemas for up to a second (seen with py-spy): a
    second of each ``docker-compose down`` or ``systemctl stop``. A process that stopped in
    order ends with status 0; the database connections are closed properly first.
    """
    for engine in engines:
        engine.dispose()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# Seconds a stopping server lets requests in flight finish (a large CSV report, say) before it
# cancels them: within Docker's 10 s between SIGTERM and SIGKILL. Live streams end at once.
STOP_GRACE = 5


def _run_api(host: str, port: int, *, run_scheduler: bool) -> None:
    import uvicorn

    from reminders.api.stopping import StoppingServer
    from reminders.process import build, configure_logging, ensure_first_key, open_database

    settings = _settings()
    configure_logging(settings)
    engine = open_database(settings)
    secret = ensure_first_key(engine)
    process = build(settings, engine, run_scheduler=run_scheduler)
    if secret:
        bar = "=" * 72
        typer.echo(
            f"{bar}\nNo API key existed, so an admin key was created. It is shown only now:\n\n"
            f"    {secret}\n\nUse it as: Authorization: Bearer <key>\n{bar}",
        )
        sys.stdout.flush()
    # uvicorn shuts down cleanly on SIGTERM, then raises the signal again so the process dies
    # of it (status 143); the stop was orderly, so end with status 0 instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = uvicorn.Config(
        process.app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=STOP_GRACE,
    )
    server = StoppingServer(config, process.app.state.stopping)
    try:
        server.run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    if not server.started:
        # uvicorn has logged why (the port is taken, say); as `uvicorn.run` would, status 3.
        sys.exit(3)
    _leave_now([engine, process.runtime.api_engine])


@app.command()
@one_line_errors
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run the API, the scheduler and the sender in one process.

    With REMINDERS_REDIS_URL set, several may run: one holds the scheduler lock and fires
    notices, the others serve the API and stand by to take over.
    """
    _run_api(host, port, run_scheduler=True)


@app.command()
@one_line_errors
def web(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run the API alone; a `serve` or `worker` process fires the notices it creates."""
    _run_api(host, port, run_scheduler=False)


@app.command()
@one_line_errors
def worker() -> None:
    """Run the scheduler and the sender without the API, until SIGTERM or Ctrl-C.

    With REMINDERS_REDIS_URL set, it stands by until it holds the scheduler lock.
    """
    import threading

    from reminders.process import build, configure_logging, open_database

    settings = _settings()
    configure_logging(settings)
    process = build(settings, open_database(settings))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    process.scheduler.start(process.leadership)
    mode = "standing by for the scheduler lock" if process.leadership else "running the scheduler"
    typer.echo(f"worker {process.runtime.token}: {mode}", err=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        process.scheduler.shutdown(wait=True)
        process.runtime.sender.close()
    _leave_now([process.runtime.engine, process.runtime.api_engine])


@db_app.command("upgrade")
@one_line_errors
def db_upgrade() -> None:
    """Apply the migrations up to the newest schema."""
    from reminders.startup import connect

    engine = connect(_settings())
    upgrade(engine)
    typer.echo(f"database at revision {current_revision(engine)} (newest: {head_revision()})")


def _engine() -> Any:
    from reminders.startup import open_database

    return open_database(_settings())


AccountOption = Annotated[
    str | None,
    typer.Option("--account", help="The account's slug; by default the account 'default'."),
]


def _account_id(session: Session, slug: str | None) -> int:
    from reminders.accounts.crud import DEFAULT_SLUG, account_id_of

    return account_id_of(session, slug or DEFAULT_SLUG)


@accounts_app.command("create")
@one_line_errors
def accounts_create(
    slug: Annotated[str, typer.Argument(help="Its short name in URLs and commands: clinic-a.")],
    name: Annotated[str | None, typer.Option(help="Its full name; by default the slug.")] = None,
) -> None:
    """Create an account (with the two default policies) and print its slug."""
    from pydantic import ValidationError

    from reminders.accounts.crud import create_account
    from reminders.schemas.accounts import AccountCreate

    try:
        data = AccountCreate(slug=slug, name=name)
    except ValidationError as exc:
        error = exc.errors()[0]
        fail(f"{error['loc'][0]}: {error['msg'].removeprefix('Value error, ')}")
    with Session(_engine()) as session:
        account = create_account(session, data)
        session.commit()
        typer.echo(account.slug)


@accounts_app.command("list")
@one_line_errors
def accounts_list() -> None:
    """List accounts: slug, status and name, one a line."""
    from reminders.accounts.crud import list_accounts

    with Session(_engine()) as session:
        for account in list_accounts(session):
            typer.echo(f"{account.slug}\t{account.status}\t{account.name}")


@users_app.command("create")
@one_line_errors
def users_create(
    email: Annotated[str, typer.Argument(help="Their email address, which they sign in with.")],
    account: AccountOption = None,
    # A plain string checked by create_user, for the one-line error (see apikey create).
    role: Annotated[
        str | None, typer.Option(help="admin, operator or viewer; none with --provider.")
    ] = None,
    provider: Annotated[
        bool, typer.Option("--provider", help="A provider administrator, above every account.")
    ] = False,
    generate: Annotated[
        bool,
        typer.Option("--generate", help="Make up a strong password and print it, only now."),
    ] = False,
) -> None:
    """Create a user. The password is read from stdin (one line), or made up with --generate
    and printed on stdout (nothing else is); without --generate the stored email is printed."""
    from reminders.accounts.users import create_user

    if provider and account:
        fail("--account: a provider administrator belongs to no account")
    password = _new_password() if generate else _password_from_stdin()
    with Session(_engine()) as session:
        account_id = None if provider else _account_id(session, account)
        user = create_user(
            session, email=email, password=password, role=role, account_id=account_id
        )
        session.commit()
        typer.echo(password if generate else user.email)


def _new_password() -> str:
    import secrets

    return secrets.token_urlsafe(18)  # 24 characters, 144 random bits


def _password_from_stdin() -> str:
    stdin = sys.stdin  # None when the process was started without one
    if stdin is not None and stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
    else:
        password = stdin.readline().removesuffix("\n").removesuffix("\r") if stdin else ""
    if not password:
        fail("password: none on stdin; give one line, or use --generate")
    return password


@users_app.command("list")
@one_line_errors
def users_list(
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account's users.")
    ] = None,
) -> None:
    """List users (never their passwords): id, email, account, role and state, one a line."""
    from reminders.accounts.crud import list_accounts
    from reminders.accounts.scoping import acting_for
    from reminders.accounts.users import list_users

    with Session(_engine()) as session:
        slugs = {a.id: a.slug for a in list_accounts(session)}
        if account:
            with acting_for(session, _account_id(session, account)):
                found = list_users(session)
        else:
            found = list_users(session)
        for user in found:
            owner = slugs.get(user.account_id, "-") if user.account_id else "(provider)"
            state = "disabled" if user.disabled else "enabled"
            typer.echo(f"{user.id}\t{user.email}\t{owner}\t{user.role}\t{state}")


@key_app.command("create")
@one_line_errors
def apikey_create(
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    # A plain string checked by create_key: an Enum option would make click print a
    # multi-line usage box instead of the one-line error every other mistake gets.
    scope: Annotated[
        str, typer.Option(help="read, write or admin; provider: above every account.")
    ] = Scope.read.value,
    account: AccountOption = None,
) -> None:
    """Create a key and print it (only the key) on stdout."""
    with Session(_engine()) as session:
        if scope == Scope.provider and account:
            fail("--account: a provider key belongs to no account")
        account_id = None if scope == Scope.provider else _account_id(session, account)
        new = apikeys.create_key(session, name=name, scope=scope, account_id=account_id)
        session.commit()
    typer.echo(new.secret)


@key_app.command("list")
@one_line_errors
def apikey_list() -> None:
    """List keys (never their secrets): id, prefix, account, scope, state and name."""
    from reminders.accounts.crud import list_accounts

    with Session(_engine()) as session:
        slugs = {a.id: a.slug for a in list_accounts(session)}
        for key in apikeys.list_keys(session):
            state = "revoked" if key.revoked_at else "live"
            owner = slugs.get(key.account_id, "-") if key.account_id else "(provider)"
            typer.echo(f"{key.id}\t{key.prefix}…\t{owner}\t{key.scope}\t{state}\t{key.name}")


@key_app.command("revoke")
@one_line_errors
def apikey_revoke(key_id: Annotated[int, typer.Argument(min=1, max=MAX_ID)]) -> None:
    """Revoke a key by id; the last admin key is refused (status 1)."""
    with Session(_engine()) as session:
        try:
            apikeys.revoke_key(session, key_id)
        except Conflict as exc:
            fail(f"{exc.field}: {exc.message}", code=1)
        session.commit()
    typer.echo(f"revoked key {key_id}")


@contacts_app.command("import")
@one_line_errors
def contacts_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header row: name, phone, ...")],
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="Add every imported contact to it.")
    ] = None,
    refused: Annotated[
        Path | None, typer.Option(help="Write the refused rows, with a reason column, here.")
    ] = None,
    account: AccountOption = None,
) -> None:
    """Import contacts in bulk; bad rows are reported and skipped, good ones kept."""
    from reminders.importer import import_csv

    if not file.is_file():
        fail(f"{file}: no such file")
    settings = _settings()
    engine = _engine()
    with Session(engine) as session:
        account_id = _account_id(session, account)
    report = import_csv(
        engine,
        file,
        account_id=account_id,
        region=settings.default_region,
        groups=group or [],
        refused_path=refused,
        # Off a terminal, rich's transient progress bar still leaves a blank line on stdout.
        show_progress=sys.stdout.isatty(),
    )
    for row in report.refused:
        typer.echo(f"line {row.line}: {row.reason}", err=True)
    typer.echo(
        f"{report.created} created, {report.updated} updated, {len(report.refused)} refused",
        err=False,
    )
    if report.refused:
        raise typer.Exit(1)


@sources_app.command("sync")
@one_line_errors
def sources_sync(
    source_id: Annotated[
        int | None, typer.Argument(min=1, max=MAX_ID, help="One source; all if left out.")
    ] = None,
) -> None:
    """Sync feeds now and print what changed, one line per source (a failed one on stderr)."""
    from reminders.scheduler.notice_scheduler import NoticeScheduler
    from reminders.sources.feeds import get_source, list_sources
    from reminders.sources.sync import sync_source

    settings = _settings()
    _command_logging(settings)
    engine = _engine()
    # Jobs written here are fired by the running service (serve or worker).
    scheduler = NoticeScheduler(engine)
    failed = False
    with Session(engine) as session:
        ids = [source_id] if source_id else [s.id for s in list_sources(session) if s.id]
        if source_id:
            get_source(session, source_id)
        for one in ids:
            try:
                report = sync_source(session, scheduler, one, settings=settings)
            except DomainError as exc:  # deleted while the others were syncing
                failed = True
                typer.echo(f"source {one}: error: {exc.message}", err=True)
                continue
            if report.status == "error":
                failed = True
                typer.echo(f"source {one}: error: {report.error}", err=True)
            else:
                typer.echo(
                    f"source {one}: {report.status}, {report.created} new, {report.moved} changed, "
                    f"{report.restored} restored, {report.cancelled} cancelled, "
                    f"{report.unchanged} unchanged"
                )
    if failed:
        raise typer.Exit(1)


@kannel_app.command("get-url")
@one_line_errors
def kannel_get_url() -> None:
    """Print the get-url line of kannel.conf's sms-service, which brings inbound SMS here.

    It carries a token derived from REMINDERS_WEBHOOK_SECRET for this use alone, never the
    secret, and is made of REMINDERS_PUBLIC_URL: run it with the service's settings.
    """
    from reminders.api.routes.kannel_webhook import inbound_get_url

    settings = _settings()
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if not secret:
        fail("REMINDERS_WEBHOOK_SECRET is not set: the get-url's token is derived from it")
    if not settings.public_url:
        fail("REMINDERS_PUBLIC_URL is not set: it is where Kannel reaches this service")
    typer.echo(f'get-url = "{inbound_get_url(settings.public_url, secret)}"')


def _command_logging(settings: Settings) -> None:
    """The command's own lines are its output: the log (tracebacks included) joins them only
    with REMINDERS_LOG_LEVEL=DEBUG, rather than repeat each failure in other words."""
    if settings.log_level == "DEBUG":
        from reminders.startup import configure_logging

        configure_logging(settings)
    else:
        # Without a handler, Python prints warnings and tracebacks on stderr by itself.
        logging.getLogger().addHandler(logging.NullHandler())


def main() -> None:
    app()
