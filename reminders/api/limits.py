"""Request bodies: how large, and how deeply nested, the API lets them be.

A body is counted as it is read: one past its route's limit is answered 413 without being read
further, and a JSON body nested deeper than any request needs is answered 422 before the JSON
parser recurses into it (Python's parser raises RecursionError near 1,000 levels, and pydantic
cannot serialise much past 250). Nothing is read before the caller's key was checked
(``gate.KeyGate``).
"""

from __future__ import annotations

import json
import re
from email.message import Message as HeaderValue
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.api.errors import FieldError, send_error
from reminders.api.gate import NUL_MESSAGE, has_body, is_public
from reminders.schemas.common import MAX_JSON_DEPTH

MB = 1024 * 1024
BODY_LIMIT = 1 * MB
# A batch of 10,000 bills measured 2.2 MB with short values, and 8.1 MB with every usual field
# filled in Cyrillic and \u-escaped (what most JSON encoders write by default).
ROUTE_LIMITS = {("POST", "/api/v1/bills/batch"): 16 * MB}

# Everything but brackets and quotes, deleted in one pass; escaped backslashes and quotes go
# first, so that what is left between two quotes is exactly a string's content.
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')
_STRING = re.compile(rb'"[^"]*"')
_OPEN = frozenset(b"[{")


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in ``body`` nest more than ``limit`` levels deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    structure = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    depth = 0
    for byte in _STRING.sub(b"", structure):
        if byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def body_limit(method: str, path: str) -> int:
    return ROUTE_LIMITS.get((method, path.rstrip("/")), BODY_LIMIT)


def _read_as_json(content_type: str | None) -> bool:
    """Whether FastAPI will parse the body as JSON: with no content type, or a JSON one."""
    if not content_type:
        return True
    header = HeaderValue()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _size(limit: int) -> str:
    return f"{limit // MB} MB" if limit % MB == 0 else f"{limit} bytes"


def nul_field(body: bytes) -> str | None:
    """The path of the first string in a JSON ``body`` that holds NUL (``"\\u0000"``), if any.

    PostgreSQL cannot store NUL in text, and no field needs it. An escaped backslash followed
    by "u0000" is text, not NUL: the body is parsed to tell (only when the bytes suggest it).
    """
    if b"\\u0000" not in body:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None  # not JSON: the route says so
    pending: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            return ".".join(path) or "body"
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return ".".join(path) or "body"
                pending.append((child, (*path, key)))
        elif isinstance(item, list):
            pending.extend((child, (*path, str(i))) for i, child in enumerate(item))
    return None


class BodyLimits:
    """ASGI middleware: each request body within its route's limit, and no NUL in JSON.

    A body for an API route (one that needs a key, already checked by ``gate.KeyGate``) is read
    whole here, so that JSON nested too deep is refused before it is parsed. A public route's
    body (a gateway's signed callback) is left for the route to read after it has checked what
    it can without it (its signature's headers); it is counted as it is read.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["method"], scope["path"])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse_size(send, limit)
            return
        if is_public(scope["path"]):
            await _counted(self.app, scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before it finished sending
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse_size(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and _read_as_json(headers.get("content-type")):
            if json_too_deep(body):
                await _answer(send, 422, f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
                return
            field = nul_field(body)
            if field is not None:
                error = {"field": field, "in": "body", "message": NUL_MESSAGE}
                await send_error(send, 422, f"{field}: {NUL_MESSAGE}", [error])
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # what follows the body: a disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _counted(app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """Run ``app`` with a ``receive`` that refuses (413) a body once it grows past ``limit``.

    An answer given before the body was all read (a callback whose headers were refused)
    closes the connection, rather than leave the server reading the rest to find the next
    request.
    """
    size = 0
    finished = not has_body(scope)

    async def counted() -> Message:
        nonlocal size, finished
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            message_text = f"the request body may be at most {_size(limit)}"
            raise FieldError(413, "body", message_text, headers={"Connection": "close"})
        finished = finished or not message.get("more_body", False)
        return message

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start" and not finished:
            headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    await app(scope, counted, closing)


async def _refuse_size(send: Send, limit: int) -> None:
    # The rest of the body is never read, so the connection cannot carry another request.
    await _answer(send, 413, f"the request body may be at most {_size(limit)}", close=True)


async def _answer(send: Send, status: int, message: str, *, close: bool = False) -> None:
    error = {"field": "body", "in": "body", "message": message}
    await send_error(send, status, f"body: {message}", [error], close=close)
