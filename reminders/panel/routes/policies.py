"""The policies screen: the list, and a policy's page with its steps editor, each step's
template previewed live on a sample contact, and a dry run of the next seven days."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.responses import Response

from reminders import policies
from reminders.db import utcnow
from reminders.errors import DomainError
from reminders.models import Contact, Policy
from reminders.panel.forms import messages_of
from reminders.panel.pages import (
    Operator,
    Reader,
    Viewer,
    account_session,
    check_csrf,
    render,
    state_of,
)
from reminders.panel.policies import (
    Preview,
    StepRow,
    dry_run,
    preview,
    rows_of,
    sample_for,
    steps_from_form,
)
from reminders.policies import STEP_KINDS
from reminders.scheduler.anchors import replan_policy
from reminders.schemas.common import MAX_ID
from reminders.schemas.policies import PolicyUpdate

router = APIRouter(include_in_schema=False)
Texts = Annotated[list[str], Form(max_length=100)]
SAMPLE_CONTACTS = 20  # the account's first contacts offered as the preview's sample


class Missing(Exception):
    """A policy or contact that is not the account's: the page answers 404."""


@router.get("/policies")
def policy_list(request: Request, who: Reader) -> Response:
    with account_session(request, who) as db:
        rows = policies.list_policies(db)
    return render(request, "policies/list.html", who, {"policies": rows})


def _policy(db: Session, name: str) -> Policy:
    policy = policies.get_policy_or_none(db, name) if len(name) <= 64 else None
    if policy is None:
        raise Missing
    return policy


def _sample(db: Session, sample: str, lang: str) -> dict[str, Any]:
    """The context a preview renders with: ``bg``, ``en`` or ``contact:<id>``."""
    if sample.startswith("contact:"):
        digits = sample.removeprefix("contact:")
        contact_id = int(digits) if digits.isdigit() and int(digits) <= MAX_ID else 0
        contact = db.get(Contact, contact_id) if contact_id else None
        if contact is None:
            raise Missing
        return sample_for(contact, contact.language)
    return sample_for(None, sample if sample in ("bg", "en") else lang)


def _page(
    request: Request,
    who: Viewer,
    db: Session,
    policy: Policy,
    *,
    rows: list[StepRow] | None = None,
    description: str | None = None,
    errors: dict[str, str] | None = None,
    previews: dict[int, Preview] | None = None,
    sample: str = "",
    planned: dict[str, int] | None = None,
    status_code: int = 200,
) -> Response:
    settings = state_of(request).settings
    samples = db.exec(select(Contact).order_by(col(Contact.id)).limit(SAMPLE_CONTACTS)).all()
    context = {
        "policy": policy,
        "rows": rows if rows is not None else rows_of(policy),
        "description": policy.description if description is None else description,
        "errors": errors or {},
        "previews": previews or {},
        "sample": sample or who.lang,
        "samples": samples,
        "kinds": [str(kind) for kind in STEP_KINDS],
        "planned": planned,
        "dry": dry_run(db, policy, settings=settings, now=utcnow()),
    }
    return render(request, "policies/edit.html", who, context, status_code=status_code)


def _missing(request: Request, who: Viewer) -> Response:
    return render(request, "not_found.html", who, {"back": "/policies"}, status_code=404)


@router.get("/policies/{name}")
def policy_page(request: Request, who: Reader, name: str) -> Response:
    with account_session(request, who) as db:
        try:
            return _page(request, who, db, _policy(db, name))
        except Missing:
            return _missing(request, who)


@router.post("/policies/{name}", dependencies=[Depends(check_csrf)])
def save_policy(
    request: Request,
    who: Operator,
    name: str,
    offset: Texts = [],  # noqa: B006 (FastAPI copies a default; the form's rows)
    at: Texts = [],  # noqa: B006
    kind: Texts = [],  # noqa: B006
    template: Annotated[list[str], Form(max_length=2000)] = [],  # noqa: B006
    remove: Texts = [],  # noqa: B006
    description: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Save the steps as PATCH /policies does; its anchors with reminders to come re-plan."""
    panel = state_of(request)
    rows, steps = steps_from_form(offset, at, kind, template, remove)
    with account_session(request, who) as db:
        try:
            policy = _policy(db, name)
        except Missing:
            return _missing(request, who)
        try:
            data = PolicyUpdate.model_validate(
                {"steps": steps, "description": description.strip() or None}
            )
            policies.update_policy(db, name, data, panel.settings)
        except (ValidationError, DomainError) as exc:
            db.rollback()
            errors = messages_of(exc, PolicyUpdate)
            policy = _policy(db, name)
            return _page(
                request, who, db, policy, rows=rows, description=description,
                errors=errors, status_code=422,
            )  # fmt: skip
        db.commit()  # saved first; replan_policy commits its anchors a chunk at a time
        planned = replan_policy(db, request.app.state.scheduler, name, settings=panel.settings)
        return _page(request, who, db, _policy(db, name), planned=planned)


@router.post("/policies/{name}/preview", dependencies=[Depends(check_csrf)])
def preview_policy(
    request: Request,
    who: Reader,
    name: str,
    offset: Texts = [],  # noqa: B006
    at: Texts = [],  # noqa: B006
    kind: Texts = [],  # noqa: B006
    template: Annotated[list[str], Form(max_length=2000)] = [],  # noqa: B006
    remove: Texts = [],  # noqa: B006
    description: Annotated[str, Form(max_length=2000)] = "",
    sample: Annotated[str, Form(max_length=40)] = "",
    step: Annotated[int | None, Form(ge=0, le=100)] = None,
) -> Response:
    """Each step's template rendered on the sample, unsaved: the whole page, or (htmx, while
    a template is typed) the preview of step ``step`` alone."""
    settings = state_of(request).settings
    with account_session(request, who) as db:
        try:
            policy = _policy(db, name)
            context = _sample(db, sample, who.lang)
        except Missing:
            return _missing(request, who)
        transliterate = (
            settings.transliterate if policy.transliterate is None else policy.transliterate
        )
        if request.headers.get("hx-request") and step is not None:
            source = template[step] if step < len(template) else ""
            shown = preview(source, context, transliterate=transliterate)
            return render(request, "policies/_preview.html", who, {"p": shown, "index": step})
        rows, _ = steps_from_form(offset, at, kind, template, remove)
        previews = {
            index: preview(row.template, context, transliterate=transliterate)
            for index, row in enumerate(rows)
        }
        return _page(
            request, who, db, policy, rows=rows, description=description,
            previews=previews, sample=sample,
        )  # fmt: skip
