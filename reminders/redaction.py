"""Keeping the secrets that travel in URLs out of the log.

Kannel takes its password in the query string, our callback URLs carry a secret or a signature,
and feed URLs often hold a token; request logs (uvicorn's, httpx's) write such URLs whole.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Final

_NAMES: Final = r"(?:secret|password|token|sig)"
# A secret's value, plain ("secret=x", up to the next "&") or URL-encoded inside another URL
# ("secret%3Dx", up to the next "%26", as a dlr-url travels in the sendsms query); a quote or
# a space ends it too.
_SECRET_PARAMS: Final = re.compile(
    rf"({_NAMES}=)[^&\s\"]*|({_NAMES}%3D)(?:(?!%26)[^&\s\"])*", re.IGNORECASE
)


def redact(text: str) -> str:
    """``text`` with the value of every secret-looking URL parameter replaced by "…"."""
    return _SECRET_PARAMS.sub(lambda match: (match[1] or match[2]) + "…", text)


def _redacted_arg(arg: Any) -> Any:
    # Numbers stay numbers ("%d" needs them). Anything else that shows a secret becomes its
    # redacted text: "%s" prints the same, and httpx passes its URL as an object.
    if arg is None or isinstance(arg, bool | int | float):
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    clean = redact(text)
    return arg if clean == text else clean


class RedactSecrets(logging.Filter):
    """Redact secrets in a record's arguments, keeping their number and order.

    Formatters may read the arguments themselves: uvicorn's access formatter unpacks
    ``(client_addr, method, full_path, http_version, status_code)``, so emptying them (and
    logging the redacted message instead) turns every access line into a "Logging error".
    A record without arguments has its message redacted. A format string is code, not data:
    it is left as it is, since redacting its "%s" would break the formatting.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping):
            record.args = {key: _redacted_arg(value) for key, value in args.items()}
        elif args:
            record.args = tuple(_redacted_arg(arg) for arg in args)
        else:
            message = str(record.msg)
            clean = redact(message)
            if clean != message:
                record.msg = clean
        return True


REDACT_SECRETS: Final = RedactSecrets()  # one instance: adding it to a logger twice keeps one
