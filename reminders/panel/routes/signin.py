"""Signing in and out, the language, and a provider administrator's account switch."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from reminders.accounts.users import authenticate
from reminders.models import Account, AccountStatus, User
from reminders.panel import i18n
from reminders.panel.cookie import PanelSession
from reminders.panel.pages import (
    Forbidden,
    Reader,
    SignInNeeded,
    check_csrf,
    lang_of,
    render,
    safe_next,
    state_of,
    viewer,
)

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    try:
        viewer(request)
        return RedirectResponse(safe_next(next), status_code=303)  # already signed in
    except SignInNeeded:
        pass
    context = {"next": safe_next(next), "email": "", "failed": False, "wait": 0}
    return render(request, "login.html", None, context)


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    panel = state_of(request)
    current = panel.cookies.read(request) or PanelSession.fresh()
    wait = panel.throttle.wait_left(email)
    if wait > 0:
        return _refused(request, email, next, wait=wait)
    with Session(panel.engine, expire_on_commit=False) as db:
        user = authenticate(db, email, password) if email and password else None
        account = db.get(Account, user.account_id) if user and user.account_id else None
        if user is not None and (account is None or account.status != AccountStatus.suspended):
            db.commit()
        else:
            db.rollback()
            user = None
    if user is None or user.id is None:
        wait = panel.throttle.failed(email)
        return _refused(request, email, next, wait=wait)
    panel.throttle.succeeded(email)
    # The language they chose last time, on whatever browser; else what this one had.
    signed = current.signed_in(user.id, user.account_id, user.password_hash)
    if i18n.valid(user.language):
        signed = signed.with_lang(str(user.language))
    response = RedirectResponse(safe_next(next), status_code=303)
    panel.cookies.write(response, signed)
    return response


def _refused(request: Request, email: str, next: str, *, wait: float) -> Response:
    context = {"next": safe_next(next), "email": email, "failed": True, "wait": math.ceil(wait)}
    # 429 while the throttle holds, else 401: a wrong email or password, never which of them.
    return render(request, "login.html", None, context, status_code=429 if wait > 0 else 401)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    panel = state_of(request)
    current = panel.cookies.read(request)
    response = RedirectResponse("/login", status_code=303)
    # Signed out, the language stays chosen.
    panel.cookies.write(response, PanelSession.fresh(current.lang if current else None))
    return response


@router.post("/language", dependencies=[Depends(check_csrf)])
def language(
    request: Request,
    lang: Annotated[str, Form(max_length=5)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    panel = state_of(request)
    current = panel.cookies.read(request) or PanelSession.fresh()
    chosen = i18n.valid(lang) or lang_of(request, current)
    if current.user_id is not None:  # signed in: kept for their next sign-in too
        with Session(panel.engine) as db:
            user = db.get(User, current.user_id)
            if user is not None:
                user.language = chosen
                db.add(user)
                db.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    panel.cookies.write(response, current.with_lang(chosen))
    return response


@router.post("/account", dependencies=[Depends(check_csrf)])
def switch_account(
    request: Request,
    who: Reader,
    slug: Annotated[str, Form(max_length=40)],
) -> Response:
    """A provider administrator acts in another account."""
    if not who.provider:
        raise Forbidden
    account = next((a for a in who.accounts if a.slug == slug), None)
    if account is None or account.id is None:
        raise Forbidden
    response = RedirectResponse("/", status_code=303)
    state_of(request).cookies.write(response, who.session.acting_for(account.id))
    return response
