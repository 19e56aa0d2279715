"""The compose screen: one message to groups, contacts and pasted numbers, now or later.

Checked live as it is typed (``/compose/preview``, a fragment htmx swaps in), confirmed ("N
recipients × M segments") after a dry run of the very function ``POST /api/v1/messages``
calls, then sent by it. Without JavaScript the same form posts to the same checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from reminders import contacts, groups, messages
from reminders.accounts.senders import sender_for
from reminders.db import utcnow
from reminders.errors import DomainError, InvalidField, NotFound
from reminders.field_errors import field_errors
from reminders.models import PENDING, Contact, Group, Message, Notice, NoticeStatus, Priority
from reminders.panel.compose import (
    FILL_AT_MOST,
    Audience,
    BadNumber,
    Draft,
    Filled,
    audience,
    cost,
    expectation,
    filled,
    form_field,
    read_numbers,
    read_when,
)
from reminders.panel.pages import (
    CSRF,
    Operator,
    Viewer,
    account_session,
    render,
    state_of,
)
from reminders.panel.said import Errors, Said, _, add
from reminders.pending_jobs import commit_and_schedule
from reminders.schemas.common import MAX_ID, as_id
from reminders.schemas.messages import MessageCreate
from reminders.sender.compose import compose
from reminders.settings import Settings

router = APIRouter(include_in_schema=False)
SEARCH_LIMIT = 20

# Why a number pasted cannot be used, beside it (``panel.compose.read_numbers``).
REASONS = {
    "not_a_number": _("%(number)s: not a phone number"),
    "invalid": _("%(number)s: not a valid phone number"),
    "not_mobile": _("%(number)s: not a mobile number, so it cannot receive SMS"),
}


def refused_number(bad: BadNumber) -> Said:
    return Said(REASONS[bad.reason].msgid, {"number": bad.written})


def _ids(form: FormData, name: str) -> list[int]:
    out = []
    for value in form.getlist(name):
        found = as_id(value) if isinstance(value, str) else None
        out.append(MAX_ID if found is None else found)  # nobody's id: not found, later
    return list(dict.fromkeys(out))


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def posted(request: Request) -> Draft:
    """The compose form as posted (a dependency: the body is read once, the CSRF check's)."""
    form = await request.form()
    return Draft(
        groups=_ids(form, "group"),
        contacts=_ids(form, "contact"),
        numbers=_text(form, "numbers"),
        text=_text(form, "text"),
        transliterate=_text(form, "transliterate") == "on",
        template=_text(form, "template") == "on",
        sender_id=_text(form, "sender_id"),
        when=_text(form, "when"),
        test_phone=_text(form, "test_phone"),
        q=_text(form, "q").strip()[:200],
        expect=_text(form, "expect"),
    )


Posted = Annotated[Draft, Depends(posted)]


def found_or_404(route: Callable[..., Response]) -> Callable[..., Response]:
    """A route whose group or contact is another account's (or nobody's) answers with the
    page that says so, 404, as if it did not exist."""

    @functools.wraps(route)
    def answer(**kwargs: Any) -> Response:
        try:
            return route(**kwargs)
        except NotFound:
            return render(kwargs["request"], "not_found.html", kwargs["who"], status_code=404)

    return answer


def _audience(db: Session, draft: Draft, settings: Settings, errors: Errors) -> Audience:
    try:
        return audience(
            db,
            groups=draft.groups,
            contacts=draft.contacts,
            pasted=draft.numbers,
            region=settings.default_region,
        )
    except InvalidField as exc:
        if exc.field in ("to.groups", "to.contacts"):
            # Another account's group or contact: as if it did not exist.
            raise NotFound(exc.message, field=exc.field) from None
        add(errors, "recipients", _("Refused: %(reason)s", reason=exc.message))
        return Audience([], read_numbers("", settings.default_region))


@dataclass(frozen=True)
class Summary:
    """What the confirmation shows, from a dry run of the message."""

    recipients: int
    suppressed: int
    segments: int  # per SMS
    send_at: datetime
    held: int  # notices that wait for quiet hours to end

    @property
    def total(self) -> int:
        return (self.recipients - self.suppressed) * self.segments


def _look(db: Session, draft: Draft, settings: Settings, errors: Errors) -> dict[str, Any]:
    """What the live preview shows: who, what it costs, when."""
    reach = _audience(db, draft, settings, errors)
    for bad in reach.numbers.bad:
        add(errors, "numbers", refused_number(bad))
    when = None
    try:
        when = read_when(draft.when, zone=settings.zone, now=utcnow())
    except InvalidField as exc:
        add(errors, "when", _("Could not read this time: %(reason)s", reason=exc.message))
    template = None
    if draft.template and draft.text.strip():
        try:
            template = filled(db, draft.text, reach.recipients, now=utcnow(), limit=FILL_AT_MOST)
        except InvalidField as exc:
            add(
                errors,
                "text",
                _("The template cannot be filled in: %(reason)s", reason=exc.message),
            )
    return {
        "audience": reach,
        "cost": cost(draft.text) if draft.text else None,
        "filled": template,
        "when": when,
    }


def _page(
    request: Request,
    who: Viewer,
    db: Session,
    draft: Draft,
    *,
    errors: Errors | None = None,
    summary: Summary | None = None,
    tested: Message | None = None,
    status_code: int = 200,
) -> Response:
    settings = state_of(request).settings
    errors = errors if errors is not None else {}
    found: Errors = {}
    look = _look(db, draft, settings, found)
    for name, said in found.items():
        errors.setdefault(name, said)  # a confirmation's errors already hold the same ones
    context = {
        "draft": draft,
        "groups": _groups(db),
        "contacts": _contacts(db, draft),
        "senders": who.account.sender_ids,
        "default_sender": sender_for(
            None,
            allowed=who.account.sender_ids,
            default=who.account.default_sender_id,
            fallback=settings.sender_id,
        ),
        "errors": errors,
        "summary": summary,
        "tested": tested,
        "tested_phone": draft.test_phone.strip(),
        "reasons": REASONS,
        **look,
    }
    return render(request, "compose.html", who, context, status_code=status_code)


def _groups(db: Session) -> list[tuple[Any, int]]:
    rows = list(db.exec(select(Group).order_by(col(Group.name))).all())
    counts = groups.member_counts(db, [g.id for g in rows if g.id is not None])
    return [(g, counts.get(g.id or 0, 0)) for g in rows]


def _contacts(db: Session, draft: Draft) -> list[tuple[Contact, bool]]:
    """The contacts chosen (checked) and then those the search finds (not yet chosen)."""
    chosen = []
    if draft.contacts:
        query = select(Contact).where(col(Contact.id).in_(draft.contacts))
        chosen = list(db.exec(query.order_by(col(Contact.name_folded))).all())
    found: list[Contact] = []
    if draft.q:
        rows, _next = contacts.list_contacts(db, q=draft.q, limit=SEARCH_LIMIT, cursor=None)
        found = [c for c in rows if c.id not in draft.contacts]
    return [(c, True) for c in chosen] + [(c, False) for c in found]


def _run(
    request: Request,
    db: Session,
    draft: Draft,
    phones: list[str],
    errors: Errors,
    *,
    priority: Priority = Priority.bulk,
    dry: bool,
) -> tuple[Message, list[Notice]] | None:
    """The message through ``messages.create_message``, as ``POST /messages`` makes it (its
    errors told beside their fields); ``dry``: without a scheduler, for the caller to roll
    back."""
    settings = state_of(request).settings
    try:
        data = draft.message(phones, zone=settings.timezone, priority=priority)
    except ValidationError as exc:
        for error in field_errors(MessageCreate, exc.errors()):
            add(errors, form_field(error.field), _("Refused: %(reason)s", reason=error.message))
        return None
    scheduler = None if dry else request.app.state.scheduler
    try:
        return messages.create_message(
            db,
            scheduler,
            data,
            region=settings.default_region,
            quiet=settings.quiet_hours,
            zone=settings.timezone,
            transliterate=settings.transliterate,
        )
    except DomainError as exc:
        if exc.field in ("to.groups", "to.contacts"):
            raise NotFound(exc.message, field=exc.field) from None
        add(errors, form_field(exc.field), _("Refused: %(reason)s", reason=exc.message))
        return None


def _summary(
    message: Message, notices: list[Notice], transliterate: bool, template: Filled | None
) -> Summary:
    """``template``: the text filled in for each recipient, whose longest is counted."""
    suppressed = sum(1 for n in notices if n.status == NoticeStatus.suppressed)
    held = sum(1 for n in notices if n.status in PENDING and n.status_reason)
    if template is not None:
        segments = template.most_latin if transliterate else template.most
    else:
        segments = compose(message.text, transliterate=transliterate).segments
    return Summary(
        recipients=len(notices),
        suppressed=suppressed,
        segments=segments,
        send_at=message.send_at,
        held=held,
    )


def _whole(db: Session, draft: Draft, reach: Audience) -> Filled | None:
    """A template filled in for every recipient (the confirmation counts them all, as the
    API's quota check does); None for a plain text."""
    if not draft.template:
        return None
    return filled(db, draft.text, reach.recipients, now=utcnow(), limit=len(reach.recipients))


def _check(draft: Draft, reach: Audience, errors: Errors) -> None:
    if not reach.count and "numbers" not in errors:
        add(errors, "recipients", _("Choose at least one group, contact or number."))
    if not draft.text.strip():
        add(errors, "text", _("Write the message."))


@router.get("/compose")
@found_or_404
def compose_form(request: Request, who: Operator) -> Response:
    draft = Draft(transliterate=state_of(request).settings.transliterate)
    with account_session(request, who) as db:
        return _page(request, who, db, draft)


@router.post("/compose/preview", dependencies=CSRF)
@found_or_404
def preview(request: Request, who: Operator, draft: Posted) -> Response:
    """The live part of the form: recipients, cost and time, as typed."""
    settings = state_of(request).settings
    errors: Errors = {}
    with account_session(request, who) as db:
        look = _look(db, draft, settings, errors)
    context = {"draft": draft, "errors": errors, "reasons": REASONS, **look}
    return render(request, "compose_preview.html", who, context)


@router.post("/compose/contacts", dependencies=CSRF)
@found_or_404
def contact_search(request: Request, who: Operator, draft: Posted) -> Response:
    """The contacts chosen and those the search finds, for htmx's live search."""
    with account_session(request, who) as db:
        found = _contacts(db, draft)
    return render(request, "compose_contacts.html", who, {"contacts": found, "draft": draft})


@router.post("/compose/search", dependencies=CSRF)
@found_or_404
def search_page(request: Request, who: Operator, draft: Posted) -> Response:
    """The search without JavaScript: the whole form again, with what it found."""
    with account_session(request, who) as db:
        return _page(request, who, db, draft)


@router.post("/compose/confirm", dependencies=CSRF)
@found_or_404
def confirm(request: Request, who: Operator, draft: Posted) -> Response:
    """A dry run of the message: its errors, or how many SMS it is."""
    settings = state_of(request).settings
    with account_session(request, who) as db:
        errors: Errors = {}
        look = _look(db, draft, settings, errors)
        reach = look["audience"]
        _check(draft, reach, errors)
        made = None
        if not errors:
            made = _run(request, db, draft, reach.numbers.phones, errors, dry=True)
        summary = None
        if made:
            summary = _summary(made[0], made[1], draft.transliterate, _whole(db, draft, reach))
        db.rollback()  # a dry run: nothing is kept
        if summary is None:
            return _page(request, who, db, draft, errors=errors, status_code=422)
        draft.expect = expectation(summary.recipients, summary.segments)
        return _page(request, who, db, draft, summary=summary)


@router.post("/compose/send", dependencies=CSRF)
@found_or_404
def send(request: Request, who: Operator, draft: Posted) -> Response:
    """Send what was confirmed; if it changed since, confirm again."""
    settings = state_of(request).settings
    with account_session(request, who) as db:
        errors: Errors = {}
        reach = _look(db, draft, settings, errors)["audience"]
        _check(draft, reach, errors)
        made = None
        if not errors:
            made = _run(request, db, draft, reach.numbers.phones, errors, dry=False)
        if made is None:
            db.rollback()
            return _page(request, who, db, draft, errors=errors, status_code=422)
        message, notices = made
        summary = _summary(message, notices, draft.transliterate, _whole(db, draft, reach))
        if draft.expect != expectation(summary.recipients, summary.segments):
            db.rollback()
            add(errors, "confirm", _("The recipients or the text changed: check them again."))
            draft.expect = expectation(summary.recipients, summary.segments)
            return _page(request, who, db, draft, errors=errors, summary=summary, status_code=409)
        commit_and_schedule(db)
    return RedirectResponse(f"/notices?message={message.id}", status_code=303)


@router.post("/compose/test", dependencies=CSRF)
@found_or_404
def test_send(request: Request, who: Operator, draft: Posted) -> Response:
    """The text to one number, the operator's own, now (transactional: a test is not held
    for quiet hours)."""
    settings = state_of(request).settings
    with account_session(request, who) as db:
        errors: Errors = {}
        phone = None
        if not draft.test_phone.strip():
            add(errors, "test_phone", _("Enter your phone number for the test."))
        else:
            numbers = read_numbers(draft.test_phone, settings.default_region)
            if numbers.bad:
                add(errors, "test_phone", refused_number(numbers.bad[0]))
            elif len(numbers.phones) != 1:
                add(errors, "test_phone", _("Enter one number."))
            else:
                phone = numbers.phones[0]
        if not draft.text.strip():
            add(errors, "text", _("Write the message."))
        made = None
        if not errors and phone is not None:
            test = Draft(
                text=draft.text,
                transliterate=draft.transliterate,
                template=draft.template,
                sender_id=draft.sender_id,
            )
            made = _run(
                request, db, test, [phone], errors, priority=Priority.transactional, dry=False
            )
            if made is not None:
                commit_and_schedule(db)
        if made is None:
            db.rollback()
            return _page(request, who, db, draft, errors=errors, status_code=422)
        return _page(request, who, db, draft, tested=made[0])
