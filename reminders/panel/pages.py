"""What every page of the control panel shares: who is signed in, their account and language,
the templates, and the checks every request passes (signed in, role, CSRF).

A page is a plain route function: it asks for a ``Viewer`` (``Depends(viewer)``, or
``needs(Role.operator)`` for what changes things) and returns ``render(...)``. Roles are checked
here on the server for every page and action; hiding a button is only a courtesy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

import jinja2
from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.responses import HTMLResponse, RedirectResponse, Response

from reminders.accounts.scoping import scoped_session
from reminders.api.live import LiveTotals
from reminders.models import Account, AccountStatus, Role, User
from reminders.panel import domain_words, i18n
from reminders.panel.cookie import CSRF_FIELD, CSRF_HEADER, Cookies, PanelSession, fingerprint
from reminders.panel.recent import Recent
from reminders.panel.throttle import LoginThrottle
from reminders.settings import Settings

TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC_PREFIX: Final = "/static"
RANK: Final = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


@dataclass
class PanelState:
    """The panel's parts, made once per app (``install``)."""

    cookies: Cookies
    throttle: LoginThrottle
    settings: Settings
    engine: Engine
    live_today: LiveTotals | None = None  # today's counters, shared by the dashboards
    # Months' usage reports, counted again at most once a minute (``recent.py``).
    reports: Recent[Any] = field(default_factory=lambda: Recent(keep_for=60.0))
    environments: dict[str, jinja2.Environment] = field(default_factory=dict)

    def environment(self, lang: str) -> jinja2.Environment:
        env = self.environments.get(lang)
        if env is None:
            env = self.environments[lang] = _environment(lang)
        return env


def _environment(lang: str) -> jinja2.Environment:
    # Our own templates, not users': the plain environment, autoescaped. (Users' SMS templates
    # are rendered in the sandbox: reminders/sandbox.py.)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    translations = i18n.translations(lang)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    # The service's own refusals (English) said in the page's language where known.
    env.filters["domain"] = domain_words.translator(translations.gettext)
    env.filters["domain_params"] = domain_words.params_translator(translations.gettext)
    return env


def state_of(request: Request) -> PanelState:
    state: PanelState = request.app.state.panel
    return state


class SignInNeeded(Exception):
    """No valid session: the page answers with the way to the sign-in form."""


class Forbidden(Exception):
    """Signed in, but the role does not allow it."""


@dataclass
class Viewer:
    """The person a request comes from, and what the page needs to know of them."""

    user: User
    account: Account
    role: Role
    session: PanelSession
    lang: str
    formats: i18n.Formats
    # Every account, for a provider administrator's switch; empty for everyone else.
    accounts: list[Account]

    @property
    def provider(self) -> bool:
        return self.user.account_id is None

    def may(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


def lang_of(request: Request, session: PanelSession | None) -> str:
    chosen = session.lang if session is not None else None
    return i18n.valid(chosen) or i18n.negotiate(request.headers.get("accept-language"))


def viewer(request: Request) -> Viewer:
    """The signed-in person, checked against the database on every request (a disabled user,
    a changed password or a deleted account ends the session at once)."""
    panel = state_of(request)
    session = panel.cookies.read(request)
    if session is None or session.user_id is None:
        raise SignInNeeded
    with Session(panel.engine, expire_on_commit=False) as db:
        user = db.get(User, session.user_id)
        if user is None or user.disabled or session.password != fingerprint(user.password_hash):
            raise SignInNeeded
        accounts: list[Account] = []
        if user.account_id is None:
            accounts = list(db.exec(select(Account).order_by(col(Account.id))).all())
            # Until one is chosen, the first made: ``default`` on an install that began as one.
            account = next((a for a in accounts if a.id == session.account_id), None)
            if account is None and accounts:
                account = accounts[0]
            accounts.sort(key=lambda a: a.name.casefold())
            role = Role.admin
        else:
            account = db.get(Account, user.account_id)
            role = Role(user.role)
        if account is None:
            raise SignInNeeded
    if user.account_id is not None and account.status == AccountStatus.suspended:
        raise SignInNeeded  # the account's people cannot sign in while it is suspended
    lang = lang_of(request, session)
    formats = i18n.Formats(lang, panel.settings.zone)
    return Viewer(user, account, role, session, lang, formats, accounts)


def needs(role: Role) -> Callable[..., Viewer]:
    """A dependency: the signed-in person, who must have at least ``role``."""

    def check(who: Viewer = Depends(viewer)) -> Viewer:
        if not who.may(role):
            raise Forbidden
        return who

    return check


# What a route asks for, by the least role it needs: ``who: Reader``, ``who: Operator``...
Reader = Annotated[Viewer, Depends(viewer)]
Operator = Annotated[Viewer, Depends(needs(Role.operator))]
Admin = Annotated[Viewer, Depends(needs(Role.admin))]


async def check_csrf(request: Request) -> None:
    """Every request that changes something carries the session's CSRF token: a form field, or
    the header htmx sends. A cross-site form has the cookie but cannot know the token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    session = state_of(request).cookies.read(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if session is None or not session.csrf_ok(given):
        raise Forbidden


# ``dependencies=CSRF`` on every route that changes something.
CSRF = [Depends(check_csrf)]


def account_session(request: Request, who: Viewer) -> Session:
    """A session acting for ``who``'s account (the caller closes it)."""
    return scoped_session(state_of(request).engine, who.account.id, expire_on_commit=False)


def render(
    request: Request,
    template: str,
    who: Viewer | None,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    session: PanelSession | None = None,
) -> HTMLResponse:
    """The page ``template`` in the viewer's language (or the browser's, before signing in)."""
    panel = state_of(request)
    current = who.session if who is not None else (session or panel.cookies.read(request))
    if current is None:
        current = PanelSession.fresh()
    lang = who.lang if who is not None else lang_of(request, current)
    page = panel.environment(lang).get_template(template)
    html = page.render(
        request=request,
        who=who,
        lang=lang,
        languages=i18n.NAMES,
        csrf=current.csrf,
        csrf_field=CSRF_FIELD,
        csrf_header=CSRF_HEADER,
        fmt=who.formats if who is not None else i18n.Formats(lang, panel.settings.zone),
        static=STATIC_PREFIX,
        path=request.url.path,
        **(context or {}),
    )
    response = HTMLResponse(html, status_code=status_code)
    if panel.cookies.read(request) is None or session is not None:
        panel.cookies.write(response, current)  # the form's CSRF token must come back
    return response


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = "/login" + ("" if target == "/" else f"?next={quote(target, safe='')}")
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of ours only, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
