"""JSON logs: one object per line for every record, and one access line per request.

Non-ASCII text is written as it is, except what could break a line or turn
text around (U+2028, U+2029, U+0085, bidi controls), which is escaped.

Headers are never logged, and anything shaped like a credential (an
Authorization value, a SigV4 credential or signature, a session token, an AWS
key) is masked in every message before it is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .middlewares import ATTEMPTS, ERROR, cancelled_outcome, outcome, request_id
from .routes import PROBES, found_route

access_log = logging.getLogger("aiouploader.access")
NOISY = ("botocore", "aiobotocore", "boto3", "urllib3", "s3transfer")
_SECRETS = re.compile(
    r"""(?ix)
    (authorization["']?\s*[:=]\s*["']?)[^"',}\n]+      # Authorization: <anything>
    | ((?:bearer|basic)\s+)[^\s"',]+                     # a bearer or basic token
    | (credential=)[^,\s"']+                             # SigV4 credential scope
    | (signature=)[0-9a-f]+                              # SigV4 signature
    | (x-amz-security-token["']?\s*[:=]\s*["']?)[^"',}\s]+
    | (aws_(?:secret_access_key|session_token|access_key_id)["']?\s*[:=]\s*["']?)[^"',}\s]+
    | \b(?:AKIA|ASIA)[0-9A-Z]{16}\b                      # an AWS access key id
    """
)
_UNSAFE = re.compile("[\x85\u2028\u2029\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
"""What some tools take for a line break, and what changes how the text around it is shown (bidi controls)."""


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


_REQUEST_ID: ContextVar[str | None] = ContextVar("aiouploader_request_id", default=None)
"""The id of the request the current task serves (tasks it starts inherit it)."""


class RequestIds(logging.Filter):
    """On a handler: a record made while serving a request gets that request's ``request_id`` (unless it has one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and (request_id := _REQUEST_ID.get()) is not None:
            record.request_id = request_id
        return True


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``***``."""
    return _SECRETS.sub(lambda m: next((g for g in m.groups() if g), "") + "***", text)


class JSONFormatter(logging.Formatter):
    """A JSON object per record: time, level, logger, message, and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if isinstance(request_id := getattr(record, "request_id", None), str):
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return _UNSAFE.sub(_escaped, json.dumps(line, default=str, ensure_ascii=False))


def configure(level: str) -> None:
    """JSON lines on stderr for every logger, at ``level``; S3 libraries at info or above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(RequestIds())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


def _one_or_many(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _fields(
    request: web.Request, route: str | None, status: int | None, outcome: str, seconds: float
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": request_id(request),
        "method": request.method,
        "path": request.path,
        "route": route,
        "status": status,
        "outcome": outcome,
        "duration": round(seconds, 6),
    }
    if ERROR in request:
        fields["error"] = redact(request[ERROR].message)
    tried = request.get(ATTEMPTS)
    if tried and (uploads := tried.uploads):
        fields["key"] = _one_or_many([upload.s3_key for upload in uploads])
        fields["size"] = sum(upload.size for upload in uploads)
        fields["plugins"] = _one_or_many([upload.reports for upload in uploads])
    if tried and tried.results:
        fields["stored_size"] = sum(int(result["stored_size"]) for result in tried.results)
    return fields


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log one line per request."""
    started = time.perf_counter()
    found = found_route(request)
    status: int | None = None
    result = "cut"
    serving = _REQUEST_ID.set(request_id(request))
    try:
        response = await handler(request)
        status = response.status
        result = outcome(request, status)
        return response
    except asyncio.CancelledError:
        result = cancelled_outcome(request)
        raise
    finally:
        _REQUEST_ID.reset(serving)
        level = logging.DEBUG if request.path in PROBES else logging.INFO
        if access_log.isEnabledFor(level):
            seconds = time.perf_counter() - started
            fields = _fields(request, found.route.path if found else None, status, result, seconds)
            access_log.log(level, "%s %s %s %s", request.method, request.path, status, result, extra={"fields": fields})
