"""Every error leaves as JSON: ``{"detail": sentence, "errors": [{"field", "message"}]}``."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.errors import DomainError
from reminders.field_errors import field_errors

log = logging.getLogger(__name__)

_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def _body_model(request: Request) -> Any:
    """The type the route reads its body as, so that errors can be told in its field names."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    return body_field.field_info.annotation if body_field is not None else Any


def _validation_errors(request: Request, errors: Sequence[Any]) -> list[dict[str, Any]]:
    """One ``{"field", "in", "message"}`` per field, named as the user wrote it."""
    by_place: dict[str | None, list[Any]] = {}
    for error in errors:
        loc = list(error.get("loc", ()))
        where = loc.pop(0) if loc and loc[0] in _LOCATIONS else None
        by_place.setdefault(where, []).append({**error, "loc": tuple(loc)})
    out: list[dict[str, Any]] = []
    for where, group in by_place.items():
        model = _body_model(request) if where == "body" else Any
        for found in field_errors(model, group):
            field = found.field or where or "request"
            out.append({"field": field, "in": where, "message": found.message})
    return out


def _error_body(detail: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"detail": detail, "errors": errors}


class FieldError(StarletteHTTPException):
    """An HTTP error about one part of the request (a body past its limit, say), told as a
    validation error is: which field, where, and why."""

    def __init__(
        self,
        status_code: int,
        field: str,
        message: str,
        *,
        where: str = "body",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, f"{field}: {message}", headers)
        self.error = {"field": field, "in": where, "message": message}


async def send_error(
    send: Send,
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
) -> None:
    """Answer an error from ASGI middleware, before any route runs, in the routes' own shape.

    ``close`` when the request's body was left unread: the connection cannot carry another
    request after it.
    """
    payload = json.dumps(_error_body(detail, errors or [])).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()),
    ]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        errors = [{"field": exc.field, "message": exc.message}] if exc.field else []
        detail = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return JSONResponse(_error_body(detail, errors), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(request, exc.errors())
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return JSONResponse(_error_body(detail, errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        errors = [exc.error] if isinstance(exc, FieldError) else []
        return JSONResponse(
            _error_body(str(exc.detail), errors),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot take (a number past its column's range, NUL in text)
        # that no check caught first: still the caller's value, so a 4xx, but a check is
        # missing, so it is logged for us to add it.
        log.warning(
            "the database refused a value on %s %s: %s",
            request.method,
            request.url.path,
            str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__,
        )
        detail = "a value in the request is outside what the database can store"
        return JSONResponse(_error_body(detail, []), status_code=422)

    app.add_middleware(CatchUnexpected)


class CatchUnexpected:
    """Answer an unexpected error with one clean JSON 500 and keep the connection.

    A handler registered for ``Exception`` runs in Starlette's outermost middleware, which sends
    its answer and then raises the error again for the server to log: uvicorn then closes the
    keep-alive connection, and the client's next request on it (a health check, say) fails with
    "connection reset". Caught here, inside that middleware, the error ends with the answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def watch(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if finished:
                return  # the answer is complete (the error came from a background task)
            if started:
                # Part of an answer is out: end its body; the client sees it cut short.
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            response = JSONResponse(
                _error_body("internal error; see the service log", []), status_code=500
            )
            await response(scope, receive, send)
