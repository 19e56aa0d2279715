"""Request bodies: how large, and how deeply nested, the API lets them be.

A body is read (and counted) before any route sees it: one past its route's limit is answered
413 without being read further, and a JSON body nested deeper than any request needs is answered
422 before the JSON parser recurses into it (Python's parser raises RecursionError near 1,000
levels, and pydantic cannot serialise much past 250).
"""

from __future__ import annotations

import json
import re
from email.message import Message as HeaderValue

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MB = 1024 * 1024
BODY_LIMIT = 1 * MB
# A batch of 10,000 bills measured 2.2 MB with short values, and 8.1 MB with every usual field
# filled in Cyrillic and \u-escaped (what most JSON encoders write by default).
ROUTE_LIMITS = {("POST", "/api/v1/bills/batch"): 16 * MB}
MAX_JSON_DEPTH = 32

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


class BodyLimits:
    """ASGI middleware that reads each request body whole, within its route's limit."""

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
        if body and _read_as_json(headers.get("content-type")) and json_too_deep(body):
            await _answer(send, 422, f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # what follows the body: a disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse_size(send: Send, limit: int) -> None:
    # The rest of the body is never read, so the connection cannot carry another request.
    await _answer(send, 413, f"the request body may be at most {_size(limit)}", close=True)


async def _answer(send: Send, status: int, message: str, *, close: bool = False) -> None:
    payload = json.dumps(
        {
            "detail": f"body: {message}",
            "errors": [{"field": "body", "in": "body", "message": message}],
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
